"""Recipes: YAML files that map one to one onto the dataclasses below.

A recipe file holds the settings of one method, plus ``sizes``: named sets of overrides (e.g.
``cpu`` for a ten-minute first look on a laptop, ``full`` for the paper's configuration on
GPUs), one of which ``size`` selects. ``key.sub=value`` overrides from the command line are
applied last. No arithmetic or code lives in YAML.
"""

from __future__ import annotations

import copy
import dataclasses
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import yaml

from musicssl.errors import MusicSSLError

PRECISIONS = ("32-true", "bf16-mixed", "16-mixed")


@dataclass
class Part:
    """A registry entry by name with its constructor's keyword arguments."""

    name: str
    options: dict[str, Any] = field(default_factory=dict)


@dataclass
class DataSettings:
    """Where training audio comes from.

    Args:
        store: a sample store (``musicssl data pack``); empty uses the built-in corpus.
        corpus: folder of the built-in corpus (built on first use, then reused).
        corpus_size: size of the built-in corpus: tiny, small or full.
        workers: DataLoader worker processes.
    """

    store: str = ""
    corpus: str = "data/corpus"
    corpus_size: str = "small"
    workers: int = 2

    def __post_init__(self) -> None:
        if self.corpus_size not in ("tiny", "small", "full"):
            raise MusicSSLError(
                f"data.corpus_size must be tiny, small or full, got {self.corpus_size!r}"
            )
        if self.workers < 0:
            raise MusicSSLError(f"data.workers must be >= 0, got {self.workers}")


@dataclass
class OptimSettings:
    """AdamW with linear warm-up then cosine decay to ``min_lr_ratio * lr``."""

    lr: float = 3e-4
    weight_decay: float = 1e-6
    warmup_steps: int = 0
    min_lr_ratio: float = 0.0

    def __post_init__(self) -> None:
        if not self.lr > 0:
            raise MusicSSLError(f"optim.lr must be > 0, got {self.lr}")
        if self.warmup_steps < 0 or not 0 <= self.min_lr_ratio <= 1:
            raise MusicSSLError("optim.warmup_steps must be >= 0 and min_lr_ratio in [0, 1]")


@dataclass
class TrainSettings:
    """The loop.

    Args:
        steps: optimiser steps of the whole run.
        batch_size: view pairs per step and process.
        precision: Lightning Fabric precision: 32-true, bf16-mixed or 16-mixed.
        accelerator: cpu, cuda or auto.
        devices: processes on this machine (``auto`` or a number).
        strategy: Fabric strategy (auto, ddp, fsdp).
        seed: seed of initialisation, data order and augmentation.
        checkpoint_every: steps between checkpoints (and at the end).
        log_every: steps between log lines.
        compile: compile the method's networks in place with ``torch.compile``; on a GPU
            they replay as CUDA graphs (its ``reduce-overhead`` mode). The loss stays eager.
        minutes: a wall-clock budget: the run measures its speed (after 20, 80 and 320 steps)
            and ends (learning-rate schedule included) at the step that fits the budget, or
            at ``steps`` if that comes first. None: run all ``steps``.
        probe_every: steps between fast probes (k-NN and linear accuracy of ``probe_label``
            on validation clips, logged beside the loss); 0 turns them off.
        probe_label: the manifest field the fast probe predicts.
    """

    steps: int = 1000
    batch_size: int = 48
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

    def __post_init__(self) -> None:
        if self.minutes is not None and self.minutes <= 0:
            raise MusicSSLError(f"train.minutes must be > 0 (or null), got {self.minutes}")
        if self.probe_every < 0:
            raise MusicSSLError(f"train.probe_every must be >= 0, got {self.probe_every}")
        if self.steps <= 0 or self.batch_size < 2:
            raise MusicSSLError(
                "train.steps must be > 0 and train.batch_size >= 2, got "
                f"{self.steps} and {self.batch_size}"
            )
        if self.precision not in PRECISIONS:
            raise MusicSSLError(
                f"train.precision must be one of {PRECISIONS}, got {self.precision!r}"
            )
        if self.checkpoint_every <= 0 or self.log_every <= 0:
            raise MusicSSLError("train.checkpoint_every and train.log_every must be > 0")
        self.devices = str(self.devices)


@dataclass
class Recipe:
    """Everything a pretraining run needs; ``Recipe.load`` reads one from YAML."""

    encoder: Part
    method: Part
    augment: Part
    data: DataSettings = field(default_factory=DataSettings)
    optim: OptimSettings = field(default_factory=OptimSettings)
    train: TrainSettings = field(default_factory=TrainSettings)
    size: str = ""

    @classmethod
    def load(cls, path: str | os.PathLike, overrides: list[str] | None = None) -> Recipe:
        """Read ``path``, apply its selected ``sizes`` entry, then ``key=value`` overrides.

        ``size=NAME`` among the overrides selects another size before the other overrides.

        Raises:
            MusicSSLError: unreadable YAML, unknown keys, bad values or a malformed override.
        """
        path = Path(path)
        try:
            raw = yaml.safe_load(path.read_text())
        except (OSError, yaml.YAMLError) as error:
            raise MusicSSLError(f"{path}: cannot read recipe ({error})") from None
        if not isinstance(raw, dict):
            raise MusicSSLError(f"{path}: a recipe is a YAML mapping")
        overrides = list(overrides or [])
        pairs = [_parse_override(text) for text in overrides]
        sizes = raw.pop("sizes", {}) or {}
        size = next((value for key, value in pairs if key == "size"), raw.get("size", ""))
        # A resolved recipe (a run's recipe.yaml) keeps its size as a label and has no sizes.
        if size and (sizes or any(key == "size" for key, _ in pairs)):
            if size not in sizes:
                raise MusicSSLError(
                    f"{path}: unknown size {size!r}; the recipe has {sorted(sizes)}"
                )
            raw = _merge(raw, sizes[size])
            raw["size"] = size
        for key, value in pairs:
            if key != "size":
                _set_dotted(raw, key, value)
        try:
            return cls.from_dict(raw)
        except MusicSSLError as error:
            raise MusicSSLError(f"{path}: {error}") from None

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> Recipe:
        raw = copy.deepcopy(raw)
        known = {f.name: f for f in dataclasses.fields(cls)}
        unknown = set(raw) - set(known)
        if unknown:
            raise MusicSSLError(f"unknown recipe keys {sorted(unknown)}; expected {sorted(known)}")
        for required in ("encoder", "method", "augment"):
            if required not in raw:
                raise MusicSSLError(f"the recipe needs an '{required}' section")
        built: dict[str, Any] = {"size": raw.get("size", "")}
        for name in ("encoder", "method", "augment"):
            built[name] = _build(Part, raw[name], name)
        built["data"] = _build(DataSettings, raw.get("data", {}), "data")
        built["optim"] = _build(OptimSettings, raw.get("optim", {}), "optim")
        built["train"] = _build(TrainSettings, raw.get("train", {}), "train")
        return cls(**built)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def dump(self) -> str:
        """The resolved recipe as YAML text."""
        return yaml.safe_dump(self.to_dict(), sort_keys=False)


RECIPES = Path(__file__).resolve().parent / "recipes"


def recipe_path(name: str | os.PathLike) -> Path:
    """A packaged recipe's file from its name ("clmr"), or ``name`` itself when it is a path."""
    path = Path(name)
    if path.suffix in (".yaml", ".yml") or path.exists():
        return path
    packaged = RECIPES / f"{path.name}.yaml"
    if not packaged.is_file():
        known = ", ".join(sorted(p.stem for p in RECIPES.glob("*.yaml")))
        raise MusicSSLError(f"no recipe file or packaged recipe named {name!r} (packaged: {known})")
    return packaged


def _build(kind: type, value: Any, section: str) -> Any:
    if not isinstance(value, dict):
        raise MusicSSLError(f"recipe section '{section}' must be a mapping, got {value!r}")
    names = {f.name for f in dataclasses.fields(kind)}
    unknown = set(value) - names
    if unknown:
        raise MusicSSLError(
            f"unknown keys in '{section}': {sorted(unknown)}; expected {sorted(names)}"
        )
    types = {f.name: f.type for f in dataclasses.fields(kind)}
    value = {key: _coerce(item, types[key], f"{section}.{key}") for key, item in value.items()}
    try:
        return kind(**value)
    except TypeError as error:
        raise MusicSSLError(f"recipe section '{section}': {error}") from None


def _coerce(value: Any, type_name: Any, key: str) -> Any:
    """Numbers as the field's type: YAML 1.1 reads ``1e-3`` (no dot) as a string."""
    try:
        if type_name == "float | None" and value is None:
            return None
        if type_name in ("float", "float | None") and (
            isinstance(value, (str, int)) and not isinstance(value, bool)
        ):
            return float(value)
        if type_name == "int" and isinstance(value, str):
            return int(value)
    except ValueError:
        raise MusicSSLError(f"{key} must be a number, got {value!r}") from None
    return value


def _parse_override(text: str) -> tuple[str, Any]:
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise MusicSSLError(f"override {text!r} is not key=value (e.g. train.steps=100)")
    try:
        return key.strip(), yaml.safe_load(value)
    except yaml.YAMLError:
        return key.strip(), value


def _set_dotted(raw: dict[str, Any], key: str, value: Any) -> None:
    *parents, leaf = key.split(".")
    node = raw
    for part in parents:
        child = node.setdefault(part, {})
        if not isinstance(child, dict):
            raise MusicSSLError(f"override {key}: '{part}' is not a section")
        node = child
    node[leaf] = value


def _merge(base: dict[str, Any], update: dict[str, Any]) -> dict[str, Any]:
    merged = copy.deepcopy(base)
    for key, value in (update or {}).items():
        # A part swapped for another (a size naming a different encoder) takes none of the
        # old part's options: they belong to another constructor.
        swapped = (
            isinstance(value, dict)
            and isinstance(merged.get(key), dict)
            and "name" in value
            and value["name"] != merged[key].get("name")
        )
        if swapped:
            merged[key] = copy.deepcopy(value)
        elif isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = _merge(merged[key], value)
        else:
            merged[key] = copy.deepcopy(value)
    return merged
