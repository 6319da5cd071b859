"""musicssl: self-supervised learning of music audio representations.

``musicssl.load(run)`` rebuilds a trained encoder from a run or checkpoint folder; its
``embed(waveform, sr)`` gives the clip embedding (``.clip``), and with ``layers="all"`` and
``frames=True`` every layer's vector and the frame features. ``musicssl.audio.load(path,
sr=...)`` reads an audio file as the command line does. The ``musicssl`` command covers the
rest (``musicssl --help``); each verb is a function of the package (``musicssl.corpus``,
``musicssl.pack``, ``musicssl.train``, ``musicssl.evaluate.run``, ``musicssl.search``).
"""

import importlib
import importlib.util
from typing import Any

from musicssl.errors import AudioError, MusicSSLError

__version__ = "0.1.0"
__all__ = ["AudioError", "MusicSSLError", "__version__", "load"]


def __dir__() -> list[str]:
    return sorted(__all__)


def __getattr__(name: str) -> Any:
    # ``musicssl.load`` imports torch; the command line should not pay for it on --help.
    if name == "load":
        from musicssl.embed import load

        return load
    # ``musicssl.audio.load(...)`` after a plain ``import musicssl``, as after ``import
    # musicssl.audio``: a submodule is imported when first named.
    if not name.startswith("_") and importlib.util.find_spec(f"musicssl.{name}") is not None:
        return importlib.import_module(f"musicssl.{name}")
    raise AttributeError(f"module 'musicssl' has no attribute {name!r}")
