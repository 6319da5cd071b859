"""The pretraining loop: one explicit loop on Lightning Fabric, resumable from any checkpoint.

Run folder::

    recipe.yaml                   the resolved recipe
    metrics.csv                   one row per logged step
    tensorboard/                  the same scalars for TensorBoard
    checkpoints/step-00000200/    encoder.safetensors + encoder.json (what ``musicssl.load``
                                  reads), method.safetensors + state.pt (resume), recipe.yaml
    latest                        name of the newest complete checkpoint

Everything random is a function of (seed, step), so a resumed run draws the same batches and
augmentations as an uninterrupted one.
"""

from __future__ import annotations

import csv
import math
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import DataLoader, Sampler
from tqdm.auto import tqdm

from musicssl import checkpoint
from musicssl.augment import build_chain
from musicssl.encoders import build_encoder
from musicssl.errors import MusicSSLError
from musicssl.methods import build_method
from musicssl.monitor import ProbeMonitor
from musicssl.recipe import Recipe
from musicssl.sampling import TwoCrops, pcm_to_float
from musicssl.store import SampleStore, pack

# Under a time budget the last step is fitted after each of FIT_STEPS steps: first roughly
# (start-up included), then from the speed of the steps since the last fit, each time holding
# back less of the time left (FIT_MARGINS). The last fit comes late because the first hundred
# steps of a CPU run ran up to a quarter slower than the rest, and a fit on them alone ended
# runs a minute or more early.
FIT_STEPS = (20, 80, 320)
FIT_MARGINS = (0.1, 0.03, 0.02)


class TrainingDiverged(MusicSSLError):
    """The loss became NaN or infinite; the last good checkpoint is kept."""


class StepBatches(Sampler[list[tuple[int, int]]]):
    """Batches of ``(epoch, item)`` keys for steps ``start_step, start_step + 1, ...``.

    Each epoch is a permutation seeded by (seed, epoch); each process takes its own slice of
    every global batch, so the data a step sees depends only on (seed, step), whatever the
    number of workers and wherever a run resumed.
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
    ) -> None:
        global_batch = batch_size * world_size
        if num_items < global_batch:
            raise MusicSSLError(
                f"the training set has {num_items} clips, fewer than one batch of "
                f"{global_batch}: lower train.batch_size or use more audio"
            )
        self.num_items, self.batch_size, self.seed = num_items, batch_size, seed
        self.start_step, self.total_steps = start_step, total_steps
        self.rank, self.world_size = rank, world_size
        self.steps_per_epoch = num_items // global_batch

    def __len__(self) -> int:
        return self.total_steps - self.start_step

    def __iter__(self) -> Iterator[list[tuple[int, int]]]:
        epoch, order = -1, torch.empty(0, dtype=torch.long)
        for step in range(self.start_step, self.total_steps):
            if step // self.steps_per_epoch != epoch:
                epoch = step // self.steps_per_epoch
                generator = torch.Generator().manual_seed(self.seed * 1_000_003 + epoch)
                order = torch.randperm(self.num_items, generator=generator)
            begin = ((step % self.steps_per_epoch) * self.world_size + self.rank) * self.batch_size
            yield [(epoch, item) for item in order[begin : begin + self.batch_size].tolist()]


def pretrain(
    recipe: Recipe,
    *,
    out: str | os.PathLike,
    resume: bool = False,
    progress: bool = True,
) -> Path:
    """Pretrain the recipe's encoder with its method; returns the final checkpoint folder.

    Args:
        recipe: the resolved recipe.
        out: the run folder; with ``resume`` it must hold a run with a checkpoint.
        resume: continue from the run's latest checkpoint (same step, optimiser state, data).
        progress: show a progress bar.

    Raises:
        TrainingDiverged: the loss stopped being finite.
        MusicSSLError: bad settings or data.
    """
    import lightning as L

    run = Path(out)
    settings = recipe.train
    fabric = L.Fabric(
        accelerator=settings.accelerator,
        devices=_devices(settings.devices),
        precision=settings.precision,
        strategy=settings.strategy,
    )
    fabric.launch()
    # Decaying echoes and reverb tails reach subnormal floats, which x86 CPUs process ~10x
    # slower; flushing them to zero changes nothing audible.
    torch.set_flush_denormal(True)
    torch.manual_seed(settings.seed)  # the same initial weights on every process

    encoder = build_encoder(recipe.encoder.name, **recipe.encoder.options)
    method = build_method(recipe.method.name, encoder, **recipe.method.options)
    chain = build_chain(recipe.augment.name, sr=encoder.sample_rate, **recipe.augment.options)
    chain = chain.to(fabric.device)
    # A method may ask for groups with their own learning-rate scale (BYOL's predictor).
    if hasattr(method, "parameter_groups"):
        groups = method.parameter_groups()
    else:
        groups = [{"params": [p for p in method.parameters() if p.requires_grad]}]
    groups = [
        {"params": group["params"], "lr": recipe.optim.lr * group.get("lr_scale", 1.0)}
        for group in groups
    ]
    optimizer = torch.optim.AdamW(
        groups, lr=recipe.optim.lr, weight_decay=recipe.optim.weight_decay
    )
    # The last step: ``steps``, or, under a time budget, the step that fits it (set below once
    # the speed is known, then kept in every checkpoint so a resumed run ends at the same step).
    horizon = [settings.steps]
    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, _lr_factor(recipe, horizon))

    start_step, resume_state = 0, None
    if resume:
        resume_state = checkpoint.load_training_state(run, method)
        start_step = int(resume_state["step"])
        horizon[0] = int(resume_state.get("horizon", settings.steps))
    elif fabric.is_global_zero:
        checkpoint.start_run(run, recipe)
    if start_step >= horizon[0]:
        return checkpoint.latest(run)
    # Fitting the last step to train.minutes, until it is settled (None: settled, or no budget).
    budget = None
    if settings.minutes is not None and "horizon" not in (resume_state or {}):
        budget = _BudgetFit(settings, start_step=start_step)

    store = _training_store(recipe, sr=encoder.sample_rate, fabric=fabric)
    train_indices = [i for i, row in enumerate(store.rows) if row.get("split", "train") == "train"]
    dataset = TwoCrops(
        store, num_samples=encoder.input_samples, seed=settings.seed, indices=train_indices
    )
    batches = StepBatches(
        len(dataset),
        batch_size=settings.batch_size,
        seed=settings.seed,
        start_step=start_step,
        total_steps=settings.steps,
        rank=fabric.global_rank,
        world_size=fabric.world_size,
    )
    loader = DataLoader(
        dataset,
        batch_sampler=batches,
        num_workers=recipe.data.workers,
        pin_memory=fabric.device.type == "cuda",
    )
    model, optimizer = fabric.setup(method, optimizer)
    if resume_state is not None:
        # After setup, so that the optimiser state lands on the parameters' device.
        optimizer.load_state_dict(resume_state["optimizer"])
        schedule.load_state_dict(resume_state["schedule"])
    # On a GPU the compiled networks replay as CUDA graphs (the "reduce-overhead" mode): their
    # forward and backward take the host a few launches instead of hundreds, so it keeps ahead
    # of the device and queues the augmentation chain while the last step still runs (an H100
    # step took the host 20-24 ms to queue, 13.5-16 ms graphed: bench/results/gpu_h100.md).
    graphed = settings.compile and fabric.device.type == "cuda"
    if settings.compile:
        # The networks are compiled in place (their weights keep their names); the loss stays
        # eager: Triton failed to build the fused NT-Xent kernel on an H100 (torch 2.11).
        for network in method.children():
            network.compile(mode="reduce-overhead" if graphed else None)

    logger = _Logger(run, start_step=start_step, enabled=fabric.is_global_zero)
    monitor = None
    if settings.probe_every and fabric.is_global_zero:
        monitor = ProbeMonitor(store, label=settings.probe_label, num_samples=encoder.input_samples)
    # Augmentation parameters are drawn on the host (a few numbers per example), so the
    # device never has to report back which examples a transform applies to.
    generator = torch.Generator()
    bar = tqdm(
        total=settings.steps,
        initial=start_step,
        unit="step",
        desc="pretrain",
        disable=not (progress and fabric.is_global_zero),
    )
    window_start, window_views = time.perf_counter(), 0
    pending: list[dict[str, torch.Tensor]] = []
    step = start_step
    for batch in loader:
        if graphed:
            # A new step: the graphs may reuse the memory of the last step's outputs.
            torch.compiler.cudagraph_mark_step_begin()
        x_a = pcm_to_float(batch["x_a"].to(fabric.device, non_blocking=True))
        x_b = pcm_to_float(batch["x_b"].to(fabric.device, non_blocking=True))
        with torch.no_grad():
            # Augmentation draws depend on (seed, step, process) only: resumable.
            generator.manual_seed((settings.seed * 1_000_003 + step) * 4099 + fabric.global_rank)
            # Both views in one pass of the chain (each example draws its own parameters):
            # half the kernel launches of a pass per view, which bound it on a GPU.
            views, _ = chain(torch.cat([x_a, x_b]), generator=generator)
            x_a, x_b = views.chunk(2)
        outputs = model(x_a, x_b)
        fabric.backward(outputs["loss"])
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        schedule.step()
        extra = {}
        if hasattr(method, "after_optimizer_step"):
            extra = method.after_optimizer_step(step + 1, horizon[0])
        step += 1
        window_views += 2 * x_a.shape[0] * fabric.world_size
        pending.append({key: value.detach() for key, value in outputs.items()})
        bar.update()
        if budget is not None and budget.due(step):
            horizon[0] = int(fabric.broadcast(budget.fit(step, time.perf_counter()), src=0))
            bar.total = horizon[0]
            if budget.settled(step, horizon[0]):
                budget = None

        checkpoint_due = step % settings.checkpoint_every == 0 or step == horizon[0]
        probe_due = monitor is not None and (step % settings.probe_every == 0 or step == horizon[0])
        if step % settings.log_every == 0 or checkpoint_due or probe_due:
            # One host sync per logged window, not per step.
            means = {
                key: torch.stack([p[key] for p in pending]).float().mean().item()
                for key in pending[0]
            }
            pending.clear()
            if not all(math.isfinite(value) for value in means.values()):
                bar.close()
                raise TrainingDiverged(
                    f"the loss is not finite at step {step} ({means}); the last good "
                    f"checkpoint is kept in {run / 'checkpoints'}. Lower optim.lr, or try "
                    "train.precision=32-true."
                )
            seconds = time.perf_counter() - window_start
            row = {
                "step": step,
                **means,
                **extra,
                "lr": schedule.get_last_lr()[0],
                "views_per_second": window_views / max(seconds, 1e-9),
            }
            if probe_due:
                row.update(monitor(encoder))
            logger.log(row)
            bar.set_postfix(loss=f"{means['loss']:.4f}", views_s=f"{row['views_per_second']:.1f}")
            window_start, window_views = time.perf_counter(), 0
        if checkpoint_due:
            if fabric.is_global_zero:
                state = {
                    "optimizer": optimizer.state_dict(),
                    "schedule": schedule.state_dict(),
                    "step": step,
                }
                if budget is None:
                    state["horizon"] = horizon[0]
                checkpoint.write_checkpoint(
                    run,
                    step=step,
                    encoder_name=recipe.encoder.name,
                    method=method,
                    training_state=state,
                    recipe=recipe,
                )
            fabric.barrier()
        if step >= horizon[0]:
            break
    bar.close()
    logger.close()
    return checkpoint.latest(run)


def _training_store(recipe: Recipe, *, sr: int, fabric: Any) -> SampleStore:
    """The recipe's store, or the built-in corpus packed at ``sr`` (built on first use)."""
    if recipe.data.store:
        store = SampleStore(recipe.data.store)
    else:
        corpus = Path(recipe.data.corpus)
        store_path = corpus / f"store-{sr}"
        if fabric.is_global_zero:
            from musicssl.builtin import build_corpus

            build_corpus(corpus, size=recipe.data.corpus_size, seed=0)
            pack(corpus / "manifest.jsonl", out=store_path, sr=sr)
        fabric.barrier()
        store = SampleStore(store_path)
    if store.sr != sr:
        raise MusicSSLError(
            f"{store.path}: the store is at {store.sr} Hz but the encoder expects "
            f"{sr} Hz; pack it again with --sr {sr}"
        )
    store.prefetch()
    return store


class _BudgetFit:
    """Where a run under ``train.minutes`` ends, fitted after each of ``FIT_STEPS`` steps.

    The clock starts when the object is made; ``fit`` is called when ``due`` says so.
    """

    def __init__(self, settings: Any, *, start_step: int) -> None:
        self.settings = settings
        self.start_step = start_step
        self.began = time.perf_counter()
        self.fitted_at = 0.0  # seconds after the start, at the last fit

    def due(self, step: int) -> bool:
        return step - self.start_step in FIT_STEPS

    def fit(self, step: int, now: float) -> int:
        """The last step, from the speed since the last fit (``now``: ``time.perf_counter()``)."""
        which = FIT_STEPS.index(step - self.start_step)
        elapsed = now - self.began
        since = FIT_STEPS[which - 1] if which else 0
        per_step = (elapsed - self.fitted_at) / (FIT_STEPS[which] - since)
        self.fitted_at = elapsed
        return _fit_budget(
            self.settings,
            step=step,
            elapsed=elapsed,
            seconds_per_step=per_step,
            margin=FIT_MARGINS[which],
        )

    def settled(self, step: int, last: int) -> bool:
        """No fit after this one: it was the last, or the run ends before the next."""
        which = FIT_STEPS.index(step - self.start_step)
        return which == len(FIT_STEPS) - 1 or last <= self.start_step + FIT_STEPS[which + 1]


def _fit_budget(
    settings: Any, *, step: int, elapsed: float, seconds_per_step: float, margin: float
) -> int:
    """The last step that fits ``settings.minutes`` at ``seconds_per_step``.

    ``margin``, a share of the remaining time, is held back for checkpoints, probes and the
    error of the estimate: a tenth after the first steps, less once the steady speed is known.
    """
    remaining = 60 * settings.minutes - elapsed
    fits = step + int((1 - margin) * remaining / max(seconds_per_step, 1e-9))
    return max(step, min(settings.steps, fits))


def _lr_factor(recipe: Recipe, horizon: list[int]):
    warmup, floor = recipe.optim.warmup_steps, recipe.optim.min_lr_ratio

    def factor(step: int) -> float:
        total = horizon[0]  # read at every step: a time budget may shorten the run
        if step < warmup:
            return (step + 1) / warmup
        progress = (step - warmup) / max(1, total - warmup)
        return floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))

    return factor


def _devices(text: str) -> int | str:
    return int(text) if text.isdigit() else text


class _Logger:
    """metrics.csv (rows after a resumed step are dropped) and TensorBoard scalars.

    The CSV is rewritten whole (temporary file + rename) at every log line, so a killed run
    never leaves a torn row; at one row per ``log_every`` steps this costs milliseconds.
    """

    def __init__(self, run: Path, *, start_step: int, enabled: bool) -> None:
        self.enabled = enabled
        self.path = run / "metrics.csv"
        self.rows: list[dict[str, Any]] = []
        self.writer = None
        if not enabled:
            return
        if self.path.exists():
            with open(self.path, newline="") as handle:
                self.rows = [
                    row for row in csv.DictReader(handle) if int(row["step"]) <= start_step
                ]
        try:
            from torch.utils.tensorboard import SummaryWriter

            self.writer = SummaryWriter(str(run / "tensorboard"), purge_step=start_step + 1)
        except ImportError:
            self.writer = None

    def log(self, row: dict[str, Any]) -> None:
        if not self.enabled:
            return
        self.rows.append(row)
        columns = list(dict.fromkeys(key for r in self.rows for key in r))
        temporary = self.path.with_name(".metrics.csv.partial")
        with open(temporary, "w", newline="") as handle:
            writer = csv.DictWriter(handle, fieldnames=columns)
            writer.writeheader()
            writer.writerows(self.rows)
        os.replace(temporary, self.path)
        if self.writer is not None:
            for key, value in row.items():
                if key != "step":
                    self.writer.add_scalar(key, value, row["step"])
            self.writer.flush()

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
