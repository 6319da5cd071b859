"""Where a run stands before any training: the paths a new run keeps, and whether a run
with a checkpoint has steps left.

``anchored(recipe)`` fixes a new run's paths so that it resumes and is read from any folder;
``finished_step`` and ``finished_note`` read a run's latest training state, so that a
finished run is said to be finished before a store is looked for or a process started;
``unfinished_note`` says, to a verb that reads a run, that the run has steps left.
"""

from __future__ import annotations

import copy
import os
from pathlib import Path

from musicssl import checkpoint
from musicssl.errors import MusicSSLError
from musicssl.recipe import Recipe, TrainSettings


def anchored(recipe: Recipe) -> Recipe:
    """A copy of ``recipe`` whose paths hold from any folder a run is resumed or read from:
    ``data.store`` and ``data.corpus`` absolute (``~`` expanded, as a shell leaves it after
    ``data.store=``), and ``train.init_from`` the absolute checkpoint folder it names now (a
    run's latest, whatever that run does next).

    Raises:
        MusicSSLError: ``train.init_from`` names no checkpoint.
    """
    recipe = copy.deepcopy(recipe)
    store = os.path.expanduser(recipe.data.store)
    recipe.data.store = os.path.abspath(store) if store else ""
    recipe.data.corpus = os.path.abspath(os.path.expanduser(recipe.data.corpus))
    if recipe.train.init_from:
        try:
            found = checkpoint.checkpoint_folder(os.path.expanduser(recipe.train.init_from))
        except MusicSSLError as error:
            raise MusicSSLError(f"train.init_from: {error}") from None
        recipe.train.init_from = os.path.abspath(found)
    return recipe


def finished_step(run: str | os.PathLike, settings: TrainSettings) -> int | None:
    """The step a run with a checkpoint finished at (its settled last step, or ``train.steps``
    without a time budget), or None while it has steps left.

    Raises:
        MusicSSLError: its latest checkpoint is damaged (the message says how to go on).
    """
    step, last = _step_of_last(run, settings)
    return step if step >= last else None


def _step_of_last(run: str | os.PathLike, settings: TrainSettings) -> tuple[int, int]:
    """The latest checkpoint's step, and the step the run ends at (its settled horizon, or
    ``train.steps`` until a time budget settles one)."""
    state = checkpoint.read_training_state(run, peek=True)  # the optimiser's state unread
    return int(state["step"]), int(state.get("horizon", settings.steps))


def finished_note(run: str | os.PathLike, settings: TrainSettings) -> str | None:
    """What a resumed run that has nothing left to train says, and how to train longer;
    None while it has steps left.

    Raises:
        MusicSSLError: its latest checkpoint is damaged (the message says how to go on), or
            its encoder's weights cannot be read.
    """
    step = finished_step(run, settings)
    if step is None:
        return None
    run = Path(run)
    # The note offers the weights to train on from: they must be there to be read.
    checkpoint.read_weights(checkpoint.encoder_weights(run))
    # A run under a time budget ends at the step that fitted it, unless train.steps came first.
    limit = "train.steps" if settings.minutes is None or step >= settings.steps else "train.minutes"
    recipe = run / "recipe.yaml"
    return (
        f"pretrain: {run} already finished at step {step}; to train on from its weights, "
        f"start a new run from it (its schedule starts again): musicssl pretrain {recipe} "
        f"train.init_from={run} --out NEW_RUN; or, from the start, a longer one with a larger "
        f"{limit}: musicssl pretrain {recipe} {limit}=... --out NEW_RUN"
    )


def unfinished_note(source: str | os.PathLike, verb: str) -> str | None:
    """What a verb that reads a run's encoder says when the run has steps left (still
    training, or stopped before its end): which step it reads. None for a finished run, a
    checkpoint folder or anything else (whose reader says what is wrong with it)."""
    run = Path(source)
    if not checkpoint.is_run(run) or not (run / "recipe.yaml").is_file():
        return None
    try:
        step, last = _step_of_last(run, Recipe.load(run / "recipe.yaml").train)
    except MusicSSLError:
        return None
    if step >= last:
        return None
    return (
        f"note: {run} has not finished training (step {step} of {last}; still "
        f"running, or stopped: musicssl pretrain --resume {run} goes on); {verb} reads its "
        "latest checkpoint"
    )
