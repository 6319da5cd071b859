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

from importlib.metadata import entry_points
from typing import Any

from musicssl.errors import MusicSSLError

GROUPS = {"encoder": "musicssl.encoders", "method": "musicssl.methods"}


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
    if name in registry:
        return True
    found = [point for point in entry_points(group=GROUPS[kind]) if point.name == name]
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
    return True


def _fits(kind: str, loaded: Any) -> bool:
    if kind == "method":
        return callable(loaded)
    from musicssl.encoders.base import Encoder

    return isinstance(loaded, type) and issubclass(loaded, Encoder)
