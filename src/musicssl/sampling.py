"""View samplers: PyTorch Datasets that cut the views an SSL method trains on from a store."""

from __future__ import annotations

import numpy as np
import torch
from torch.utils.data import Dataset

from musicssl.errors import MusicSSLError
from musicssl.store import SampleStore


class TwoCrops(Dataset):
    """Two crops of one clip at independent random offsets, plus the clip's index.

    The offsets of item ``i`` depend only on ``(seed, epoch, i)``, so a batch is the same
    whatever the number of DataLoader workers or the order they run in. Call ``set_epoch``
    before each epoch (as with ``DistributedSampler``) to draw new offsets; with
    ``persistent_workers=True`` the workers would keep the epoch they started with.

    Args:
        store: the sample store.
        num_samples: length of each crop, in samples at ``store.sr``.
        seed: seed of the offsets.

    Items:
        ``dict(x_a=Tensor, x_b=Tensor, index=int)``; each crop has shape (num_samples,),
        float32. A clip shorter than a crop is zero-padded at the end.
    """

    def __init__(self, store: SampleStore, *, num_samples: int, seed: int = 0) -> None:
        if num_samples <= 0:
            raise MusicSSLError(f"crop length must be positive, got {num_samples} samples")
        if len(store) == 0:
            raise MusicSSLError(f"{store.path}: the store holds no clips")
        self.store = store
        self.num_samples = num_samples
        self.seed = seed
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.store)

    def __getitem__(self, index: int) -> dict[str, torch.Tensor | int]:
        generator = np.random.default_rng((self.seed, self.epoch, index))
        span = max(0, self.store.num_samples(index) - self.num_samples)
        start_a, start_b = generator.integers(0, span + 1, size=2).tolist()
        return {
            "x_a": torch.from_numpy(self.store.crop(index, start_a, self.num_samples)),
            "x_b": torch.from_numpy(self.store.crop(index, start_b, self.num_samples)),
            "index": index,
        }
