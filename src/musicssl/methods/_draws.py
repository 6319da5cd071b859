"""Seeded draws of the methods that draw their own randomness: masks, noise, shifts.

The trainer seeds each step's data and augmentation from (seed, step). A method that also
draws its own (MAE's and BEST-RQ's masks and noise, the equivariant methods' shifts) holds a
``Draws``: a count of its training steps, saved in its checkpoint, that seeds each step's
generator from (seed, count, process rank), so a resumed run draws what an uninterrupted one
would have drawn, and each process of a multi-GPU run draws its own.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import torch
import torch.distributed as dist
from torch import Tensor, nn

from musicssl.errors import MusicSSLError


def check_seed(method: str, seed: int) -> int:
    """``seed`` when a generator takes it (0 to 2**63 - 1), else a one-line error."""
    if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed < 2**63:
        raise MusicSSLError(
            f"{method}: seed must be a whole number from 0 to 2**63 - 1, got {seed!r}"
        )
    return seed


class Draws(nn.Module):
    """A ``torch.Generator`` per training step, seeded by (seed, steps drawn so far, rank).

    The count is a buffer, so it is saved with the method. A copy of it is kept on the host
    as well: reading the buffer on a GPU would make the host wait for the device at every
    step. It is read once, on the first draw and after a checkpoint is loaded.
    """

    count: Tensor

    def __init__(self, seed: int = 0) -> None:
        super().__init__()
        self.seed = int(seed)
        self.register_buffer("count", torch.zeros((), dtype=torch.long))
        self._host_count: int | None = None
        self.register_load_state_dict_post_hook(_forget_host_count)

    def next(self, device: torch.device | None = None) -> torch.Generator:
        """The generator of the next step, on ``device`` (the host by default); the count
        moves on in training mode only."""
        if self._host_count is None:
            self._host_count = int(self.count)
        rank = dist.get_rank() if dist.is_available() and dist.is_initialized() else 0
        seed = ((self.seed * 1_000_003 + self._host_count) * 4099 + rank) % 2**63
        generator = torch.Generator(device=device or "cpu").manual_seed(seed)
        if self.training:
            self.count += 1
            self._host_count += 1
        return generator


def _forget_host_count(module: Draws, _incompatible: object) -> None:
    module._host_count = None


def count_under_draws(state: dict[str, Tensor], prefix: str, *_: Any) -> None:
    """Load-state hook of the masked methods: a checkpoint from when their count was a buffer
    of their own (``draws``) loads into their ``Draws`` (``draws.count``)."""
    if f"{prefix}draws" in state:
        state[f"{prefix}draws.count"] = state.pop(f"{prefix}draws")


def integers(
    low: int, high: int, size: int, generator: torch.Generator, device: torch.device
) -> Tensor:
    """``size`` integers uniform in ``[low, high]`` (both ends included), drawn with a host
    ``generator``, on ``device``."""
    return torch.randint(low, high + 1, (size,), generator=generator).to(device)


def add_noise(
    x: Tensor, snr_db: tuple[float, float], generator: torch.Generator, *, share: float = 1.0
) -> Tensor:
    """White noise at a signal-to-noise ratio drawn per example, uniform in dB, added to a
    ``share`` of the examples drawn at random (the others are left clean).

    Shape: (batch_size, num_samples) kept.
    """
    low, high = snr_db
    snr = low + (high - low) * torch.rand(x.shape[0], generator=generator, device=x.device)
    noise = torch.randn(x.shape, generator=generator, device=x.device, dtype=x.dtype)
    power = x.pow(2).mean(dim=-1) / 10.0 ** (snr / 10.0)
    if share < 1.0:
        chosen = torch.rand(x.shape[0], generator=generator, device=x.device) < share
        power = power * chosen.to(power.dtype)
    return x + noise * power.sqrt()[:, None]


def snr_range(method: str, snr_db: Sequence[float] | None) -> tuple[float, float] | None:
    """``noise_snr_db`` checked: None, or (lowest, highest) in dB."""
    if snr_db is None:
        return None
    if len(snr_db) != 2 or not all(math.isfinite(v) for v in snr_db) or snr_db[0] > snr_db[1]:
        raise MusicSSLError(
            f"{method}: noise_snr_db must be [lowest, highest] in dB, finite, got {snr_db}"
        )
    return float(snr_db[0]), float(snr_db[1])


def check_share(method: str, share: float) -> float:
    """``noise_share`` checked: a fraction in (0, 1]."""
    if not 0.0 < share <= 1.0:
        raise MusicSSLError(f"{method}: noise_share must be in (0, 1], got {share}")
    return float(share)


def tuning_offsets(
    batch: int, cents: float, generator: torch.Generator, device: torch.device
) -> Tensor:
    """A tuning offset in cents per example, uniform in [-cents, cents]. Shape: (batch,)."""
    return (2 * torch.rand(batch, generator=generator, device=device) - 1) * cents


def detune(spec: Tensor, offsets: Tensor, bins_per_octave: int) -> Tensor:
    """A constant-Q spectrogram moved along its bins by each example's tuning offset in cents
    (``tuning_offsets``): a recording not tuned to A = 440 Hz.

    A fractional shift interpolates linearly between neighbouring bins; the edge bins are
    repeated past the ends. Shape: (batch_size, n_bins, num_frames) kept.
    """
    shift = offsets * bins_per_octave / 1200.0  # bins; content moves up for shift > 0
    # Checked when run eagerly; a compiled step reads offsets that check_detune bounded.
    if not torch.compiler.is_compiling() and shift.abs().max() > 1:
        raise MusicSSLError(f"detune: at most one bin ({1200 / bins_per_octave:.0f} cents)")
    padded = torch.cat([spec[:, :1], spec, spec[:, -1:]], dim=1)
    below, above = padded[:, :-2], padded[:, 2:]  # each bin's lower and upper neighbour
    weight = shift.abs().to(spec.dtype)[:, None, None]
    neighbour = torch.where((shift > 0)[:, None, None], below, above)
    return (1 - weight) * spec + weight * neighbour


def check_detune(method: str, encoder: object, cents: float) -> float:
    """``detune_cents`` checked: 0, or up to one bin of a constant-Q front end."""
    if cents == 0:
        return 0.0
    config = encoder.config() if hasattr(encoder, "config") else {}
    if config.get("frontend") != "cqt":
        raise MusicSSLError(
            f"{method}: detune_cents needs a constant-Q front end (encoder.options.frontend="
            f"cqt), whose bins are equal steps of pitch; this encoder reads "
            f"{config.get('frontend', 'no spectrogram')}"
        )
    most = 1200 / config["bins_per_octave"]
    if not 0 < cents <= most:
        raise MusicSSLError(f"{method}: detune_cents must be in [0, {most:.0f}], got {cents}")
    return float(cents)
