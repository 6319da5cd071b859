"""What pretraining reads: the training clips of a sample store, two crops each, batched
step by step so that the data of a step depends only on (seed, step)."""

from __future__ import annotations

import itertools
import os
import signal
import sys
import time
import warnings
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

import torch
from torch import Tensor
from torch.utils.data import DataLoader, Sampler

from musicssl.encoders import Encoder
from musicssl.errors import MusicSSLError
from musicssl.recipe import Recipe
from musicssl.sampling import PART_SECONDS, TwoCrops, training_indices
from musicssl.splits import describe_splits, split_counts
from musicssl.store import SampleStore


def training_store(recipe: Recipe) -> SampleStore:
    if not recipe.data.store:
        raise MusicSSLError(
            "data.store is empty: pack a store with `musicssl data pack` and pass "
            "data.store=STORE (the musicssl command packs the built-in corpus by itself; "
            "from Python, musicssl.demo.with_builtin_store(recipe) does)"
        )
    return SampleStore(recipe.data.store)


def check_same_store(state: dict[str, Any], store: SampleStore, run: Path) -> None:
    """Refuse to resume ``run`` on a store packed again since its checkpoint (other clips, or
    in another order): its batches would not be the ones the run would have drawn."""
    saved = state.get("store")  # checkpoints from before the identity was kept have none
    if saved is not None and saved != store.identity:
        now = store.identity
        if saved.get("num_clips") != now["num_clips"]:
            differs = f"{saved.get('num_clips')} clips then, {now['num_clips']} now"
        elif saved.get("sr") != now["sr"]:
            differs = f"{saved.get('sr')} Hz then, {now['sr']} Hz now"
        else:
            differs = f"{now['num_clips']} clips then and now, from another manifest"
        raise MusicSSLError(
            f"{store.path}: not the store {run} trained on, or packed again since ({differs}); "
            "a resumed run would draw other batches: start a new run with --out"
        )


def check_captions(
    store: SampleStore, indices: list[int], uses_text: bool, *, note: bool = True
) -> None:
    """Refuse a method that learns from text on training clips with no caption at all (and
    ``note`` how many have none, when some do)."""
    if not uses_text:
        return
    missing = sum(not str(store.rows[i].get("caption") or "").strip() for i in indices)
    if missing == len(indices):
        raise MusicSSLError(
            f"{store.path}: none of its {len(indices)} training clips has a 'caption', and this "
            "method learns from captions; index with a table of them (musicssl data index "
            "FOLDER --labels TABLE, a 'caption' column) and pack again"
        )
    if missing and note:
        print(f"note: {missing} of {len(indices)} training clips have no caption; they train "
              "with an empty one", flush=True)  # fmt: skip


def check_rate(store: SampleStore, encoder: Encoder) -> None:
    if store.sr != encoder.sample_rate:
        raise MusicSSLError(
            f"{store.path}: the store is at {store.sr} Hz but the encoder expects "
            f"{encoder.sample_rate} Hz; pack it again with --sr {encoder.sample_rate}"
        )


def loader(
    recipe: Recipe,
    store: SampleStore,
    indices: list[int],
    encoder: Encoder,
    fabric: Any,
    *,
    start_step: int,
) -> DataLoader:
    """Two crops of each of the training clips ``indices``, for every step from ``start_step``."""
    dataset = TwoCrops(store, num_samples=encoder.input_samples, seed=recipe.train.seed,
                       indices=indices)  # fmt: skip
    if fabric.is_global_zero:
        counts = describe_splits(split_counts(store.rows))
        parts = (
            f", {len(dataset)} items an epoch (one per {PART_SECONDS:g} s of a longer one)"
            if len(dataset) > len(indices)
            else ""
        )
        print(f"pretrain: {len(indices)} clips of split {recipe.data.splits}{parts} from "
              f"{store.path} (it holds {counts})", flush=True)  # fmt: skip
    store.prefetch()
    batches = StepBatches(
        len(dataset),
        batch_size=recipe.train.batch_size,
        seed=recipe.train.seed,
        start_step=start_step,
        total_steps=recipe.train.steps,
        rank=fabric.global_rank,
        world_size=fabric.world_size,
        accumulate=recipe.train.accumulate,
    )
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    if recipe.data.workers > (cores or 1) and fabric.is_global_zero:
        print(f"pretrain: note: data.workers={recipe.data.workers} is more than this "
              f"process's {cores} cores; they share them", flush=True)  # fmt: skip
    # torch says it again as each pass over the data starts, in its own words and source line.
    warnings.filterwarnings("ignore", message="This DataLoader will create")
    return DataLoader(dataset, batch_sampler=batches, num_workers=recipe.data.workers,
                      pin_memory=fabric.device.type == "cuda",
                      worker_init_fn=leave_sigterm_to_the_parent)  # fmt: skip


def leave_sigterm_to_the_parent(worker_id: int) -> None:
    """In a loader's worker: ignore SIGTERM. ``timeout``, ``kill -TERM -PGID`` and a
    cluster's scheduler signal the whole process group; a worker that died of it (torch's
    own handler) would end the run with the loader's error before the parent could stop as
    on Ctrl-C. The parent stops its workers as it stops, and a worker whose parent is gone
    ends by itself.

    A worker stopped so may still be handing a batch's shared memory to a parent that no
    longer reads (multiprocessing's resource sharer reports through ``sys.excepthook``): that
    broken connection is no error, and is not printed."""
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    sys.excepthook = _quiet_broken_connections


def _quiet_broken_connections(kind: type[BaseException], error: BaseException, trace: Any) -> None:
    if not issubclass(kind, OSError):
        sys.__excepthook__(kind, error, trace)


def split_indices(store: SampleStore, splits: str) -> list[int]:
    """The store's rows in ``splits`` (comma-separated), or every row for ``all``."""
    if splits == "all":
        return list(range(len(store.rows)))
    return training_indices(store, splits=[name.strip() for name in splits.split(",")])


class StepBatches(Sampler[list[tuple[int, int]]]):
    """Batches of ``(epoch, item)`` keys for steps ``start_step, start_step + 1, ...``.

    Each epoch is a permutation seeded by (seed, epoch). A step takes the next
    ``batch_size * accumulate * world_size`` items of it, as ``accumulate`` micro-batches in a
    row, each process its own slice of every micro-batch; so the data a step sees depends only
    on (seed, step), whatever the number of workers and wherever a run resumed, and one step
    of ``accumulate`` micro-batches of B sees the items of one step of a single batch of
    ``accumulate * B``.
    """

    def __init__(
        self,
        num_items: int,
        *,
        batch_size: int,
        seed: int,
        start_step: int,
        total_steps: int,
        rank: int = 0,
        world_size: int = 1,
        accumulate: int = 1,
    ) -> None:
        step_items = batch_size * accumulate * world_size
        if num_items < step_items:
            each = (
                f" (train.batch_size {batch_size}"
                + (f" x train.accumulate {accumulate}" if accumulate > 1 else "")
                + (f" on each of {world_size} processes)" if world_size > 1 else ")")
            )
            fewer = "train.batch_size or train.accumulate" + (
                " or the processes (train.devices)" if world_size > 1 else ""
            )
            raise MusicSSLError(
                f"the training set has {num_items} clips (a longer recording counts once per "
                f"{PART_SECONDS:g} s), fewer than one step's {step_items}{each}: lower "
                f"{fewer}, or use more audio"
            )
        self.num_items, self.batch_size, self.seed = num_items, batch_size, seed
        self.start_step, self.total_steps = start_step, total_steps
        self.rank, self.world_size, self.accumulate = rank, world_size, accumulate
        self.steps_per_epoch = num_items // step_items

    def __len__(self) -> int:
        return (self.total_steps - self.start_step) * self.accumulate

    def __iter__(self) -> Iterator[list[tuple[int, int]]]:
        epoch, order = -1, torch.empty(0, dtype=torch.long)
        for step in range(self.start_step, self.total_steps):
            if step // self.steps_per_epoch != epoch:
                epoch = step // self.steps_per_epoch
                generator = torch.Generator().manual_seed(self.seed * 1_000_003 + epoch)
                order = torch.randperm(self.num_items, generator=generator)
            for micro in range(self.accumulate):
                batch = ((step % self.steps_per_epoch) * self.accumulate + micro) * self.world_size
                begin = (batch + self.rank) * self.batch_size
                yield [(epoch, item) for item in order[begin : begin + self.batch_size].tolist()]


def step_groups(
    loader: Iterable[dict[str, Tensor]], size: int, *, waited: Callable[[float], None]
) -> Iterator[list[dict[str, Tensor]]]:
    """The loader's micro-batches, ``size`` at a time (one optimiser step's); ``waited`` is
    told the seconds the loop spent waiting for each group to arrive."""
    batches = iter(loader)
    while True:
        start = time.perf_counter()
        group = list(itertools.islice(batches, size))
        if len(group) < size:
            return
        waited(time.perf_counter() - start)
        yield group
