"""musicssl: self-supervised learning of music audio representations."""

from typing import Any

from musicssl.errors import AudioError, MusicSSLError

__version__ = "0.1.0"
__all__ = ["AudioError", "MusicSSLError", "__version__", "load"]


def __getattr__(name: str) -> Any:
    # ``musicssl.load`` imports torch; the command line should not pay for it on --help.
    if name == "load":
        from musicssl.embed import load

        return load
    raise AttributeError(f"module 'musicssl' has no attribute {name!r}")
