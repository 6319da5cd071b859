"""Random shifts of the equivariant methods, reproducible from the method's own counter."""

from __future__ import annotations

import torch
from torch import Tensor, nn


class Draws(nn.Module):
    """A ``torch.Generator`` per training step, seeded by ``(seed, steps drawn so far)``.

    The counter is a buffer, so it is saved with the method and a resumed run draws what the
    uninterrupted run would have drawn. Draws are made on the host, then moved.
    """

    count: Tensor

    def __init__(self, seed: int = 0) -> None:
        super().__init__()
        self.seed = int(seed)
        self.register_buffer("count", torch.zeros((), dtype=torch.long))

    def next(self) -> torch.Generator:
        """The generator of the next step (the counter moves only in training mode)."""
        generator = torch.Generator().manual_seed(self.seed * 1_000_003 + int(self.count))
        if self.training:
            self.count += 1
        return generator


def integers(
    low: int, high: int, size: int, generator: torch.Generator, device: torch.device
) -> Tensor:
    """``size`` integers uniform in ``[low, high]`` (both ends included), on ``device``."""
    return torch.randint(low, high + 1, (size,), generator=generator).to(device)
