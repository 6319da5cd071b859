"""Delay: mix in an attenuated copy of the example, late by a time drawn per example."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from musicssl.augment.base import Augmentation, Params, check_range, coin
from musicssl.errors import MusicSSLError


class Delay(Augmentation):
    """Add one echo: ``y = (x + volume * x_delayed) / 2``, the mix CLMR uses.

    The delay is drawn uniformly from ``min_ms, min_ms + step_ms, ...`` up to ``max_ms``
    (inclusive) and rounded to whole samples; the echo is silent before it starts.

    Parameters: ``applied``, ``delay_ms`` (float32) and ``delay_samples`` (int64), each shape
    (batch_size,).

    Args:
        sr: sample rate of the waveforms in Hz.
        p: probability of adding the echo (0.3 in CLMR).
        min_ms: shortest delay (CLMR: 200 ms).
        max_ms: longest delay (CLMR draws up to 450 ms).
        step_ms: spacing of the delays that can be drawn (CLMR: 50 ms).
        volume: level of the echo relative to the input (CLMR: 0.5).
    """

    name = "delay"
    linear_time_invariant = True

    def __init__(
        self,
        *,
        sr: int,
        p: float = 0.3,
        min_ms: float = 200.0,
        max_ms: float = 450.0,
        step_ms: float = 50.0,
        volume: float = 0.5,
    ) -> None:
        super().__init__(p=p)
        check_range(min_ms, max_ms, "Delay: [min_ms, max_ms]")
        if sr <= 0 or min_ms < 0 or step_ms <= 0:
            raise MusicSSLError(
                f"Delay: need sr > 0, min_ms >= 0, step_ms > 0; got {sr}, {min_ms}, {step_ms}"
            )
        self.sr = int(sr)
        self.min_ms = float(min_ms)
        self.max_ms = float(max_ms)
        self.step_ms = float(step_ms)
        self.volume = float(volume)
        self.num_choices = int((self.max_ms - self.min_ms) // self.step_ms) + 1
        longest_ms = self.min_ms + self.step_ms * (self.num_choices - 1)
        self.max_delay_samples = round(longest_ms * self.sr / 1000.0)

    def sample_params(
        self, batch_size: int, num_input_samples: int, *, generator: torch.Generator | None = None
    ) -> Params:
        applied = coin(self.p, batch_size, generator=generator)
        step = torch.randint(self.num_choices, (batch_size,), generator=generator)
        delay_ms = self.min_ms + self.step_ms * step.float()
        delay_samples = torch.round(delay_ms * (self.sr / 1000.0)).long()
        return {"applied": applied, "delay_ms": delay_ms, "delay_samples": delay_samples}

    def apply_all(self, x: Tensor, params: Params) -> Tensor:
        num_samples = x.shape[-1]
        # Silence in front, then each example reads its own window of the padded signal: one
        # (example, start) pair per row over a view of every window, so no (B, T) index.
        padded = F.pad(x, (self.max_delay_samples, 0))
        start = self.max_delay_samples - params["delay_samples"].clamp(0, self.max_delay_samples)
        rows = torch.arange(x.shape[0], device=x.device)
        delayed = padded.unfold(1, num_samples, 1)[rows, start]
        return torch.add(x, delayed, alpha=self.volume).mul_(0.5)

    def extra_repr(self) -> str:
        return (
            f"sr={self.sr}, p={self.p}, ms=[{self.min_ms}, {self.max_ms}] step {self.step_ms}, "
            f"volume={self.volume}"
        )
