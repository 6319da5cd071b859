"""Seeded draws for methods that hide part of their input (MAE, BEST-RQ).

The trainer seeds each step's data and augmentation from (seed, step); a method that draws
its own masks keeps a count of its training steps as a buffer (saved in its checkpoint) and
seeds each draw from (seed, count, process rank), so a resumed run hides the same parts as an
uninterrupted one.
"""

from __future__ import annotations

import torch
import torch.distributed as dist
from torch import Tensor


def next_generator(seed: int, count: Tensor, device: torch.device) -> torch.Generator:
    """A generator on ``device`` for the draw number ``count`` (a 0-d int64 buffer), then
    ``count`` moves on by one."""
    rank = dist.get_rank() if dist.is_available() and dist.is_initialized() else 0
    generator = torch.Generator(device=device)
    generator.manual_seed(((seed * 1_000_003 + int(count)) * 4099 + rank) % (2**63))
    count += 1
    return generator
