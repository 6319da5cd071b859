"""Encoders and methods of other installed packages, found by their entry points.

A package adds an encoder or an SSL method by naming it in its ``pyproject.toml``::

    [project.entry-points."musicssl.methods"]
    simsiam = "mypackage.simsiam:simsiam"          # a factory(encoder, **options) -> Method

    [project.entry-points."musicssl.encoders"]
    tiny_cnn = "mypackage.encoders:TinyCNN"        # an Encoder subclass

Once that package is installed, recipes name them as they name the built-in ones, on the
command line too, and a checkpoint of such an encoder loads wherever the package is installed.
Only installed packages are read: a recipe or a checkpoint names an entry, never a module to
import. A built-in name is never replaced.
"""

from __future__ import annotations

import sys
import traceback
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any

from musicssl.errors import MusicSSLError
from musicssl.processes import is_first_process

GROUPS = {"encoder": "musicssl.encoders", "method": "musicssl.methods"}
# The top-level modules whose entry points were loaded: a failure in their code is theirs.
LOADED: set[str] = set()
# Names a package shares with one already in a registry (said once), and those added here.
NOTED: set[tuple[str, str]] = set()
# The distribution that gave each (kind, name) loaded here: what a checkpoint records.
PACKAGES: dict[tuple[str, str], str] = {}


def plugin_names(kind: str) -> list[str]:
    """The names installed packages give to their ``kind`` ("encoder" or "method")."""
    return sorted({point.name for point in entry_points(group=GROUPS[kind])})


def add_plugin(kind: str, name: str, registry: dict[str, Any]) -> bool:
    """Add the ``kind`` named ``name`` of an installed package to ``registry`` (once), and
    say whether ``registry`` now has it.

    Raises:
        MusicSSLError: the package's entry point does not import, or gives something other
            than an encoder class (``kind`` "encoder") or a callable (``kind`` "method").
    """
    found = [point for point in entry_points(group=GROUPS[kind]) if point.name == name]
    if name in registry:
        if found and (kind, name) not in NOTED:  # a package's, named as one already here
            NOTED.add((kind, name))
            if is_first_process():  # once for a run of several processes
                print(f"note: {found[0].value} names a {kind} {name!r}, as musicssl's own is "
                      "named: musicssl's is used; give the package's another name",
                      file=sys.stderr)  # fmt: skip
        return True
    if not found:
        return False
    if len(found) > 1:
        values = ", ".join(point.value for point in found)
        raise MusicSSLError(f"{kind} {name!r}: named by several installed packages ({values})")
    point = found[0]
    try:
        loaded = point.load()
    except Exception as error:  # the package's own code: any failure is that package's
        raise MusicSSLError(
            f"{kind} {name!r}: its package's entry point {point.value} does not load "
            f"({type(error).__name__}: {error})"
        ) from None
    if not _fits(kind, loaded):
        wanted = "an Encoder subclass" if kind == "encoder" else "a callable"
        raise MusicSSLError(f"{kind} {name!r}: {point.value} is not {wanted}")
    registry[name] = loaded
    NOTED.add((kind, name))  # the package's own: nothing to note when it is named again
    if point.dist is not None:
        PACKAGES[(kind, name)] = point.dist.name
    LOADED.add(point.module.split(".")[0])
    return True


def failing_package(error: BaseException) -> tuple[str, traceback.FrameSummary] | None:
    """The loaded package (``LOADED``) whose code ``error`` last passed through, and where;
    None when it passed through none."""
    places = {}
    for name in LOADED:
        file = getattr(sys.modules.get(name), "__file__", None)
        if file is not None:  # a package: its folder; a module: its file
            path = Path(file).resolve()
            places[name] = path.parent if path.name == "__init__.py" else path
    for frame in reversed(traceback.extract_tb(error.__traceback__)):
        where = Path(frame.filename).resolve()
        for name, place in places.items():
            if where == place or where.is_relative_to(place):
                return name, frame
    return None


def _fits(kind: str, loaded: Any) -> bool:
    if kind == "method":
        return callable(loaded)
    from musicssl.encoders.base import Encoder

    return isinstance(loaded, type) and issubclass(loaded, Encoder)
