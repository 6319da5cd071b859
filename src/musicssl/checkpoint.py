"""The run folder: the only module that knows its layout.

A run folder::

    recipe.yaml                   the resolved recipe
    metrics.csv                   one row per logged step
    tensorboard/                  the same scalars for TensorBoard
    checkpoints/step-00000200/    a checkpoint (below)
    latest                        the name of the newest complete checkpoint

A checkpoint folder::

    encoder.safetensors           the encoder's weights
    encoder.json                  {"name", "options"}: the encoder rebuilds from these alone
    method.safetensors            every network of the method (heads, EMA targets)
    state.pt                      optimiser and schedule state, step (plain tensors, no pickle)
    recipe.yaml                   the recipe it was trained with

A checkpoint is written into a hidden folder and renamed into place when whole; ``latest`` is
replaced after it, so a killed run always points at a complete checkpoint.
"""

from __future__ import annotations

import json
import os
import pickle
import shutil
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file
from torch import nn

from musicssl.encoders import Encoder, build_encoder
from musicssl.errors import MusicSSLError
from musicssl.files import LOCK_NAME, creation_mode, write_text
from musicssl.methods import Method
from musicssl.plugins import PACKAGES
from musicssl.recipe import Recipe

KEEP_CHECKPOINTS = 2
# Written first into every new run folder: a folder holding run files without it (and
# without a checkpoint) holds a user's files of those names, never overwritten.
RUN_MARKER = ".musicssl-run"
_RUN_FILES = (
    "recipe.yaml", "metrics.csv", "tensorboard", "checkpoints", "latest", LOCK_NAME, RUN_MARKER
)  # fmt: skip


def is_run(folder: str | os.PathLike) -> bool:
    """Whether ``folder`` holds a run with at least one complete checkpoint."""
    return (Path(folder) / "latest").is_file()


def check_new_run(run: str | os.PathLike) -> None:
    """Refuse ``run`` as a new run folder unless it is missing, empty, or left by a run.

    A folder left by a run that never reached its first checkpoint holds nothing but run
    files and the run's marker, and is taken; anything else is refused (a ``recipe.yaml`` or
    ``metrics.csv`` of the user's too), so no file of the user's is overwritten.

    Raises:
        MusicSSLError: the folder holds a run (resume it) or files musicssl did not write.
    """
    run = Path(run)
    if is_run(run):
        raise MusicSSLError(
            f"{run}: already holds a run; pass --resume to continue it or choose another --out"
        )
    if run.exists() and not run.is_dir():
        raise MusicSSLError(f"{run}: exists and is not a folder; choose another --out")
    if _kept(run):  # a run whose 'latest' is gone: starting again would rotate them away
        raise MusicSSLError(
            f"{run}: holds checkpoints ({', '.join(_kept(run))}) but no 'latest' file naming "
            f"the newest; write one name into {run / 'latest'} to resume from it (--resume), "
            "or choose another --out"
        )
    if foreign := _foreign(run):
        raise MusicSSLError(f"{run}: {foreign}; choose a new or empty --out")


def _foreign(run: Path) -> str:
    """What in ``run`` is not a file of a musicssl run, in words; "" when nothing is.

    Files named as a run's are a run's only beside the marker a run writes first (or a
    checkpoint): without it, they are the user's."""
    present = sorted(p.name for p in run.iterdir()) if run.is_dir() else []
    ours = (run / RUN_MARKER).is_file() or is_run(run)
    names = [n for n in present if n not in _RUN_FILES or not (ours or n == LOCK_NAME)]
    if not names:
        return ""
    more = ", ..." if len(names) > 3 else ""
    return f"the folder holds files that are not a musicssl run ({', '.join(names[:3])}{more})"


def check_resumable(run: str | os.PathLike) -> None:
    """Refuse ``--resume`` of a folder that holds no run of ours, checkpoint or not.

    Raises:
        MusicSSLError: no ``recipe.yaml``, or files musicssl did not write.
    """
    run = Path(run)
    if run.parent.name == "checkpoints" and is_run(run.parent.parent):
        raise MusicSSLError(
            f"{run}: a checkpoint of the run {run.parent.parent}; resume the run: musicssl "
            f"pretrain --resume {run.parent.parent}"
        )
    if not (run / "recipe.yaml").is_file():
        raise MusicSSLError(f"{run}: not a musicssl run folder (no recipe.yaml); nothing to resume")
    if not is_run(run):  # a run killed before its first checkpoint holds run files only
        if not _kept(run) and (foreign := _foreign(run)):
            raise MusicSSLError(f"{run}: {foreign}; nothing to resume")
        check_new_run(run)


def check_unchanged_recipe(run: Path, recipe: Recipe) -> None:
    """Refuse to resume ``run`` with a ``recipe.yaml`` that differs from the recipe its
    latest checkpoint trained with (edited by hand): the run would go on as another."""
    if not is_run(run):
        return
    saved = latest(run) / "recipe.yaml"
    if not saved.is_file():  # checkpoints of older versions kept no copy
        return
    then, now = _flat(Recipe.load(saved).to_dict()), _flat(recipe.to_dict())
    # A store may move: the run checks its identity instead (train_data.check_same_store).
    changed = sorted(
        key
        for key in then.keys() | now.keys()
        if then.get(key) != now.get(key) and key != "data.store"
    )
    if changed:
        raise MusicSSLError(
            f"{run / 'recipe.yaml'}: {changed[0]} is {now.get(changed[0])!r}, but the run "
            f"trained with {then.get(changed[0])!r} ({saved}); a resumed run goes on with its "
            "own recipe: put it back, or start a new run with --out"
        )


def keep_store_place(run: Path, recipe: Recipe) -> None:
    """Write the run's ``recipe.yaml`` again if its store has moved to ``recipe.data.store``
    (resumed with ``data.store=``): later resumes find it there."""
    path = run / "recipe.yaml"
    if Recipe.load(path).data.store != recipe.data.store:
        write_text(path, recipe.dump())


def _flat(tree: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for key, value in tree.items():
        if isinstance(value, dict) and value:
            flat.update(_flat(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat


def start_run(run: str | os.PathLike, recipe: Recipe) -> Path:
    """Make a new run folder holding ``recipe.yaml`` (see ``check_new_run`` for what is refused)."""
    check_new_run(run)
    run = Path(run)
    run.mkdir(parents=True, exist_ok=True)
    write_text(run / RUN_MARKER, "a musicssl run folder (musicssl pretrain wrote it)\n")
    write_text(run / "recipe.yaml", recipe.dump())
    return run


def latest(run: str | os.PathLike) -> Path:
    """The newest complete checkpoint folder of a run.

    Raises:
        MusicSSLError: the run has none, or its ``latest`` file names none that is there.
    """
    run = Path(run)
    pointer = run / "latest"
    try:
        name = pointer.read_text(encoding="utf-8").strip()
    except OSError:
        raise MusicSSLError(f"{run}: no checkpoint yet (not a musicssl run folder?)") from None
    except UnicodeDecodeError:
        raise MusicSSLError(f"{pointer}: damaged (not text); {_repair(run)}") from None
    if not name:
        raise MusicSSLError(f"{pointer}: empty; {_repair(run)}")
    folder = run / "checkpoints" / name
    if Path(name).name != name or not folder.is_dir():
        raise MusicSSLError(
            f"{run}: its 'latest' file names {name}, which is missing from {folder.parent} "
            f"(was the run folder changed by hand?); {_repair(run)}"
        )
    return folder


def checkpoint_folder(path: str | os.PathLike) -> Path:
    """The checkpoint that ``path`` names: a checkpoint folder, or a run folder's latest.

    Raises:
        MusicSSLError: it is neither.
    """
    if not os.path.lexists(path):
        raise MusicSSLError(f"{path}: no such run or checkpoint folder")
    folder = latest(path) if is_run(path) else Path(path)
    if not (folder / "encoder.json").is_file() or not (folder / "encoder.safetensors").is_file():
        inner = [child for child in sorted(Path(path).glob("*/latest")) if child.is_file()]
        if len(inner) == 1:  # the demo's folder: its run is one level down
            raise MusicSSLError(f"{path}: not a run; the run in it is {inner[0].parent}")
        weights = ("encoder.json", "encoder.safetensors", "state.pt")
        if (folder / "recipe.yaml").is_file() and (kept := _kept(folder)):
            raise MusicSSLError(
                f"{path}: a run whose 'latest' file is missing; name one of its checkpoints "
                f"({', '.join(str(folder / 'checkpoints' / name) for name in kept)}), or write "
                f"the newest's name into {folder / 'latest'}"
            )
        if (folder / "recipe.yaml").is_file() and not any((folder / n).exists() for n in weights):
            raise MusicSSLError(
                f"{path}: a run with no checkpoint yet (its first is written after "
                "train.checkpoint_every steps, and when it ends); wait for it"
            )
        if (folder / "config.json").is_file():  # what save_pretrained writes first
            raise MusicSSLError(f"{path}: a Hugging Face model folder? name it hf:{path}")
        raise MusicSSLError(
            f"{path}: not a checkpoint (needs encoder.json and encoder.safetensors, "
            "or a run folder with a 'latest' file)"
        )
    return folder


def encoder_spec(path: str | os.PathLike) -> dict[str, Any]:
    """``{"name", "options"}`` of a checkpoint's encoder (or a run's latest).

    Raises:
        MusicSSLError: not a checkpoint, or ``encoder.json`` is not an encoder description.
    """
    spec_path = checkpoint_folder(path) / "encoder.json"
    try:
        spec = json.loads(spec_path.read_text())
        found = {"name": str(spec["name"]), "options": dict(spec["options"])}
        return found | ({"package": str(spec["package"])} if spec.get("package") else {})
    except (OSError, ValueError, KeyError, TypeError) as error:
        raise MusicSSLError(f"{spec_path}: not an encoder description ({error})") from None


def encoder_weights(path: str | os.PathLike) -> Path:
    """The weights file of a checkpoint (or a run's latest)."""
    return checkpoint_folder(path) / "encoder.safetensors"


def load_encoder(path: str | os.PathLike) -> nn.Module:
    """Rebuild a checkpoint's encoder from ``encoder.json`` and ``encoder.safetensors``.

    No pickle is read.

    Raises:
        MusicSSLError: not a checkpoint, unreadable weights, or weights that do not fit.
    """
    spec = encoder_spec(path)
    try:
        encoder = build_encoder(spec["name"], **spec["options"])
    except MusicSSLError as error:  # an encoder.json edited by hand, or from a newer musicssl
        place = checkpoint_folder(path) / "encoder.json"
        if spec.get("package") and "unknown encoder" in str(error):
            raise MusicSSLError(
                f"{place}: the encoder {spec['name']!r} comes from the package "
                f"{spec['package']}, which is not installed here; install it"
            ) from None
        raise MusicSSLError(f"{place}: {error}") from None
    weights = encoder_weights(path)
    _load_weights(weights, spec["name"], encoder)
    return encoder


def start_encoder_from(path: str | os.PathLike, encoder: Encoder, name: str) -> None:
    """Load the encoder weights of checkpoint ``path`` (or a run's latest) into ``encoder``,
    which must be built as that one was: the same name and options.

    Raises:
        MusicSSLError: not a checkpoint, another encoder, or weights that do not fit.
    """
    spec = encoder_spec(path)
    options = json.loads(json.dumps(encoder.config()))  # as encoder.json holds them
    if spec["name"] != name:
        raise MusicSSLError(f"{path}: its encoder is {spec['name']}, not {name}")
    differ = sorted(
        key
        for key in set(spec["options"]) | set(options)
        if spec["options"].get(key, "unset") != options.get(key, "unset")
    )
    if differ:
        shown = ", ".join(
            f"{key}={spec['options'].get(key, 'unset')!r} there, {options.get(key, 'unset')!r} here"
            for key in differ[:3]
        )
        raise MusicSSLError(
            f"{path}: its encoder is built otherwise ({shown}); give encoder.options the same"
        )
    _load_weights(encoder_weights(path), name, encoder)


def write_checkpoint(
    run: str | os.PathLike,
    *,
    step: int,
    encoder_name: str,
    method: Method,
    training_state: dict[str, Any],
    recipe: Recipe,
) -> Path:
    """Write checkpoint ``step`` of a run whole, point ``latest`` at it, drop older ones.

    Args:
        method: the method; its ``encoder`` attribute is saved on its own as well.
        training_state: plain tensors and numbers (optimiser, schedule, step, ...).
    """
    folder = Path(run) / "checkpoints"
    name = f"step-{step:08d}"
    partial = folder / f".{name}.partial"
    shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir(parents=True)
    encoder = method.encoder
    spec = {"name": encoder_name, "options": encoder.config()}
    if (package := PACKAGES.get(("encoder", encoder_name))) is not None:
        spec["package"] = package  # where to find it again: the error of a missing one says
    try:
        save_file(_contiguous(encoder.state_dict()), partial / "encoder.safetensors")
        (partial / "encoder.json").write_text(json.dumps(spec, indent=2))
        save_file(_contiguous(method.state_dict()), partial / "method.safetensors")
        torch.save(training_state, partial / "state.pt")
        (partial / "recipe.yaml").write_text(recipe.dump())
        # safetensors writes its files for their owner alone; the weights are as readable
        # as the rest of the run (the umask's say), so a colleague can load them.
        readable = creation_mode()
        for weights in ("encoder.safetensors", "method.safetensors"):
            os.chmod(partial / weights, readable)
    except (SafetensorError, RuntimeError) as error:  # safetensors' and torch's own I/O errors
        shutil.rmtree(partial, ignore_errors=True)
        raise MusicSSLError(
            f"{partial.parent / name}: cannot write the checkpoint ({error})"
        ) from None
    shutil.rmtree(folder / name, ignore_errors=True)
    os.replace(partial, folder / name)
    write_text(Path(run) / "latest", name + "\n")
    for old in sorted(folder.glob("step-*"))[:-KEEP_CHECKPOINTS]:
        shutil.rmtree(old, ignore_errors=True)
    return folder / name


def load_training_state(run: str | os.PathLike, method: nn.Module) -> dict[str, Any]:
    """Load the latest checkpoint's weights into ``method``; return its training state.

    Raises:
        MusicSSLError: no checkpoint, or a damaged one (the message says how to go on).
    """
    folder = latest(run)
    try:
        _load_weights(folder / "method.safetensors", "the method", method)
    except MusicSSLError as error:
        raise MusicSSLError(f"{error}; {_repair(run, damaged=folder.name)}") from None
    return read_training_state(run)


def read_training_state(run: str | os.PathLike, *, peek: bool = False) -> dict[str, Any]:
    """The latest checkpoint's training state (``step``, ``horizon`` once settled, the
    optimiser's state), its weights left on disk.

    Args:
        run: the run folder.
        peek: map the file instead of reading it (for ``step`` and ``horizon`` alone: the
            optimiser's tensors are read only if touched, and stay tied to the file).

    Raises:
        MusicSSLError: no checkpoint, or a damaged one (the message says how to go on).
    """
    folder = latest(run)
    path = folder / "state.pt"
    try:
        state = torch.load(path, weights_only=True, mmap=peek)
    except OSError as error:
        raise MusicSSLError(
            f"{path}: cannot read the training state ({error.strerror or error})"
        ) from None
    except (RuntimeError, EOFError, ValueError, pickle.UnpicklingError):
        # torch's own words run to several lines about pickle; what matters is the file.
        state = None
    if not _is_training_state(state):
        raise MusicSSLError(
            f"{path}: damaged (not a training state); {_repair(run, damaged=folder.name)}"
        )
    return dict(state)


def _is_training_state(state: Any) -> bool:
    def count(value: Any) -> bool:
        return isinstance(value, int) and not isinstance(value, bool) and value >= 0

    return (
        isinstance(state, dict)
        and isinstance(state.get("optimizer"), dict)
        and count(state.get("step"))
        and count(state.get("horizon", 0))
    )


def _repair(run: str | os.PathLike, *, damaged: str | None = None) -> str:
    """How to go on from a run whose latest checkpoint cannot be read: another one, or anew."""
    run = Path(run)
    names = [name for name in _kept(run) if name != damaged]
    if not names:
        return f"no {'other ' if damaged else ''}checkpoint is kept: start a new run with --out"
    which = "another checkpoint" if damaged else "a checkpoint"
    return (
        f"to read or resume {which}, write its name ({', '.join(names)}) into {run / 'latest'}; "
        "or start a new run with --out"
    )


def _kept(run: Path) -> list[str]:
    """The names of the complete checkpoints kept in ``run``, oldest first."""
    return sorted(p.name for p in (run / "checkpoints").glob("step-*") if p.is_dir())


def read_weights(path: Path) -> dict[str, torch.Tensor]:
    """The tensors of a ``.safetensors`` file, or one line naming it and why it cannot be read."""
    try:
        return load_file(path)
    except (OSError, SafetensorError) as error:
        raise MusicSSLError(f"{path}: cannot read the weights ({error})") from None


def _load_weights(path: Path, what: str, module: nn.Module) -> None:
    """Load the weights at ``path`` into ``module``, through its load hooks (which give an
    older checkpoint's names their present ones), or say in one line why they do not fit."""
    weights = read_weights(path)
    shapes = module.state_dict()
    for key, value in weights.items():
        if key in shapes and value.shape != shapes[key].shape:
            raise MusicSSLError(
                f"{path}: weights do not fit {what} ({key} is {tuple(value.shape)}, "
                f"expected {tuple(shapes[key].shape)})"
            )
    try:
        result = module.load_state_dict(weights, strict=False)
    except RuntimeError as error:  # a renamed weight of the wrong shape; torch's lines joined
        raise MusicSSLError(
            f"{path}: weights do not fit {what} ({' '.join(str(error).split())})"
        ) from None
    missing, extra = sorted(result.missing_keys), sorted(result.unexpected_keys)
    if missing or extra:
        raise MusicSSLError(
            f"{path}: weights do not fit {what} (missing {missing[:3]}, unexpected {extra[:3]})"
        )


def _contiguous(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    # safetensors refuses views and shared storage; a checkpoint is small next to training.
    return {key: value.detach().contiguous().clone() for key, value in state.items()}
