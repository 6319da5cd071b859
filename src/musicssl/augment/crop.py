"""Random crop: each example keeps its own window of a fixed length."""

from __future__ import annotations

import torch
from torch import Tensor

from musicssl.augment.base import Augmentation, Params, check_waveform
from musicssl.errors import MusicSSLError


def _windows(x: Tensor, start: Tensor, length: int) -> Tensor:
    """``x[b, start[b] : start[b] + length]`` for every example b.

    Every window as a view (B, num_starts, length), one picked per example by an (example,
    start) pair, so no (B, length) index is built. Shape: (B, T), (B,) -> (B, length).
    """
    return x.unfold(1, length, 1)[torch.arange(x.shape[0], device=x.device), start]


class RandomCrop(Augmentation):
    """Crop every example to ``num_samples`` at an offset drawn uniformly per example.

    The crop always applies (``applied`` is all True); its parameter is ``offset``, the index of
    the first kept sample in the input, shape (batch_size,), int64.

    Args:
        num_samples: length of the output (59049 samples, about 2.7 s at 22.05 kHz, in CLMR).
    """

    name = "random_crop"

    def __init__(self, num_samples: int) -> None:
        super().__init__(p=1.0)
        if num_samples < 1:
            raise MusicSSLError(f"RandomCrop: num_samples must be >= 1, got {num_samples}")
        self.num_samples = int(num_samples)

    def sample_params(
        self, batch_size: int, num_input_samples: int, *, generator: torch.Generator | None = None
    ) -> Params:
        if num_input_samples < self.num_samples:
            raise MusicSSLError(
                f"RandomCrop: input has {num_input_samples} samples, "
                f"fewer than the {self.num_samples} to crop"
            )
        num_offsets = num_input_samples - self.num_samples + 1
        offset = torch.randint(num_offsets, (batch_size,), generator=generator)
        applied = torch.ones(batch_size, dtype=torch.bool)
        return {"applied": applied, "offset": offset}

    def apply_all(self, x: Tensor, params: Params) -> Tensor:
        return self.apply(x, params)

    def apply(  # type: ignore[override]  # not nn.Module.apply
        self, x: Tensor, params: Params, *, overwrite: bool = False
    ) -> Tensor:
        # Every example is cropped (the output is shorter), so there is nothing to gather.
        check_waveform(x, "RandomCrop")
        offset = params["offset"].to(x.device, non_blocking=True)
        return _windows(x, offset, self.num_samples)

    def extra_repr(self) -> str:
        return f"num_samples={self.num_samples}"
