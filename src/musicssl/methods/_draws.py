"""Seeded draws for methods that hide part of their input (MAE, BEST-RQ): masks and noise.

The trainer seeds each step's data and augmentation from (seed, step); a method that draws
its own masks keeps a count of its training steps as a buffer (saved in its checkpoint) and
seeds each draw from (seed, count, process rank), so a resumed run hides the same parts as an
uninterrupted one.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.distributed as dist
from torch import Tensor

from musicssl.errors import MusicSSLError


def next_generator(seed: int, count: Tensor, device: torch.device) -> torch.Generator:
    """A generator on ``device`` for the draw number ``count`` (a 0-d int64 buffer), then
    ``count`` moves on by one."""
    rank = dist.get_rank() if dist.is_available() and dist.is_initialized() else 0
    generator = torch.Generator(device=device)
    generator.manual_seed(((seed * 1_000_003 + int(count)) * 4099 + rank) % (2**63))
    count += 1
    return generator


def add_noise(x: Tensor, snr_db: tuple[float, float], generator: torch.Generator) -> Tensor:
    """White noise at a signal-to-noise ratio drawn per example, uniform in dB.

    Shape: (batch_size, num_samples) kept.
    """
    low, high = snr_db
    snr = low + (high - low) * torch.rand(x.shape[0], generator=generator, device=x.device)
    noise = torch.randn(x.shape, generator=generator, device=x.device, dtype=x.dtype)
    power = x.pow(2).mean(dim=-1) / 10.0 ** (snr / 10.0)
    return x + noise * power.sqrt()[:, None]


def snr_range(method: str, snr_db: Sequence[float] | None) -> tuple[float, float] | None:
    """``noise_snr_db`` checked: None, or (lowest, highest) in dB."""
    if snr_db is None:
        return None
    if len(snr_db) != 2 or snr_db[0] > snr_db[1]:
        raise MusicSSLError(f"{method}: noise_snr_db must be [lowest, highest] in dB, got {snr_db}")
    return float(snr_db[0]), float(snr_db[1])
