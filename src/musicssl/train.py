"""Pretraining: build the parts from a recipe, then one explicit loop on Lightning Fabric.

``build_parts(recipe)`` makes the encoder, the method, the augmentation chain and the
optimiser; ``pretrain`` runs the loop over a sample store and writes the run folder (its
layout lives in ``musicssl.checkpoint``). Everything random is a function of (seed, step), so a
resumed run draws the same batches and augmentations as an uninterrupted one.
"""

from __future__ import annotations

import contextlib
import math
import os
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from musicssl import checkpoint, train_data
from musicssl.augment import build_chain, chain_options
from musicssl.budget import TimeBudget
from musicssl.encoders import Encoder, build_encoder, encoder_options
from musicssl.errors import MusicSSLError
from musicssl.methods import Method, build_method, method_options
from musicssl.monitor import ProbeMonitor
from musicssl.plural import counted
from musicssl.progress import bar as progress_bar
from musicssl.recipe import OptimSettings, Recipe, TrainSettings
from musicssl.run_state import anchored, finished_note
from musicssl.runlog import RunLog, check_outputs
from musicssl.sampling import pcm_to_float
from musicssl.store import SampleStore
from musicssl.train_devices import start_fabric


@dataclass
class Parts:
    """What a run trains, built from a recipe."""

    encoder: Encoder
    method: Method
    chain: nn.Module
    optimizer: torch.optim.Optimizer
    method_name: str = ""


# AdamW's update as one kernel per step rather than several per group of tensors: on torch 2.8
# and later, where the fused kernel is mature on CPU, CUDA and MPS alike; earlier torch keeps
# its default. Same update, to rounding.
FUSED_ADAMW = True if torch.__version__ >= "2.8" else None


def build_parts(recipe: Recipe, *, start: bool = True) -> Parts:
    """The encoder, method, augmentation chain and optimiser a recipe describes; with
    ``start``, the encoder holds the weights of ``train.init_from`` (if any) before the
    method is built around it.

    Raises:
        MusicSSLError: a part's name or options are not ones its constructor takes, or
            ``train.init_from`` is not a checkpoint of the same encoder.
    """
    # Every part's options are checked before any part is built.
    encoder_options(recipe.encoder.name, recipe.encoder.options)
    method_options(recipe.method.name, recipe.method.options)
    chain_options(recipe.augment.name, recipe.augment.options)
    # A value out of range is found by the part that takes it; the message names the section.
    with _options_of("encoder"):
        encoder = build_encoder(recipe.encoder.name, **recipe.encoder.options)
    if start and recipe.train.init_from:
        try:
            checkpoint.start_encoder_from(recipe.train.init_from, encoder, recipe.encoder.name)
        except MusicSSLError as error:
            raise MusicSSLError(f"train.init_from: {error}") from None
    with _options_of("method"):
        method = build_method(recipe.method.name, encoder, **recipe.method.options)
    with _options_of("augment"):
        chain = build_chain(recipe.augment.name, sr=encoder.sample_rate, **recipe.augment.options)
    groups = [
        {"params": group["params"], "lr_scale": group.get("lr_scale", 1.0)}
        for group in method.parameter_groups()
    ]
    optimizer = torch.optim.AdamW(
        groups, lr=recipe.optim.lr, weight_decay=recipe.optim.weight_decay, fused=FUSED_ADAMW
    )
    return Parts(encoder, method, chain, optimizer, method_name=recipe.method.name)


@contextlib.contextmanager
def _options_of(section: str) -> Iterator[None]:
    """A ``MusicSSLError`` raised inside, told as one about the recipe's ``section.options``."""
    try:
        yield
    except MusicSSLError as error:
        raise MusicSSLError(f"{section}.options: {error}") from None


def pretrain(
    recipe: Recipe,
    *,
    out: str | os.PathLike,
    resume: bool = False,
    progress: bool = True,
) -> Path:
    """Pretrain the recipe's encoder on ``recipe.data.store``; returns the final checkpoint.

    Args:
        recipe: the resolved recipe; its ``data.store`` names a packed sample store.
        out: the run folder; with ``resume`` it must hold a run with a checkpoint.
        resume: continue from the run's latest checkpoint (same step, optimiser state, data).
        progress: show a progress bar.

    Raises:
        TrainingDiverged: the loss stopped being finite.
        MusicSSLError: bad settings or data, or an ``out`` that is not a run of ours.
    """
    if not isinstance(recipe, Recipe):
        raise MusicSSLError(f"recipe must be a Recipe (Recipe.load(NAME_OR_PATH) reads one), "
                            f"got {recipe!r}")  # fmt: skip
    run = Path(out)
    going_on = resume and checkpoint.is_run(run)
    if going_on and (note := finished_note(run, recipe.train)) is not None:
        print(note, flush=True)  # before any process starts
        return checkpoint.latest(run)
    recipe = recipe if going_on else anchored(recipe)  # a new run's paths hold from anywhere
    settings, store = recipe.train, train_data.training_store(recipe)
    indices = train_data.split_indices(store, recipe.data.splits)
    fabric = start_fabric(settings)
    torch.manual_seed(settings.seed)  # the same initial weights on every process
    parts = build_parts(recipe, start=not going_on)
    train_data.check_rate(store, parts.encoder)
    train_data.check_captions(store, indices, parts.method.uses_text, note=fabric.is_global_zero)
    parts.chain.to(fabric.device)
    state = _open_run(run, recipe, parts.method, store, resume=resume,
                      writer=fabric.is_global_zero)  # fmt: skip
    _check_processes(run, state, fabric.world_size)
    start_step, last_step = int(state.get("step", 0)), int(state.get("horizon", settings.steps))
    budget = _budget(settings, state, start_step=start_step)
    loader = train_data.loader(recipe, store, indices, parts.encoder, fabric, start_step=start_step)
    model, optimizer = fabric.setup(parts.method, parts.optimizer)
    if state:  # after setup, so that the optimiser state lands on the parameters' device
        optimizer.load_state_dict(state["optimizer"])
    graphed = _compile(parts.method, settings.compile, fabric.device)
    if settings.compile and progress and fabric.is_global_zero:
        print("pretrain: compiling the training step (train.compile=true); the first steps "
              "take a minute or more", flush=True)  # fmt: skip
    log = RunLog(run, start_step=start_step, enabled=fabric.is_global_zero,
                 precision=settings.precision)  # fmt: skip
    monitor = _monitor(recipe, store, parts.encoder) if fabric.is_global_zero else None
    bar = progress_bar(total=last_step, initial=start_step, unit="step", desc="pretrain",
               disable=not (progress and fabric.is_global_zero))  # fmt: skip
    generator = torch.Generator()  # augmentation draws are made on the host
    step = start_step
    for batches in train_data.step_groups(loader, settings.accumulate, waited=log.waited):
        _set_learning_rate(optimizer, recipe.optim, step=step, last_step=last_step)
        _accumulate(model, batches, parts, store, fabric, log, generator, seed=settings.seed,
                    step=step, graphed=graphed)  # fmt: skip
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        extra = parts.method.after_optimizer_step(step + 1, last_step)
        step += 1
        if budget is not None and (fitted := budget.update(step)) is not None:
            last_step = bar.total = int(fabric.broadcast(fitted, src=0))
        end = step >= last_step
        save = end or step % settings.checkpoint_every == 0
        probe = monitor is not None and (end or step % settings.probe_every == 0)
        if end or save or probe or step % settings.log_every == 0:
            scores = monitor(parts.encoder) if monitor is not None and probe else {}
            row = log.write(step, {**extra, **scores}, lr=optimizer.param_groups[0]["lr"], run=run)
            bar.set_postfix(loss=f"{row['loss']:.4f}", views_s=f"{row['views_per_second']:.1f}",
                            refresh=False)  # fmt: skip
        bar.update()  # after the row: the bar shows this step's loss
        if save:
            settled = budget is None or budget.settled
            _save(run, recipe, parts.method, optimizer, fabric, store.identity, step=step,
                  last_step=last_step if settled else None)  # fmt: skip
        if end:
            break
    bar.close()
    log.close()
    if fabric.is_global_zero:
        _say_early_end(settings, last_step)
    return checkpoint.latest(run)


def _say_early_end(settings: TrainSettings, last_step: int) -> None:
    """Say, with or without a bar, that the time budget ended the run before train.steps."""
    if last_step < settings.steps:
        print(f"pretrain: train.minutes={settings.minutes:g} ended the run at step {last_step} "
              f"of train.steps={settings.steps}", flush=True)  # fmt: skip


def _budget(
    settings: TrainSettings, state: dict[str, Any], *, start_step: int
) -> TimeBudget | None:
    """The wall-clock budget of ``train.minutes``, until a checkpoint has settled its last
    step (``horizon``); None without one."""
    if settings.minutes is None or "horizon" in state:
        return None
    return TimeBudget(settings.minutes, max_steps=settings.steps, start_step=start_step)


def _open_run(
    run: Path, recipe: Recipe, method: Method, store: SampleStore, *, resume: bool, writer: bool
) -> dict[str, Any]:
    """The training state to go on from (empty: from step 0), once it is known to go on on the
    same ``store`` (whose place the ``writer`` process keeps); a new run's folder is started
    by the ``writer``, which says what its encoder starts from."""
    if resume and checkpoint.is_run(run):
        state = checkpoint.load_training_state(run, method)
        train_data.check_same_store(state, store, run)
        if writer:
            checkpoint.keep_store_place(run, recipe)
            print(f"pretrain: going on from step {int(state['step'])} of {run}", flush=True)
        return state
    if resume:  # killed before its first checkpoint: it starts again from step 0
        checkpoint.check_resumable(run)
        if writer:
            print(f"pretrain: {run} stopped before its first checkpoint; it starts again from "
                  "step 0", flush=True)  # fmt: skip
    elif writer:
        checkpoint.start_run(run, recipe)
    if recipe.train.init_from and writer:
        print(f"pretrain: the encoder starts from {recipe.train.init_from}", flush=True)
    if writer and recipe.optim.warmup_steps >= recipe.train.steps:
        print(f"note: optim.warmup_steps={recipe.optim.warmup_steps} is not under "
              f"train.steps={recipe.train.steps}: the learning rate only rises (lower "
              "optim.warmup_steps for a short run)", flush=True)  # fmt: skip
    return {}


def _save(
    run: Path,
    recipe: Recipe,
    method: Method,
    optimizer: torch.optim.Optimizer,
    fabric: Any,
    store: dict[str, Any],
    *,
    step: int,
    last_step: int | None,
) -> None:
    """A checkpoint from the first process, with the identity of the ``store`` it trains on;
    the last step only once it is settled."""
    state: dict[str, Any] = {"optimizer": optimizer.state_dict(), "step": step, "store": store,
                             "processes": fabric.world_size}  # fmt: skip
    if last_step is not None:
        state["horizon"] = last_step
    if fabric.is_global_zero:
        checkpoint.write_checkpoint(
            run,
            step=step,
            encoder_name=recipe.encoder.name,
            method=method,
            training_state=state,
            recipe=recipe,
        )
    fabric.barrier()


def learning_rate_factor(step: int, *, last_step: int, optim: OptimSettings) -> float:
    """Linear warm-up over ``optim.warmup_steps``, then a cosine to ``optim.min_lr_ratio``."""
    warmup, floor = optim.warmup_steps, optim.min_lr_ratio
    if step < warmup:
        return (step + 1) / warmup
    progress = min(1.0, (step - warmup) / max(1, last_step - warmup))
    return floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * progress))


def _accumulate(
    model: Any,
    batches: list[dict[str, Tensor]],
    parts: Parts,
    store: SampleStore,
    fabric: Any,
    log: RunLog,
    generator: torch.Generator,
    *,
    seed: int,
    step: int,
    graphed: bool,
) -> None:
    """The gradients of one optimiser step, summed over its micro-batches, each augmented
    with its own draws; their outputs go to ``log``."""
    for micro, batch in enumerate(batches):
        if graphed:  # a new pass: the graphs may reuse the memory of the last one's outputs
            torch.compiler.cudagraph_mark_step_begin()
        generator.manual_seed(_draw_seed(seed, step, fabric.global_rank, micro))
        views = _views(batch, parts.chain, fabric.device, generator, parts.method.num_views)
        # The gradients of all micro-batches but the last stay local until the last one.
        with fabric.no_backward_sync(model, enabled=micro < len(batches) - 1):
            outputs = model(*views, **_texts(batch, store, parts.method))
            check_outputs(outputs, parts.method_name)
            fabric.backward(outputs["loss"] / len(batches))
        log.add(outputs, views=len(views) * len(views[0]) * fabric.world_size)


def _check_processes(run: Path, state: dict[str, Any], processes: int) -> None:
    """Refuse to resume ``run`` on another number of processes than it began with: a step's
    batch is ``train.batch_size`` on each (a checkpoint before the count was kept: unsaid)."""
    began_on = int(state.get("processes", processes))
    if began_on != processes:
        raise MusicSSLError(
            f"{run}: it trained on {counted(began_on, 'process')}, and this launch started "
            f"{processes}; resume it on {began_on}"
        )


def _draw_seed(seed: int, step: int, rank: int, micro: int) -> int:
    """The augmentation seed of one micro-batch; the first's is the one a single batch gets."""
    return ((seed * 1_000_003 + step) * 4099 + rank + 65_537 * micro) % 2**63


def _monitor(recipe: Recipe, store: SampleStore, encoder: Encoder) -> ProbeMonitor | None:
    if not recipe.train.probe_every:
        return None
    return ProbeMonitor(store, label=recipe.train.probe_label, num_samples=encoder.input_samples)


def _compile(method: Method, enabled: bool, device: torch.device) -> bool:
    """Compile in place what the method trains (``Method.compile_for_training``); returns
    whether it replays as CUDA graphs.

    On a GPU the compiled networks replay as CUDA graphs (the "reduce-overhead" mode): their
    forward and backward take the host a few launches instead of hundreds, so it keeps ahead
    of the device and queues the augmentation chain while the last step still runs (an H100
    step took the host 20-24 ms to queue, 13.5-16 ms graphed: bench/results/gpu_h100.md).
    """
    graphed = enabled and device.type == "cuda"
    if enabled:
        # The front ends' complex FFTs run as torch's own kernels inside the compiled step;
        # torch would say so at every compile.
        warnings.filterwarnings("ignore", message="Torchinductor does not support code "
                                "generation for complex operators")  # fmt: skip
        method.compile_for_training("reduce-overhead" if graphed else None)
    return graphed


def _set_learning_rate(
    optimizer: torch.optim.Optimizer, optim: OptimSettings, *, step: int, last_step: int
) -> None:
    factor = learning_rate_factor(step, last_step=last_step, optim=optim)
    for group in optimizer.param_groups:
        group["lr"] = optim.lr * group["lr_scale"] * factor


def _texts(batch: dict[str, Tensor], store: SampleStore, method: Method) -> dict[str, list[str]]:
    """The batch's captions for a method that learns from text, else nothing."""
    if not method.uses_text:
        return {}
    return {"texts": [str(store.rows[i].get("caption") or "") for i in batch["index"].tolist()]}


@torch.no_grad()
def _views(
    batch: dict[str, Tensor],
    chain: nn.Module,
    device: torch.device,
    generator: torch.Generator,
    count: int,
) -> list[Tensor]:
    """``count`` (1 or 2) augmented views of a batch, from one pass of the chain, on the device.

    One pass for both views halves the kernel launches, which bound the chain on a GPU.
    """
    crops = [pcm_to_float(batch[key].to(device, non_blocking=True)) for key in ("x_a", "x_b")]
    views, _ = chain(torch.cat(crops[:count]), generator=generator)
    return list(views.chunk(count))
