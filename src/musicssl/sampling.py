"""View samplers: PyTorch Datasets that cut the views an SSL method trains on from a store."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch.utils.data import Dataset

from musicssl.errors import MusicSSLError
from musicssl.splits import describe_splits, split_counts
from musicssl.store import SampleStore

# A recording longer than this counts as one item of an epoch per this many seconds of it
# (a 20-minute file is 40 items, each two crops within its own 30 s): an epoch goes over all
# of it, and a pile of a few long recordings fills batches as well as one of short clips.
PART_SECONDS = 30.0


class TwoCrops(Dataset):
    """Two crops of one clip at independent random offsets, plus the clip's index.

    A clip longer than ``PART_SECONDS`` (or than two crops) is several items, one per part of
    that length (the last takes the rest); the two crops of an item lie within its part.
    The offsets of an item depend only on ``(seed, epoch, clip, part)``, so a batch is the same
    whatever the number of DataLoader workers or the order they run in. Call ``set_epoch``
    before each epoch (as with ``DistributedSampler``) to draw new offsets; with
    ``persistent_workers=True`` the workers would keep the epoch they started with.

    Args:
        store: the sample store.
        num_samples: length of each crop, in samples at ``store.sr``.
        seed: seed of the offsets.
        indices: the clips to sample (e.g. the training split); all clips by default.

    Items:
        ``dict(x_a=Tensor, x_b=Tensor, index=int)``, ``index`` being the clip's store index.
        Each crop has shape (num_samples,) and holds int16 PCM, as stored: convert a batch
        with ``pcm_to_float`` once it is on the training device (half the bytes to move, and
        one batched multiply instead of one per crop). A clip shorter than a crop is
        zero-padded at the end.
    """

    def __init__(
        self,
        store: SampleStore,
        *,
        num_samples: int,
        seed: int = 0,
        indices: Sequence[int] | None = None,
    ) -> None:
        if num_samples <= 0:
            raise MusicSSLError(f"crop length must be positive, got {num_samples} samples")
        self.indices = list(range(len(store))) if indices is None else list(indices)
        if not self.indices:
            raise MusicSSLError(f"{store.path}: no clips to sample from")
        self.store = store
        self.num_samples = num_samples
        self.seed = seed
        self.epoch = 0
        self.part = max(round(PART_SECONDS * store.sr), 2 * num_samples)
        self.items = [
            (index, part)
            for index in self.indices
            for part in range(max(1, store.num_samples(index) // self.part))
        ]

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, key: int | tuple[int, int]) -> dict[str, torch.Tensor | int]:
        """Item ``key``, or ``(epoch, key)`` to name the epoch explicitly (as the trainer's
        batch sampler does, so that worker processes need no ``set_epoch``)."""
        epoch, position = key if isinstance(key, tuple) else (self.epoch, key)
        index, part = self.items[position]
        length = self.store.num_samples(index)
        begin = part * self.part
        end = length if begin + 2 * self.part > length else begin + self.part  # the last: the rest
        span = max(0, end - begin - self.num_samples) + 1
        mixed = _mix64(_mix64(_mix64(self.seed) ^ epoch) ^ (index + (part << 40)))
        start_a = begin + _mix64(mixed ^ 1) % span
        start_b = begin + _mix64(mixed ^ 2) % span
        return {
            "x_a": torch.from_numpy(self.store.crop_pcm(index, start_a, self.num_samples)),
            "x_b": torch.from_numpy(self.store.crop_pcm(index, start_b, self.num_samples)),
            "index": index,
        }


def training_indices(
    rows: SampleStore | Sequence[Mapping[str, Any]],
    *,
    splits: Sequence[str] = ("train",),
    source: str | os.PathLike | None = None,
) -> list[int]:
    """Indices of the rows whose ``split`` is one of ``splits``: what pretraining may see.

    Args:
        rows: a store (its ``rows``), or manifest rows.
        splits: the splits to keep.
        source: the store or manifest named in errors; a store names itself.

    Raises:
        MusicSSLError: no row has a ``split`` at all (training on unsplit data would let
            evaluation see what was trained on), or none is in ``splits``.
    """
    if isinstance(rows, SampleStore):
        source = rows.path if source is None else source
        rows = rows.rows
    name = "the store" if source is None else str(source)
    wanted = {splits} if isinstance(splits, str) else set(splits)
    if not rows:
        raise MusicSSLError(f"{name}: holds no clips")
    counts = split_counts(rows)
    if not counts.keys() - {""}:
        raise MusicSSLError(
            f"{name}: no clip has a 'split', so training could see the evaluation clips; "
            "index with `musicssl data index FOLDER --out M.jsonl --split-by parent` (or "
            "--splits TABLE.csv with path,split columns), then `musicssl data pack` again"
        )
    indices = [i for i, row in enumerate(rows) if row.get("split") in wanted]
    if not indices:
        raise MusicSSLError(
            f"{name}: no clip in split {', '.join(sorted(wanted))} "
            f"(it holds {describe_splits(counts)})"
        )
    return indices


def pcm_to_float(pcm: torch.Tensor) -> torch.Tensor:
    """int16 PCM to float32 in [-1, 1), on whatever device ``pcm`` is. Shape: any."""
    return pcm.to(torch.float32).mul_(1.0 / 32768.0)


_MASK64 = (1 << 64) - 1


def _mix64(value: int) -> int:
    """SplitMix64's finaliser: a well-mixed 64-bit hash of an integer.

    Offsets are hashed from (seed, epoch, index) rather than drawn from a seeded numpy
    Generator, whose construction alone cost more than the crop itself (~18 µs vs ~15 µs).
    """
    value = (value + 0x9E3779B97F4A7C15) & _MASK64
    value = ((value ^ (value >> 30)) * 0xBF58476D1CE4E5B9) & _MASK64
    value = ((value ^ (value >> 27)) * 0x94D049BB133111EB) & _MASK64
    return value ^ (value >> 31)
