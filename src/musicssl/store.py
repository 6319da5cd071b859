"""A pre-decoded, memory-mapped sample store: a random crop of any clip is a slice, not a decode.

Layout of a store folder::

    store.json     format, version, sample rate, clip and sample counts, manifest hash
    samples.int16  every clip's mono samples back to back, int16 little-endian
    offsets.npy    int64, shape (num_clips + 1,): clip i is samples[offsets[i]:offsets[i+1]]
    clips.jsonl    the manifest rows of the packed clips, in store order (labels included)

int16 rather than float16: converting int16 to float32 is a multiply, while float16 needs a
software conversion that made crops several times slower. Samples are scaled by 2**15, so a
16-bit PCM source round-trips exactly. ``musicssl.pack`` writes stores.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np

from musicssl.errors import MusicSSLError
from musicssl.manifest import read_manifest

FORMAT = "musicssl-store"
VERSION = 1
SCALE = np.float32(1.0 / 32768.0)
SAMPLES_FILE = "samples.int16"
LOCK_FILE = ".lock"
STORE_FILES = frozenset({"store.json", SAMPLES_FILE, "offsets.npy", "clips.jsonl", LOCK_FILE})
PARTIAL_FILES = STORE_FILES | {"progress.json"}


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
            if self.path.with_name(self.path.name + ".partial").is_dir():
                why = ("not a complete sample store (a pack was interrupted: run `musicssl data "
                       "pack` again to finish it)")  # fmt: skip
            elif not self.path.is_dir():
                why = "not a folder" if self.path.exists() else "no such folder"
                why += " (a store is made by `musicssl data pack`)"
            else:
                why = ("not a sample store (no store.json); make one from a folder of audio "
                       "with `musicssl data index FOLDER --out M.jsonl --split-by parent`, "
                       "then `musicssl data pack M.jsonl --out STORE`")  # fmt: skip
            raise MusicSSLError(f"{self.path}: {why}")
        damaged = f"{self.path}: the store is damaged; run `musicssl data pack` again"
        try:
            meta = json.loads(meta_path.read_text())
        except (OSError, ValueError):
            raise MusicSSLError(f"{damaged} (store.json unreadable)") from None
        if (
            not isinstance(meta, dict)
            or meta.get("format") != FORMAT
            or meta.get("version") != VERSION
        ):
            raise MusicSSLError(
                f"{self.path}: unknown store format {meta.get('format')!r} "
                f"version {meta.get('version')!r}"
            )
        self.sr: int = int(meta["sr"])
        # What the store was packed from: the same identity, the same clips in the same order.
        self.identity = {"manifest_sha256": str(meta.get("manifest_sha256")), "sr": self.sr,
                         "num_clips": int(meta.get("num_clips", -1))}  # fmt: skip
        try:
            offsets = np.load(self.path / "offsets.npy")
            size = (self.path / SAMPLES_FILE).stat().st_size
        except (OSError, ValueError):
            raise MusicSSLError(f"{damaged} (offsets.npy or the samples unreadable)") from None
        self.rows: list[dict[str, Any]] = read_manifest(self.path / "clips.jsonl")
        if (
            offsets.ndim != 1
            or len(offsets) != len(self.rows) + 1
            or int(offsets[-1]) != meta["num_samples"]
            or size != 2 * int(meta["num_samples"])
        ):
            raise MusicSSLError(f"{damaged} (its index and samples disagree)")
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
            mapped = np.memmap(self.path / SAMPLES_FILE, dtype="<i2", mode="r")
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
        size = (self.path / SAMPLES_FILE).stat().st_size
        if size > max_memory_fraction * memory:
            return False
        descriptor = os.open(self.path / SAMPLES_FILE, os.O_RDONLY)
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
