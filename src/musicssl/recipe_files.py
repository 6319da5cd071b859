"""Recipe files as YAML mappings: packaged recipes by name, a ``base`` under a file, and
``key=value`` overrides from the command line.

What is read here is raw: sections are plain mappings and an override's value is kept as
typed (a ``Text``), for ``musicssl.recipe`` to read by the field it sets.
"""

from __future__ import annotations

import copy
import os
import re
from pathlib import Path
from typing import Any

import yaml

from musicssl.errors import MusicSSLError

RECIPES = Path(__file__).resolve().parent / "recipes"


class _Loader(yaml.SafeLoader):
    """PyYAML's safe reading, with ``1e-3`` a number, as YAML 1.2 and JSON read it (YAML 1.1,
    which PyYAML follows, wants ``1.0e-3`` and reads ``1e-3`` as text)."""


_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^[-+]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)[eE][-+]?[0-9]+$"),
    list("-+0123456789."),
)


def packaged_recipes() -> dict[str, str]:
    """Name -> description of every packaged recipe."""
    paths = sorted(RECIPES.glob("*.yaml"), key=lambda path: path.stem)
    return {path.stem: _description(path) for path in paths}


def recipe_path(name: str | os.PathLike) -> Path:
    """A packaged recipe's file from its name ("clmr"), or ``name`` itself when it is a path."""
    path = Path(name)
    if path.suffix in (".yaml", ".yml") or path.exists():
        return path
    packaged = RECIPES / f"{path.name}.yaml"
    if not packaged.is_file():
        known = ", ".join(packaged_recipes())
        raise MusicSSLError(f"no recipe file or packaged recipe named {name!r} (packaged: {known})")
    return packaged


class Text(str):
    """An override's value as typed on the command line, read by the field it sets."""


# An override: its text as typed, its dotted key and its value.
Override = tuple[str, str, Text]


def read(path: Path) -> dict[str, Any]:
    """One recipe file's mapping, its description filled from its first comment line."""
    try:
        raw = yaml.load(path.read_text(encoding="utf-8"), Loader=_Loader)
    except UnicodeDecodeError:
        raise MusicSSLError(f"{path}: cannot read recipe (not UTF-8 text)") from None
    except (OSError, yaml.YAMLError) as error:
        raise MusicSSLError(f"{path}: cannot read recipe ({error})") from None
    if not isinstance(raw, dict):
        raise MusicSSLError(f"{path}: a recipe is a YAML mapping")
    raw.setdefault("description", _description(path))
    return raw


def _description(path: Path) -> str:
    """The first comment line of a recipe file, without its ``#``."""
    try:
        first = path.read_text(encoding="utf-8").splitlines()[0]
    except (OSError, IndexError, UnicodeDecodeError):
        return ""
    return first.lstrip("#").strip() if first.startswith("#") else ""


def with_base(path: Path, raw: dict[str, Any]) -> dict[str, Any]:
    """The file's sections over those of the ``base`` it names, if any."""
    base = raw.pop("base", None)
    if base is None:
        return raw
    try:
        base_path = _beside(path, str(base)) if Path(str(base)).suffix else _sibling(path, base)
    except MusicSSLError as error:
        raise MusicSSLError(f"{path}: its base: {error}") from None
    parent = read(base_path)
    if "base" in parent:
        raise MusicSSLError(f"{base_path}: a base recipe cannot name a base of its own")
    return _inherit(parent, raw)


def _beside(path: Path, file_name: str) -> Path:
    """A base named as a file: relative to the folder of the recipe that names it."""
    base = path.parent / file_name  # an absolute name stays itself
    if not base.is_file():
        raise MusicSSLError(f"no recipe file {base} (a base file is read beside the recipe)")
    return base


def _sibling(path: Path, name: str) -> Path:
    """A base named without a suffix: beside the file, else a packaged recipe."""
    beside = path.parent / f"{name}.yaml"
    return beside if beside.is_file() else recipe_path(name)


def _inherit(base: dict[str, Any], child: dict[str, Any]) -> dict[str, Any]:
    """``child`` over ``base``: a settings section changes the fields it names, a part
    without a ``name`` the options it names, and a part with one replaces the base's whole."""
    merged = copy.deepcopy(base)
    for key, value in child.items():
        settings = key in ("data", "optim", "train")
        both = isinstance(value, dict) and isinstance(merged.get(key), dict)
        if settings and both:
            merged[key] = {**merged[key], **value}
        elif both and key in ("encoder", "method", "augment") and "name" not in value:
            options = {**merged[key].get("options", {}), **value.get("options", {})}
            merged[key] = {**merged[key], **copy.deepcopy(value), "options": options}
        else:  # a named part, or a plain field: the child's replaces the base's whole
            merged[key] = copy.deepcopy(value)
    return merged


def untyped(value: Any) -> Any:
    """An override for a field whose type the recipe does not know: read as YAML.

    Nested options (a ``branches`` encoder's ``encoder.options.branches.key.layers=[-2, -1]``)
    are read the same way at any depth.
    """
    if isinstance(value, Text):
        try:
            return yaml.load(str(value), Loader=_Loader)
        except yaml.YAMLError:
            return str(value)
    if isinstance(value, dict):
        return {key: untyped(item) for key, item in value.items()}
    return value


def parse_override(text: str) -> Override:
    """``(text, key, value)`` of a ``key=value`` override."""
    key, sep, value = text.partition("=")
    if not sep or not key.strip():
        raise MusicSSLError(f"override {text} is not key=value (e.g. train.steps=100)")
    if key.strip() == "size":
        raise MusicSSLError(
            f"override {text}: recipes have no sizes; each setup is its own file "
            "(see `musicssl pretrain --help` for the packaged recipes)"
        )
    return text, key.strip(), Text(value)


def overridden(raw: dict[str, Any], changes: list[Override]) -> dict[str, Any]:
    """A copy of ``raw`` with the overrides ``changes`` (from ``parse_override``) applied."""
    raw = copy.deepcopy(raw)
    for _, key, value in changes:
        set_dotted(raw, key, value)
    return raw


def set_dotted(raw: dict[str, Any], key: str, value: Any) -> None:
    *parents, leaf = key.split(".")
    node = raw
    for part in parents:
        child = node.setdefault(part, {})
        if not isinstance(child, dict):
            raise MusicSSLError(f"'{part}' is not a section")
        node = child
    node[leaf] = value
