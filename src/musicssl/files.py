"""Writing files whole or not at all, and per-clip random generators.

Every output musicssl writes goes through ``atomic_path``: the writer fills a temporary
name beside the target (same folder, so the rename is atomic), and only a complete file is
renamed into place. A killed or failed write leaves the old file, or nothing, never a torn one.
"""

from __future__ import annotations

import hashlib
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np

LOCK_NAME = ".lock"
# The descriptors of the folder locks this process holds. A forked child (a DataLoader
# worker) closes its copies at once: an flock lives while any copy is open, and a worker
# that outlives its killed parent by a few seconds must not keep the folder locked.
_HELD_LOCKS: set[int] = set()


def _drop_inherited_locks() -> None:
    for descriptor in _HELD_LOCKS:
        try:
            os.close(descriptor)
        except OSError:
            pass
    _HELD_LOCKS.clear()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_drop_inherited_locks)


@contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path to write; on success it replaces ``path``, on failure it is removed.

    The temporary name keeps the extension (libsndfile and numpy choose formats by it) and
    carries the process id, so concurrent writers never share one.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".partial-{os.getpid()}-{path.name}")
    try:
        yield temporary
        os.replace(temporary, path)
    except OSError as error:
        # A full disk names no file, a failed write names the temporary: name the target.
        if error.filename in (None, str(temporary)) and error.errno is not None:
            raise OSError(error.errno, error.strerror, str(path)) from error
        raise
    finally:
        temporary.unlink(missing_ok=True)


def creation_mode() -> int:
    """The mode a new file gets under this process's umask (0o644 under the usual 022)."""
    mask = os.umask(0)
    os.umask(mask)
    return 0o666 & ~mask


@contextmanager
def folder_lock(folder: str | os.PathLike, *, busy: str) -> Iterator[None]:
    """Hold ``folder/.lock`` for this process while the block runs; refuse if another holds it.

    The lock (``flock``) goes with the process, so a killed writer's folder is free at once,
    whatever children it forked (they close their copy of the lock as they start).

    Raises:
        MusicSSLError: another process holds the lock (``busy`` says what to do).
    """
    from musicssl.errors import MusicSSLError

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    descriptor = os.open(folder / LOCK_NAME, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        if sys.platform != "win32":
            import fcntl

            try:
                fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                raise MusicSSLError(f"{folder}: {busy}") from None
        _HELD_LOCKS.add(descriptor)
        yield
    finally:
        _HELD_LOCKS.discard(descriptor)
        os.close(descriptor)


def missing_folders(path: str | os.PathLike) -> list[Path]:
    """``path`` and those of its parents that do not exist yet, deepest first: what making
    ``path`` will make, and what a verb that fails removes again while they are empty."""
    missing = []
    for folder in (Path(path), *Path(path).parents):
        if folder.exists() or folder == folder.parent:
            break
        missing.append(folder)
    return missing


def remove_empty(folders: list[Path]) -> None:
    """Remove ``folders`` (deepest first) while each is empty; stop at the first that is not."""
    for folder in folders:
        try:
            folder.rmdir()
        except OSError:
            return


def write_text(path: str | os.PathLike, text: str) -> Path:
    """Write ``text`` (UTF-8) to ``path`` whole or not at all."""
    with atomic_path(path) as temporary:
        temporary.write_text(text, encoding="utf-8")
    return Path(path)


def write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    """Write ``data`` to ``path`` whole or not at all."""
    with atomic_path(path) as temporary:
        temporary.write_bytes(data)
    return Path(path)


def file_hash(path: str | os.PathLike, *, algorithm: str = "sha256") -> str:
    """The hex digest of a file's bytes, read a mebibyte at a time."""
    digest = hashlib.new(algorithm)
    with open(path, "rb") as handle:
        while block := handle.read(1 << 20):
            digest.update(block)
    return digest.hexdigest()


def clip_rng(seed: int, clip_id: str) -> np.random.Generator:
    """The generator of one clip from a seed and the clip's id: the same in every process."""
    digest = hashlib.sha256(clip_id.encode("utf-8")).digest()
    return np.random.default_rng([seed, int.from_bytes(digest[:8], "little")])
