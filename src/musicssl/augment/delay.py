"""Delay: mix in an attenuated copy of the example, late by a time drawn per example."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from musicssl.augment.base import Augmentation, Params, applied_index, check_range, coin
from musicssl.augment.fused import fused
from musicssl.errors import MusicSSLError


# Compiled, the echo is one pass over the batch: op by op the chain took 22% (preserve_tempo)
# and 26% (tape) longer (paired medians, bench/ab_augment.py).
@fused
def _echoed(x: Tensor, applied: Tensor, delay: Tensor, *, volume: float, max_delay: int) -> Tensor:
    """``(x + volume * x_delayed) / 2`` where ``applied``, ``x`` elsewhere.

    Each example reads its own window of the input with ``max_delay`` samples of silence in
    front: one (example, start) pair per row over a view of every window, so no index as large
    as the batch. Shape: (B, T), (B,) bool, (B,) int64 in [0, max_delay] -> (B, T).
    """
    padded = F.pad(x, (max_delay, 0))
    rows = torch.arange(x.shape[0], device=x.device)
    delayed = padded.unfold(1, x.shape[-1], 1)[rows, max_delay - delay]
    return torch.where(applied[:, None], (x + volume * delayed) * 0.5, x)


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
        applied = torch.ones(x.shape[0], dtype=torch.bool, device=x.device)
        return self._mixed(x, applied, params["delay_samples"])

    def apply(  # type: ignore[override]  # not nn.Module.apply
        self, x: Tensor, params: Params, *, overwrite: bool = False
    ) -> Tensor:
        # One pass over the whole batch, untouched examples copied: cheaper than gathering the
        # applied ones and scattering them back (the echo cannot be written in place).
        if applied_index(params, x.shape[0], "Delay").numel() == 0:
            return x
        applied = params["applied"].to(x.device, non_blocking=True)
        return self._mixed(x, applied, params["delay_samples"])

    def _mixed(self, x: Tensor, applied: Tensor, delay_samples: Tensor) -> Tensor:
        delay = delay_samples.to(x.device, non_blocking=True).clamp(0, self.max_delay_samples)
        return _echoed(x, applied, delay, volume=self.volume, max_delay=self.max_delay_samples)

    def extra_repr(self) -> str:
        return (
            f"sr={self.sr}, p={self.p}, ms=[{self.min_ms}, {self.max_ms}] step {self.step_ms}, "
            f"volume={self.volume}"
        )
