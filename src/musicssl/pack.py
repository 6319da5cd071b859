"""Write a sample store (see ``musicssl.store`` for its layout) from a manifest.

``pack`` writes into ``<store>.partial`` and renames it into place only when complete, so a
killed pack never leaves a store that loads as whole; re-running ``pack`` resumes from the last
clip it recorded. The partial folder holds a lock while a pack writes it, so a second pack into
the same store is refused rather than mixed in. ``pack`` writes a new folder, or replaces one
that holds a store and nothing else (exchanged in one rename where the system allows); any
other existing path is refused and left as it was (the lock and the move:
``musicssl.store_place``).
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from musicssl import audio
from musicssl.decoder_notes import decoder_notes
from musicssl.errors import AudioError, MusicSSLError
from musicssl.files import file_hash, write_text
from musicssl.manifest import read_manifest, refuse_report, write_jsonl
from musicssl.plural import counted
from musicssl.progress import bar as progress_bar
from musicssl.splits import describe_splits, split_counts
from musicssl.store import FORMAT, LOCK_FILE, SAMPLES_FILE, VERSION, SampleStore
from musicssl.store_place import check_replaceable, claim, read_meta, release, swap_into_place

_CHECKPOINT_SECONDS = 5.0


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
    replaced: dict[str, Any] | None = None  # store.json of the store this pack replaced

    def __str__(self) -> str:
        if self.up_to_date:
            return f"{self.store}: up to date ({self.clips} clips)"
        text = f"packed {self.clips} clips ({self.seconds / 3600:.2f} h) into {self.store}" + (
            f", resumed after clip {self.resumed_from}" if self.resumed_from else ""
        )
        if self.clips:
            text += f"; splits: {describe_splits(self.splits)}"
        if self.replaced is not None:
            old = self.replaced
            text += (
                f"\nreplaced the store there ({old.get('num_clips')} clips at {old.get('sr')} Hz)"
            )
        for row in self.skipped:
            text += f"\nskipped {row['path']}: {row['reason']}"
        if self.notes:
            text += f"\ndecoders printed {counted(len(self.notes), 'note')}, e.g. {self.notes[0]!r}"
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
    if not audio.MIN_SAMPLE_RATE <= sr <= audio.MAX_SAMPLE_RATE:
        raise MusicSSLError(
            f"--sr {sr}: not a plausible sample rate ({audio.MIN_SAMPLE_RATE}-"
            f"{audio.MAX_SAMPLE_RATE} Hz)"
        )
    out = Path(out)
    rows = read_manifest(manifest)
    refuse_report(manifest, rows)
    if not rows:
        raise MusicSSLError(f"{manifest}: empty manifest (no clips to pack)")
    digest = manifest_digest(rows, sr)
    known = {digest, manifest_digest(rows, sr, located=True)}  # the second: an earlier pack's
    summary = PackSummary(store=out)
    if _up_to_date(out, known, summary):
        return summary

    partial = out.with_name(out.name + ".partial")
    lock = claim(partial, out)
    locked_folder = partial
    try:
        if not _up_to_date(out, known, summary):  # another pack may have finished it
            _write_partial(partial, rows, digest, sr, workers, progress, summary)
            swap_into_place(partial, out)
            locked_folder = out
    finally:
        release(locked_folder, lock, remove_folder=summary.up_to_date)
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
            if name != LOCK_FILE:
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
        open(
            partial / SAMPLES_FILE, "r+b" if (partial / SAMPLES_FILE).exists() else "wb"
        ) as samples,
        decoder_notes() as notes,
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
    _check_some_decoded(state)

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


def _decode_in_order(
    rows: list[dict[str, Any]], sr: int, workers: int
) -> Iterator[tuple[dict[str, Any], np.ndarray | AudioError]]:
    def decode(row: dict[str, Any]) -> np.ndarray | AudioError:
        try:
            samples = audio.load(row["abspath"], sr=sr)
            _check_unchanged(row)  # after decoding: a file gone bad says how
            return samples
        except AudioError as error:
            return error

    # A bounded window keeps memory flat while workers decode ahead of the writer.
    window = max(1, workers) * 4
    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        for begin in range(0, len(rows), window):
            chunk = rows[begin : begin + window]
            yield from zip(chunk, pool.map(decode, chunk))


def _check_unchanged(row: dict[str, Any]) -> None:
    """Refuse a file that is not the one indexed: another size, or another modification time
    and other bytes (a copied folder keeps its bytes, not its times). Rows without ``bytes``
    (a manifest written by hand) are taken as they are."""
    if "bytes" not in row:
        return
    try:
        stat = os.stat(row["abspath"])
    except OSError:
        return  # decoding says why
    changed = stat.st_size != row["bytes"]
    if not changed and stat.st_mtime != row.get("mtime") and "sha256" in row:
        try:
            changed = file_hash(row["abspath"]) != row["sha256"]
        except OSError:
            return
    if changed:
        raise AudioError(
            row["abspath"], "changed since it was indexed; run musicssl data index again"
        )


def _resume_state(partial: Path, digest: str) -> dict[str, Any] | None:
    try:
        state = json.loads((partial / "progress.json").read_text())
    except (OSError, ValueError):
        return None
    samples = partial / SAMPLES_FILE
    if state.get("manifest_sha256") != digest or not samples.is_file():
        return None
    if samples.stat().st_size < state["offsets"][-1] * 2:
        return None
    return state


def manifest_digest(rows: list[dict[str, Any]], sr: int, *, located: bool = False) -> str:
    """What a store packed from ``rows`` (``read_manifest``'s) at ``sr`` holds, its identity.

    A row with its file's ``sha256`` is known by its content wherever the folder lies, so a
    corpus copied or moved with its store needs no new pack; a row without one, by where its
    file lies (``abspath``). ``located`` gives the digest of earlier stores, which knew every
    row by where its file lay.
    """
    hasher = hashlib.sha256(f"sr={sr}\n".encode())
    for row in rows:
        if "sha256" in row and not located:
            row = {key: value for key, value in row.items() if key != "abspath"}
        hasher.update(json.dumps(row, sort_keys=True).encode())
    return hasher.hexdigest()


def _write_json(path: Path, value: dict[str, Any]) -> None:
    write_text(path, json.dumps(value))


def _check_some_decoded(state: dict[str, Any]) -> None:
    """Refuse a pack that decoded no clip: its empty store would replace a working one."""
    if not state["rows"]:
        first = state["skipped"][0]
        raise MusicSSLError(
            f"no clip could be decoded ({len(state['skipped'])} skipped, e.g. {first['path']}: "
            f"{first['reason']}); nothing was packed and no store was replaced"
        )


def _up_to_date(out: Path, digests: set[str], summary: PackSummary) -> bool:
    """Whether ``out`` already holds this manifest's store (packed under one of ``digests``);
    refuses an ``out`` not ours."""
    check_replaceable(out)
    meta = read_meta(out) if out.is_dir() else None
    if meta is None or meta.get("manifest_sha256") not in digests:
        summary.replaced = meta
        return False
    try:
        SampleStore(out)  # a store of ours that a damaged file spoils is packed again
    except MusicSSLError:
        return False
    summary.up_to_date, summary.clips = True, int(meta["num_clips"])
    return True
