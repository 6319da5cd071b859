"""Index a folder of audio: a manifest of usable files and a report of the bad ones.

Manifest: one JSON object per line, per file: ``path`` (relative to the manifest's own folder,
with forward slashes), ``duration`` (s), ``sr``, ``channels``, ``frames``, plus ``bytes`` and
``mtime`` so that re-indexing a grown folder only decodes new or changed files. Other keys are
labels and travel unchanged through the pipeline.

Bad-files report: one JSON object per line: ``path`` and ``reason``. A bad file never stops the
run.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tqdm.auto import tqdm

from musicssl import audio
from musicssl.errors import AudioError, MusicSSLError


@dataclass
class IndexSummary:
    """What an indexing run did."""

    manifest: Path
    bad_report: Path
    kept: int = 0
    skipped: int = 0
    decoded: int = 0
    reused: int = 0
    total_seconds: float = 0.0
    reasons: dict[str, int] = field(default_factory=dict)

    def __str__(self) -> str:
        lines = [
            f"kept {self.kept} files ({self.total_seconds / 3600:.2f} h), "
            f"skipped {self.skipped} bad files; decoded {self.decoded}, "
            f"reused {self.reused} from the previous index",
            f"manifest: {self.manifest}",
        ]
        if self.skipped:
            kinds = ", ".join(f"{count} {kind}" for kind, count in sorted(self.reasons.items()))
            lines.append(f"bad files ({kinds}): {self.bad_report}")
        return "\n".join(lines)


def index_folder(
    root: str | os.PathLike,
    *,
    out: str | os.PathLike,
    bad: str | os.PathLike | None = None,
    workers: int = 4,
    progress: bool = True,
) -> IndexSummary:
    """Walk ``root`` for audio files and write a manifest and a bad-files report.

    Files already in an existing manifest (or bad report) at ``out`` with the same size and
    modification time are not decoded again. Both outputs are written whole or not at all.

    Args:
        root: folder to walk (recursively; hidden folders are skipped).
        out: the manifest to write (JSON lines).
        bad: the bad-files report; defaults to ``<out stem>.bad.jsonl`` beside ``out``.
        workers: files decoded at once (libsndfile releases the GIL).
        progress: show a progress bar.

    Raises:
        MusicSSLError: ``root`` is not a folder.
    """
    root = Path(root)
    if not root.is_dir():
        raise MusicSSLError(f"{root}: not a folder")
    out = Path(out)
    bad_path = Path(bad) if bad is not None else out.with_name(f"{out.stem}.bad.jsonl")
    base = out.resolve().parent
    previous = {row["path"]: row for row in _read_optional(out)}
    previous_bad = {row["path"]: row for row in _read_optional(bad_path)}

    files = sorted(find_audio(root))
    summary = IndexSummary(manifest=out, bad_report=bad_path)
    todo: list[tuple[int, Path, str, os.stat_result]] = []
    results: list[dict[str, Any] | None] = [None] * len(files)
    for position, file in enumerate(files):
        key = _relative(file, base)
        stat = file.stat()
        old = previous.get(key) or previous_bad.get(key)
        if (
            old is not None
            and old.get("bytes") == stat.st_size
            and old.get("mtime") == stat.st_mtime
        ):
            results[position] = old
            summary.reused += 1
        else:
            todo.append((position, file, key, stat))

    def inspect(item: tuple[int, Path, str, os.stat_result]) -> tuple[int, dict[str, Any]]:
        position, file, key, stat = item
        row: dict[str, Any] = {"path": key, "bytes": stat.st_size, "mtime": stat.st_mtime}
        try:
            found = audio.check(file)
        except AudioError as error:
            row["reason"] = error.reason
            return position, row
        row.update(
            duration=round(found.duration, 6),
            sr=found.sr,
            channels=found.channels,
            frames=found.frames,
        )
        return position, {**previous.get(key, {}), **row}

    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        bar = tqdm(
            total=len(files),
            initial=summary.reused,
            unit="file",
            desc="index",
            disable=not progress,
        )
        for position, row in pool.map(inspect, todo):
            results[position] = row
            summary.decoded += 1
            bar.update()
        bar.close()

    good, bad_rows = [], []
    for row in results:
        assert row is not None
        if "reason" in row:
            bad_rows.append(row)
            kind = row["reason"].split(":")[0].split(" (")[0]
            summary.reasons[kind] = summary.reasons.get(kind, 0) + 1
        else:
            good.append(row)
            summary.total_seconds += row["duration"]
    summary.kept, summary.skipped = len(good), len(bad_rows)
    write_jsonl(out, good)
    write_jsonl(bad_path, bad_rows)
    return summary


def find_audio(root: Path) -> Iterator[Path]:
    """Audio files under ``root`` by extension, skipping hidden files and folders."""
    for folder, subfolders, names in os.walk(root):
        subfolders[:] = [name for name in subfolders if not name.startswith(".")]
        for name in names:
            if not name.startswith(".") and audio.is_audio_path(name):
                yield Path(folder) / name


def read_manifest(path: str | os.PathLike) -> list[dict[str, Any]]:
    """Read a manifest; each row gains ``abspath``, its file resolved against the manifest.

    Raises:
        MusicSSLError: the manifest is missing, or a line is not a JSON object with ``path``.
    """
    path = Path(path)
    if not path.is_file():
        raise MusicSSLError(f"{path}: no such manifest")
    base = path.resolve().parent
    rows = []
    with open(path, encoding="utf-8") as handle:
        for number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as error:
                raise MusicSSLError(f"{path}:{number}: not JSON ({error.msg})") from None
            if not isinstance(row, dict) or "path" not in row:
                raise MusicSSLError(f"{path}:{number}: expected an object with a 'path' key")
            row["abspath"] = str(base / row["path"])
            rows.append(row)
    return rows


def write_jsonl(path: str | os.PathLike, rows: Iterable[dict[str, Any]]) -> None:
    """Write JSON lines whole or not at all (temporary file, then rename)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.partial-{os.getpid()}")
    try:
        with open(temporary, "w", encoding="utf-8") as handle:
            for row in rows:
                row = {key: value for key, value in row.items() if key != "abspath"}
                handle.write(json.dumps(row, ensure_ascii=False) + "\n")
        os.replace(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)


def _read_optional(path: Path) -> list[dict[str, Any]]:
    try:
        return read_manifest(path) if path.is_file() else []
    except MusicSSLError:
        return []  # an unreadable old index only costs a full re-scan


def _relative(file: Path, base: Path) -> str:
    return Path(os.path.relpath(file.resolve(), base)).as_posix()
