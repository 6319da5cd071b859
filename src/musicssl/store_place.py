"""Putting a finished sample store in place, and never over anything that is not one.

A pack writes into ``<store>.partial``, which it claims with a lock (``flock``: it goes with
the process, so a killed pack's folder is resumed at once and a live one's is refused), then
moves it onto ``<store>`` in one step: a rename, or an exchange of the two folders where the
system allows, when a store is there already. An existing path that is not a store of ours
(and not an empty folder) is refused and left as it was.
"""

from __future__ import annotations

import ctypes
import errno
import json
import os
import shutil
import sys
from pathlib import Path
from typing import Any

from musicssl.errors import MusicSSLError
from musicssl.store import FORMAT, LOCK_FILE, PARTIAL_FILES, STORE_FILES


def read_meta(path: Path) -> dict[str, Any] | None:
    """``store.json`` of a folder when it is one of ours, else None."""
    try:
        meta = json.loads((path / "store.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return meta if isinstance(meta, dict) and meta.get("format") == FORMAT else None


def check_replaceable(out: Path) -> None:
    """Refuse an existing ``out`` unless it is an empty folder or a store and nothing else."""
    if not os.path.lexists(out):
        return
    if out.is_symlink() or not out.is_dir():
        raise MusicSSLError(
            f"{out}: exists and is not a sample store; refusing to replace it "
            "(choose a new folder for --out)"
        )
    names = set(os.listdir(out))
    if not names:
        return
    others = sorted(name for name in names if name not in STORE_FILES)
    if others or read_meta(out) is None:
        held = ", ".join((others or sorted(names))[:3]) + (", ..." if len(names) > 3 else "")
        raise MusicSSLError(
            f"{out}: exists and is not a sample store (it holds {held}); refusing to replace "
            "it (choose a new folder for --out)"
        )


def claim(partial: Path, out: Path) -> int:
    """Create or reuse ``partial`` and lock it for this process; the lock's descriptor.

    The lock (``flock``) goes with the process, so a killed pack's folder can be resumed at
    once, while a live one's is refused.
    """
    busy = f"{out}: another pack is writing this store now ({partial}); wait for it to finish"
    for _ in range(3):
        if os.path.lexists(partial):
            if partial.is_symlink() or not partial.is_dir():
                raise MusicSSLError(f"{partial}: exists and is not a partial sample store")
            others = [name for name in os.listdir(partial) if not _partial_name(name)]
            if others:
                raise MusicSSLError(
                    f"{partial}: holds files a pack did not write ({', '.join(sorted(others)[:3])})"
                    "; refusing to use it"
                )
        partial.mkdir(parents=True, exist_ok=True)
        try:
            lock = os.open(partial / LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o644)
        except FileNotFoundError:
            continue  # the folder was renamed into place meanwhile
        if not _try_lock(lock):
            os.close(lock)
            raise MusicSSLError(busy)
        try:
            current = os.stat(partial / LOCK_FILE).st_ino
        except FileNotFoundError:
            current = -1
        if current == os.fstat(lock).st_ino:
            return lock
        os.close(lock)  # its owner finished and moved the folder: claim the path afresh
    raise MusicSSLError(busy)


def _partial_name(name: str) -> bool:
    return name in PARTIAL_FILES or name.startswith(".partial-")


def _try_lock(descriptor: int) -> bool:
    if sys.platform == "win32":
        return True
    import fcntl

    try:
        fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    return True


def release(folder: Path, lock: int, *, remove_folder: bool = False) -> None:
    """Remove the lock file from ``folder`` (where the locked folder now is) and unlock."""
    try:
        if os.fstat(lock).st_nlink and os.stat(folder / LOCK_FILE).st_ino == os.fstat(lock).st_ino:
            (folder / LOCK_FILE).unlink()
            if remove_folder:
                try:
                    folder.rmdir()  # only when the lock was all it held
                except OSError:
                    pass
    except OSError:
        pass
    os.close(lock)


def swap_into_place(partial: Path, out: Path) -> None:
    """Move the complete ``partial`` to ``out``, replacing a store there in one step.

    ``partial`` first takes a private name, so no other pack can claim it while it moves.
    """
    private = out.with_name(f".{out.name}.new-{os.getpid()}")
    os.rename(partial, private)
    try:
        check_replaceable(out)  # again: something may have appeared there meanwhile
    except MusicSSLError:
        os.rename(private, partial)
        raise
    try:
        os.rename(private, out)  # replaces nothing, or an empty folder
        return
    except OSError as error:
        if error.errno not in (errno.ENOTEMPTY, errno.EEXIST):
            raise
    if not _exchange(private, out):
        old = out.with_name(f".{out.name}.old-{os.getpid()}")
        os.rename(out, old)
        os.rename(private, out)
        private = old
    shutil.rmtree(private)  # the replaced store


def _exchange(first: Path, second: Path) -> bool:
    """Swap two paths in one rename (Linux ``renameat2``); False where not available."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        renameat2 = ctypes.CDLL(None, use_errno=True).renameat2
    except (AttributeError, OSError):
        return False
    at_fdcwd, rename_exchange = -100, 2
    if renameat2(at_fdcwd, os.fsencode(first), at_fdcwd, os.fsencode(second), rename_exchange):
        code = ctypes.get_errno()
        if code in (errno.ENOSYS, errno.EINVAL):
            return False
        raise OSError(code, os.strerror(code), str(second))
    return True
