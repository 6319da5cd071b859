"""musicssl: self-supervised learning of music audio representations."""

from musicssl.errors import AudioError, MusicSSLError

__version__ = "0.1.0"
__all__ = ["AudioError", "MusicSSLError", "__version__"]
