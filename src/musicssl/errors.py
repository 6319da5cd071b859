"""The one exception type musicssl raises for bad input."""


class MusicSSLError(Exception):
    """Bad input: the message names the file, the shape or the setting, and the reason."""


class AudioError(MusicSSLError):
    """An audio file cannot be read: corrupt, empty, truncated or not audio."""

    def __init__(self, path: object, reason: str) -> None:
        super().__init__(f"{path}: {reason}")
        self.path = str(path)
        self.reason = reason
