"""A pre-decoded, memory-mapped sample store: a random crop of any clip is a slice, not a decode.

Layout of a store folder::

    store.json     format, version, sample rate, clip and sample counts, manifest hash
    samples.int16  every clip's mono samples back to back, int16 little-endian
    offsets.npy    int64, shape (num_clips + 1,): clip i is samples[offsets[i]:offsets[i+1]]
    clips.jsonl    the manifest rows of the packed clips, in store order (labels included)

int16 rather than float16: converting int16 to float32 is a multiply, while float16 needs a
software conversion that made crops several times slower. Samples are scaled by 2**15, so a
16-bit PCM source round-trips exactly.

``pack`` writes into ``<store>.partial`` and renames it into place only when complete, so a
killed pack never leaves a store that loads as whole; re-running ``pack`` resumes from the last
clip it recorded. The partial folder holds a lock while a pack writes it, so a second pack into
the same store is refused rather than mixed in. ``pack`` writes a new folder, or replaces one
that holds a store and nothing else (exchanged in one rename where the system allows); any
other existing path is refused and left as it was.
"""

from __future__ import annotations

import ctypes
import errno
import hashlib
import json
import os
import shutil
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from musicssl import audio
from musicssl.errors import AudioError, MusicSSLError
from musicssl.files import write_text
from musicssl.manifest import read_manifest, write_jsonl
from musicssl.progress import bar as progress_bar
from musicssl.splits import describe_splits, split_counts

FORMAT = "musicssl-store"
VERSION = 1
SCALE = np.float32(1.0 / 32768.0)
_SAMPLES = "samples.int16"
_CHECKPOINT_SECONDS = 5.0
_LOCK = ".lock"
_STORE_FILES = frozenset({"store.json", _SAMPLES, "offsets.npy", "clips.jsonl", _LOCK})
_PARTIAL_FILES = _STORE_FILES | {"progress.json"}


@dataclass
class PackSummary:
    """What a packing run did."""

    store: Path
    clips: int = 0
    seconds: float = 0.0
    resumed_from: int = 0
    up_to_date: bool = False
    skipped: list[dict[str, str]] = field(default_factory=list)
    splits: dict[str, int] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    def __str__(self) -> str:
        if self.up_to_date:
            return f"{self.store}: up to date ({self.clips} clips)"
        text = f"packed {self.clips} clips ({self.seconds / 3600:.2f} h) into {self.store}" + (
            f", resumed after clip {self.resumed_from}" if self.resumed_from else ""
        )
        if self.clips:
            text += f"; splits: {describe_splits(self.splits)}"
        for row in self.skipped:
            text += f"\nskipped {row['path']}: {row['reason']}"
        if self.notes:
            text += f"\ndecoders printed {len(self.notes)} notes, e.g. {self.notes[0]!r}"
        return text


def pack(
    manifest: str | os.PathLike,
    *,
    out: str | os.PathLike,
    sr: int = 16000,
    workers: int = 2,
    progress: bool = True,
) -> PackSummary:
    """Decode every clip of a manifest once into a store at ``out``.

    Args:
        manifest: JSON-lines manifest (``musicssl data index`` or a built-in corpus).
        out: the store folder to create, or a store (or empty folder) to replace.
        sr: sample rate of the store, in Hz; clips are resampled to it.
        workers: clips decoded at once.
        progress: show a progress bar.

    Returns:
        A summary; clips that fail to decode are skipped and listed in it, never fatal.

    Raises:
        MusicSSLError: the manifest is missing, malformed or empty; ``out`` exists and is
            not a store (nothing there is touched); another pack is writing ``out`` now.
    """
    out = Path(out)
    rows = read_manifest(manifest)
    if not rows:
        raise MusicSSLError(f"{manifest}: empty manifest (no clips to pack)")
    digest = _manifest_digest(rows, sr)
    summary = PackSummary(store=out)
    if _up_to_date(out, digest, summary):
        return summary

    partial = out.with_name(out.name + ".partial")
    lock = _claim(partial, out)
    locked_folder = partial
    try:
        if not _up_to_date(out, digest, summary):  # another pack may have finished it meanwhile
            _write_partial(partial, rows, digest, sr, workers, progress, summary)
            _swap_into_place(partial, out)
            locked_folder = out
    finally:
        _release(locked_folder, lock, remove_folder=summary.up_to_date)
    return summary


def _write_partial(
    partial: Path,
    rows: list[dict[str, Any]],
    digest: str,
    sr: int,
    workers: int,
    progress: bool,
    summary: PackSummary,
) -> None:
    """Decode ``rows`` into ``partial`` (resuming what a killed pack left) and complete it."""
    state = _resume_state(partial, digest)
    if state is None:
        for name in os.listdir(partial):
            if name != _LOCK:
                (partial / name).unlink()
        state = {
            "manifest_sha256": digest,
            "sr": sr,
            "done": 0,
            "offsets": [0],
            "rows": [],
            "skipped": [],
        }
    summary.resumed_from = state["done"]
    with (
        open(partial / _SAMPLES, "r+b" if (partial / _SAMPLES).exists() else "wb") as samples,
        audio.decoder_notes() as notes,
    ):
        samples.truncate(state["offsets"][-1] * 2)  # drop what was written after the checkpoint
        samples.seek(0, os.SEEK_END)
        last_checkpoint = time.monotonic()
        bar = progress_bar(
            total=len(rows),
            initial=state["done"],
            unit="clip",
            desc="pack",
            disable=not progress,
            file=notes.console,
        )
        for row, decoded in _decode_in_order(rows[state["done"] :], sr, workers):
            if isinstance(decoded, AudioError):
                state["skipped"].append({"path": row["path"], "reason": decoded.reason})
            else:
                quantised = np.clip(np.round(decoded * 32768.0), -32768, 32767).astype("<i2")
                samples.write(quantised.tobytes())
                state["offsets"].append(state["offsets"][-1] + len(quantised))
                state["rows"].append({key: value for key, value in row.items() if key != "abspath"})
            state["done"] += 1
            bar.update()
            if time.monotonic() - last_checkpoint > _CHECKPOINT_SECONDS:
                samples.flush()
                os.fsync(samples.fileno())
                _write_json(partial / "progress.json", state)
                last_checkpoint = time.monotonic()
        bar.close()
        samples.flush()
        os.fsync(samples.fileno())
    summary.notes = notes.lines

    offsets = np.asarray(state["offsets"], dtype=np.int64)
    np.save(partial / "offsets.npy", offsets)
    write_jsonl(partial / "clips.jsonl", state["rows"])
    meta = {
        "format": FORMAT,
        "version": VERSION,
        "sr": sr,
        "dtype": "int16",
        "num_clips": len(state["rows"]),
        "num_samples": int(offsets[-1]),
        "manifest_sha256": digest,
        "skipped": state["skipped"],
    }
    _write_json(partial / "store.json", meta)
    (partial / "progress.json").unlink(missing_ok=True)
    summary.clips, summary.seconds = meta["num_clips"], meta["num_samples"] / sr
    summary.skipped = state["skipped"]
    summary.splits = split_counts(state["rows"])


class SampleStore:
    """Read-only view of a packed store; crops are slices of one memory map.

    Safe to hand to DataLoader workers: the memory map is opened lazily in each process.

    Args:
        path: the store folder written by ``pack``.
    """

    def __init__(self, path: str | os.PathLike) -> None:
        self.path = Path(path)
        meta_path = self.path / "store.json"
        if not meta_path.is_file():
            hint = (
                " (a pack was interrupted: run `musicssl data pack` again to finish it)"
                if (self.path.with_name(self.path.name + ".partial").is_dir())
                else ""
            )
            raise MusicSSLError(f"{self.path}: not a complete sample store{hint}")
        meta = json.loads(meta_path.read_text())
        if meta.get("format") != FORMAT or meta.get("version") != VERSION:
            raise MusicSSLError(
                f"{self.path}: unknown store format {meta.get('format')!r} "
                f"version {meta.get('version')!r}"
            )
        self.sr: int = int(meta["sr"])
        offsets = np.load(self.path / "offsets.npy")
        self.rows: list[dict[str, Any]] = read_manifest(self.path / "clips.jsonl")
        if len(offsets) != len(self.rows) + 1 or int(offsets[-1]) != meta["num_samples"]:
            raise MusicSSLError(f"{self.path}: index and samples disagree (store is damaged)")
        # Plain lists: indexing them is several times cheaper than indexing numpy arrays.
        self._offsets: list[int] = offsets.tolist()
        self._lengths: list[int] = np.diff(offsets).tolist()
        self._samples: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self._lengths)

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state["_samples"] = None  # each worker maps the file itself instead of copying it
        return state

    @property
    def samples(self) -> np.ndarray:
        """All samples, int16, memory-mapped. Shape: (total_samples,)."""
        if self._samples is None:
            # A plain ndarray view: slicing the np.memmap subclass costs several µs a crop.
            mapped = np.memmap(self.path / _SAMPLES, dtype="<i2", mode="r")
            self._samples = mapped.view(np.ndarray)
        return self._samples

    def prefetch(self, *, max_memory_fraction: float = 0.25) -> bool:
        """Ask the OS to read the samples into its page cache ahead of the random crops.

        Training reads crops at random places; from a cold disk the first pass over a store
        ran at about 60% of the speed of the rest, which also misled a time budget fitted
        in its first minutes. The request (``posix_fadvise(WILLNEED)``) returns at once and
        the kernel reads in the background. Only a store that fits in ``max_memory_fraction``
        of the machine's memory is asked for; larger ones are left to the OS.

        Returns:
            True when the request was made.
        """
        if not hasattr(os, "posix_fadvise"):
            return False
        try:
            memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
        except (ValueError, OSError):
            return False
        size = (self.path / _SAMPLES).stat().st_size
        if size > max_memory_fraction * memory:
            return False
        descriptor = os.open(self.path / _SAMPLES, os.O_RDONLY)
        try:
            os.posix_fadvise(descriptor, 0, size, os.POSIX_FADV_WILLNEED)
        finally:
            os.close(descriptor)
        return True

    def num_samples(self, index: int) -> int:
        """Length of clip ``index`` in samples."""
        return self._lengths[index]

    def crop(self, index: int, start: int, num_samples: int) -> np.ndarray:
        """Samples ``start .. start + num_samples`` of clip ``index``, zero-padded past its end.

        Returns:
            Shape: (num_samples,), float32 in [-1, 1).
        """
        length = self._lengths[index]
        if 0 <= start and start + num_samples <= length:
            # One conversion straight from the map; crop_pcm would copy the slice first.
            begin = self._offsets[index] + start
            out = self.samples[begin : begin + num_samples].astype(np.float32)
        else:
            out = self.crop_pcm(index, start, num_samples).astype(np.float32)
        out *= SCALE
        return out

    def crop_pcm(self, index: int, start: int, num_samples: int) -> np.ndarray:
        """Like ``crop``, as the stored int16 samples (``crop`` is this times ``2**-15``).

        The training loader ships these: half the bytes of float32 between processes and to
        the device, where the conversion is one batched multiply.

        Returns:
            Shape: (num_samples,), int16, a copy.
        """
        length = self._lengths[index]
        begin = self._offsets[index] + start
        if 0 <= start and start + num_samples <= length:
            return self.samples[begin : begin + num_samples].copy()
        if start < 0 or num_samples < 0:
            raise MusicSSLError(f"crop start and length must be >= 0, got {start}, {num_samples}")
        out = np.zeros(num_samples, dtype=np.int16)
        available = max(0, min(num_samples, length - start))
        out[:available] = self.samples[begin : begin + available]
        return out

    def clip(self, index: int) -> np.ndarray:
        """The whole of clip ``index``. Shape: (num_samples,), float32."""
        return self.crop(index, 0, self._lengths[index])


def _decode_in_order(
    rows: list[dict[str, Any]], sr: int, workers: int
) -> Iterator[tuple[dict[str, Any], np.ndarray | AudioError]]:
    def decode(row: dict[str, Any]) -> np.ndarray | AudioError:
        try:
            return audio.load(row["abspath"], sr=sr)
        except AudioError as error:
            return error

    # A bounded window keeps memory flat while workers decode ahead of the writer.
    window = max(1, workers) * 4
    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        for begin in range(0, len(rows), window):
            chunk = rows[begin : begin + window]
            yield from zip(chunk, pool.map(decode, chunk))


def _resume_state(partial: Path, digest: str) -> dict[str, Any] | None:
    try:
        state = json.loads((partial / "progress.json").read_text())
    except (OSError, ValueError):
        return None
    samples = partial / _SAMPLES
    if state.get("manifest_sha256") != digest or not samples.is_file():
        return None
    if samples.stat().st_size < state["offsets"][-1] * 2:
        return None
    return state


def _manifest_digest(rows: list[dict[str, Any]], sr: int) -> str:
    hasher = hashlib.sha256(f"sr={sr}\n".encode())
    for row in rows:
        hasher.update(json.dumps(row, sort_keys=True).encode())
    return hasher.hexdigest()


def _write_json(path: Path, value: dict[str, Any]) -> None:
    write_text(path, json.dumps(value))


def _read_meta(path: Path) -> dict[str, Any] | None:
    """``store.json`` of a folder when it is one of ours, else None."""
    try:
        meta = json.loads((path / "store.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return meta if isinstance(meta, dict) and meta.get("format") == FORMAT else None


def _up_to_date(out: Path, digest: str, summary: PackSummary) -> bool:
    """Whether ``out`` already holds this manifest's store; refuses an ``out`` not ours."""
    _check_replaceable(out)
    meta = _read_meta(out) if out.is_dir() else None
    if meta is not None and meta.get("manifest_sha256") == digest:
        summary.up_to_date, summary.clips = True, int(meta["num_clips"])
        return True
    return False


def _check_replaceable(out: Path) -> None:
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
    others = sorted(name for name in names if name not in _STORE_FILES)
    if others or _read_meta(out) is None:
        held = ", ".join((others or sorted(names))[:3]) + (", ..." if len(names) > 3 else "")
        raise MusicSSLError(
            f"{out}: exists and is not a sample store (it holds {held}); refusing to replace "
            "it (choose a new folder for --out)"
        )


def _claim(partial: Path, out: Path) -> int:
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
            lock = os.open(partial / _LOCK, os.O_RDWR | os.O_CREAT, 0o644)
        except FileNotFoundError:
            continue  # the folder was renamed into place meanwhile
        if not _try_lock(lock):
            os.close(lock)
            raise MusicSSLError(busy)
        try:
            current = os.stat(partial / _LOCK).st_ino
        except FileNotFoundError:
            current = -1
        if current == os.fstat(lock).st_ino:
            return lock
        os.close(lock)  # its owner finished and moved the folder: claim the path afresh
    raise MusicSSLError(busy)


def _partial_name(name: str) -> bool:
    return name in _PARTIAL_FILES or name.startswith(".partial-")


def _try_lock(descriptor: int) -> bool:
    if sys.platform == "win32":
        return True
    import fcntl

    try:
        fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    return True


def _release(folder: Path, lock: int, *, remove_folder: bool = False) -> None:
    """Remove the lock file from ``folder`` (where the locked folder now is) and unlock."""
    try:
        if os.fstat(lock).st_nlink and os.stat(folder / _LOCK).st_ino == os.fstat(lock).st_ino:
            (folder / _LOCK).unlink()
            if remove_folder:
                try:
                    folder.rmdir()  # only when the lock was all it held
                except OSError:
                    pass
    except OSError:
        pass
    os.close(lock)


def _swap_into_place(partial: Path, out: Path) -> None:
    """Move the complete ``partial`` to ``out``, replacing a store there in one step.

    ``partial`` first takes a private name, so no other pack can claim it while it moves.
    """
    private = out.with_name(f".{out.name}.new-{os.getpid()}")
    os.rename(partial, private)
    try:
        _check_replaceable(out)  # again: something may have appeared there meanwhile
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
