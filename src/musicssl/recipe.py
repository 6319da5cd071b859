"""Recipes: YAML files that map one to one onto the dataclasses below.

A recipe file describes one setup: which encoder, method and augmentation it trains, on what
data, for how long. It may name one ``base`` recipe: the base's sections are read first, a
part (``encoder``, ``method``, ``augment``) given in the file with a ``name`` replaces the
base's part whole, one without a ``name`` changes only the options it lists, and a settings
section (``data``, ``optim``, ``train``) changes only the fields it names. A base has no base
of its own (``musicssl.recipe_files`` reads the files). ``key.sub=value`` overrides from the
command line come last and are typed by the field they set (``train.steps=1e3`` is 1000,
``train.compile=maybe`` is an error); an error names the override it comes from, or else the
file. No arithmetic or code lives in YAML.
"""

from __future__ import annotations

import copy
import dataclasses
import math
import os
import typing
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import yaml

from musicssl.errors import MusicSSLError
from musicssl.options import coerce
from musicssl.recipe_files import (
    RECIPES,
    Override,
    overridden,
    packaged_recipes,
    parse_override,
    read,
    recipe_path,
    untyped,
    with_base,
)

__all__ = ["DEFAULT_CORPUS", "RECIPES", "Recipe", "packaged_recipes", "recipe_path"]

PRECISIONS = ("32-true", "bf16-mixed", "16-mixed")
ACCELERATORS = ("auto", "cpu", "cuda", "gpu", "mps")
STRATEGIES = ("auto", "ddp", "fsdp")
# Where the built-in corpus lives unless told otherwise (the one place this is written).
DEFAULT_CORPUS = "data/corpus"


@dataclass
class Part:
    """A registry entry by name with its constructor's keyword arguments."""

    name: str
    options: dict[str, Any] = field(default_factory=dict)


@dataclass
class DataSettings:
    """Where training audio comes from.

    Args:
        store: a sample store (``musicssl data pack``); the ``musicssl`` command fills an
            empty one with the built-in corpus, built and packed on first use.
        corpus: folder of the built-in corpus, for an empty ``store``.
        corpus_size: size of the built-in corpus: tiny, small or full.
        splits: the splits that train (comma-separated, e.g. ``train`` or ``train,valid``), or
            ``all`` for every clip, split or not.
        workers: DataLoader worker processes.
    """

    store: str = ""
    corpus: str = DEFAULT_CORPUS
    corpus_size: str = "small"
    splits: str = "train"
    workers: int = 2

    def __post_init__(self) -> None:
        if self.corpus_size not in ("tiny", "small", "full"):
            raise MusicSSLError(
                f"data.corpus_size must be tiny, small or full, got {self.corpus_size!r}"
            )
        if self.workers < 0:
            raise MusicSSLError(f"data.workers must be >= 0, got {self.workers}")
        names = [name.strip() for name in self.splits.split(",")]
        if self.splits != "all" and not set(names) <= {"train", "valid", "test"}:
            raise MusicSSLError(
                f"data.splits must be splits among train, valid and test, comma-separated "
                f"(e.g. train,valid), or all; got {self.splits!r}"
            )


@dataclass
class OptimSettings:
    """AdamW with linear warm-up then cosine decay to ``min_lr_ratio * lr``."""

    lr: float = 3e-4
    weight_decay: float = 1e-6
    warmup_steps: int = 0
    min_lr_ratio: float = 0.0

    def __post_init__(self) -> None:
        if not 0 < self.lr < math.inf:
            raise MusicSSLError(f"optim.lr must be > 0 and finite, got {self.lr}")
        if not 0 <= self.weight_decay < math.inf:
            raise MusicSSLError(
                f"optim.weight_decay must be >= 0 and finite, got {self.weight_decay}"
            )
        if self.warmup_steps < 0 or not 0 <= self.min_lr_ratio <= 1:
            raise MusicSSLError("optim.warmup_steps must be >= 0 and min_lr_ratio in [0, 1]")


@dataclass
class TrainSettings:
    """The loop.

    Args:
        steps: optimiser steps of the whole run.
        batch_size: view pairs per micro-batch and process.
        accumulate: micro-batches whose gradients each optimiser step averages (1: none).
            A method without negatives (BYOL, SLAP) then trains as at ``accumulate`` times
            the batch; a contrastive one still draws its negatives from one micro-batch.
        precision: Lightning Fabric precision: 32-true, bf16-mixed or 16-mixed.
        accelerator: auto, cpu, cuda (or its other name, gpu) or mps.
        devices: processes on this machine (``auto`` or a number).
        strategy: Fabric strategy: auto, ddp or fsdp.
        seed: seed of initialisation, data order and augmentation.
        checkpoint_every: steps between checkpoints (and at the end).
        log_every: steps between log lines.
        compile: compile in place with ``torch.compile`` what the method's training step
            runs (``Method.compile_for_training``: each network, or the masked methods'
            whole step); on a GPU it replays as CUDA graphs (the ``reduce-overhead`` mode).
        minutes: a wall-clock budget: the run measures its speed (after 20, 80 and 320 steps)
            and ends (learning-rate schedule included) at the step that fits the budget, or
            at ``steps`` if that comes first. None: run all ``steps``.
        probe_every: steps between fast probes (k-NN and linear accuracy of ``probe_label``
            on validation clips, logged beside the loss); 0 turns them off.
        probe_label: the manifest field the fast probe predicts.
        init_from: a run or checkpoint folder whose encoder weights this run's encoder starts
            from (continued pretraining: on other data, or with another method); the
            recipe's encoder must be built as that one was. The method's own networks
            (projectors, heads, decoders) start new; a target encoder (BYOL) starts as a copy
            of the loaded one. Empty: random weights from ``seed``.
    """

    steps: int = 1000
    batch_size: int = 48
    accumulate: int = 1
    precision: str = "32-true"
    accelerator: str = "auto"
    devices: str = "1"
    strategy: str = "auto"
    seed: int = 0
    checkpoint_every: int = 200
    log_every: int = 10
    compile: bool = False
    minutes: float | None = None
    probe_every: int = 0
    probe_label: str = "style"
    init_from: str = ""

    def __post_init__(self) -> None:
        if not 0 <= self.seed < 2**63:
            raise MusicSSLError(f"train.seed must be from 0 to 2**63 - 1, got {self.seed}")
        if self.minutes is not None and self.minutes <= 0:
            raise MusicSSLError(f"train.minutes must be > 0 (or null), got {self.minutes}")
        if self.probe_every < 0:
            raise MusicSSLError(f"train.probe_every must be >= 0, got {self.probe_every}")
        if self.steps <= 0 or self.batch_size < 2:
            raise MusicSSLError(
                "train.steps must be > 0 and train.batch_size >= 2, got "
                f"{self.steps} and {self.batch_size}"
            )
        if self.accumulate < 1:
            raise MusicSSLError(f"train.accumulate must be >= 1, got {self.accumulate}")
        if self.precision not in PRECISIONS:
            raise MusicSSLError(
                f"train.precision must be one of {PRECISIONS}, got {self.precision!r}"
            )
        if self.checkpoint_every <= 0 or self.log_every <= 0:
            raise MusicSSLError("train.checkpoint_every and train.log_every must be > 0")
        self.devices = str(self.devices)
        if self.accelerator not in ACCELERATORS:
            raise MusicSSLError(
                f"train.accelerator must be one of {ACCELERATORS}, got {self.accelerator!r}"
            )
        if self.devices != "auto" and not (self.devices.isdigit() and int(self.devices) > 0):
            raise MusicSSLError(
                f"train.devices must be auto or a number of processes > 0, got {self.devices!r}"
            )
        if self.strategy not in STRATEGIES:
            raise MusicSSLError(
                f"train.strategy must be one of {STRATEGIES}, got {self.strategy!r}"
            )


@dataclass
class Recipe:
    """Everything a pretraining run needs; ``Recipe.load`` reads one from YAML.

    Args:
        description: one line saying what the recipe trains (the file's first comment line
            for packaged recipes; kept in the run's recipe.yaml).
    """

    encoder: Part
    method: Part
    augment: Part
    data: DataSettings = field(default_factory=DataSettings)
    optim: OptimSettings = field(default_factory=OptimSettings)
    train: TrainSettings = field(default_factory=TrainSettings)
    description: str = ""

    @classmethod
    def load(
        cls,
        path: str | os.PathLike,
        overrides: Iterable[str] | str | Mapping[str, Any] | None = None,
    ) -> Recipe:
        """Read ``path`` (and its ``base``), then apply overrides; ``path`` may also be a
        packaged recipe's name (``"simclr-shortchunk-cpu"``), as on the command line.

        Args:
            path: a recipe file or a packaged recipe's name.
            overrides: ``key=value`` strings as on the command line (``["train.steps=100"]``,
                or one such string), or a mapping (``{"train.steps": 100}``, or nested as
                ``{"train": {"steps": 100}}``, which keeps the rest of ``train``).

        Raises:
            MusicSSLError: unreadable YAML, unknown keys, bad values or a malformed override.
        """
        path = recipe_path(path)
        raw = with_base(path, read(path))
        if isinstance(overrides, Mapping):  # values as a recipe file's: typed already
            changes = [(f"{key}={value!r}", key, value) for key, value in _dotted(overrides)]
        else:
            texts = [overrides] if isinstance(overrides, str) else overrides or []
            if not isinstance(texts, Iterable) or not all(isinstance(t, str) for t in texts):
                raise MusicSSLError(
                    f"overrides must be key=value strings or a mapping, got {overrides!r}"
                )
            changes = [parse_override(text) for text in texts]
        try:
            return cls.from_dict(overridden(raw, changes))
        except MusicSSLError:
            raise _blame(path, raw, changes) from None

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> Recipe:
        raw = copy.deepcopy(raw)
        known = {f.name: f for f in dataclasses.fields(cls)}
        unknown = set(raw) - set(known)
        if unknown:
            raise _unknown_keys(unknown, known, "in the recipe")
        for required in ("encoder", "method", "augment"):
            if required not in raw:
                raise MusicSSLError(f"the recipe needs an '{required}' section")
        built: dict[str, Any] = {"description": str(raw.get("description", ""))}
        for name in ("encoder", "method", "augment"):
            if isinstance(raw[name], dict) and not raw[name].get("name"):
                raise MusicSSLError(f"{name}.name is missing: the recipe's {name} section names "
                                    f"the {name} it builds")  # fmt: skip
            built[name] = _build(Part, raw[name], name)
        built["data"] = _build(DataSettings, raw.get("data", {}), "data")
        built["optim"] = _build(OptimSettings, raw.get("optim", {}), "optim")
        built["train"] = _build(TrainSettings, raw.get("train", {}), "train")
        return cls(**built)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def dump(self) -> str:
        """The resolved recipe as YAML text (it loads back equal, with no base)."""
        return yaml.safe_dump(self.to_dict(), sort_keys=False)


def _build(kind: type, value: Any, section: str) -> Any:
    if not isinstance(value, dict):
        raise MusicSSLError(f"recipe section '{section}' must be a mapping, got {value!r}")
    hints = typing.get_type_hints(kind)
    unknown = set(value) - set(hints)
    if unknown:
        raise _unknown_keys(unknown, hints, f"in '{section}'")
    if kind is Part:
        options = untyped(value.get("options")) or {}  # method.options={} is YAML too
        if not isinstance(options, dict):
            raise MusicSSLError(f"{section}.options must be a mapping, got {options!r}")
        value = {**value, "options": {k: untyped(v) for k, v in options.items()}}
        value["name"] = untyped(value.get("name", ""))
        return kind(**value)
    value = {key: coerce(item, hints[key], f"{section}.{key}") for key, item in value.items()}
    return kind(**value)


def _dotted(tree: Mapping[str, Any], prefix: str = "") -> list[tuple[str, Any]]:
    """``(dotted key, value)`` of each leaf of nested overrides: ``{"train": {"steps": 5}}``
    sets ``train.steps`` and keeps the rest of ``train`` (an empty mapping is a value)."""
    leaves: list[tuple[str, Any]] = []
    for key, value in tree.items():
        dotted = f"{prefix}{key}"
        if isinstance(value, Mapping) and value:
            leaves += _dotted(value, f"{dotted}.")
        else:
            leaves.append((dotted, value))
    return leaves


def _blame(path: Path, raw: dict[str, Any], changes: list[Override]) -> MusicSSLError:
    """The error of a recipe that does not load, naming where it comes from.

    The file alone, then with one override more each time, is read until one fails: the
    fault is the file's, or that override's.
    """
    for count in range(len(changes) + 1):
        try:
            Recipe.from_dict(overridden(raw, changes[:count]))
        except MusicSSLError as error:
            source = f"override {changes[count - 1][0]}" if count else str(path)
            return MusicSSLError(f"{source}: {error}")
    raise AssertionError("_blame is only called for a recipe that does not load")


def _unknown_keys(unknown: set[str], known: Iterable[str], where: str) -> MusicSSLError:
    names = ", ".join(repr(key) for key in sorted(unknown))
    plural = "s" if len(unknown) > 1 else ""
    return MusicSSLError(f"unknown key{plural} {names} {where} (known: {', '.join(sorted(known))})")
