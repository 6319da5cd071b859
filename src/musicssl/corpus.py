"""Index a folder of audio: a manifest of usable files and a report of the bad ones.

Manifest: one JSON object per line, per file: ``path`` (relative to the manifest's own folder,
with forward slashes), ``duration`` (s), ``sr``, ``channels``, ``frames``, plus ``bytes`` and
``mtime`` so that re-indexing a grown folder only decodes new or changed files, and ``split``
(``train``, ``valid`` or ``test``) where the index was given one. Other keys are labels and
travel unchanged through the pipeline.

Bad-files report: one JSON object per line: ``path`` and ``reason``. A bad file (missing,
unreadable, a broken link, not audio, corrupt, truncated, silent) never stops the run.

Splits travel with the data, from one of (first that applies):

- ``splits=``: a manifest whose rows carry ``split``, or a table (``.csv``, ``.tsv``) with
  ``path`` and ``split`` columns; its paths are relative to its own folder or to the indexed
  folder;
- ``split_by=``: a stable hash of each file's group, 80/10/10 train/valid/test, where the group
  is its parent folder (``parent``), the file name up to its last SEP (``prefix:SEP``: takes of
  one piece stay together) or the file alone (``file``);
- the manifest beside the indexed folder (``FOLDER/../manifest.jsonl``, as the built-in corpus
  lays out) when its rows carry ``split``;
- otherwise the split a file had in the previous index at ``out``.
"""

from __future__ import annotations

import csv
import hashlib
import json
import os
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from musicssl import audio
from musicssl.errors import AudioError, MusicSSLError
from musicssl.files import atomic_path
from musicssl.progress import bar as progress_bar

SPLIT_SHARES = (("train", 0.8), ("valid", 0.1), ("test", 0.1))
_SPLIT_ALIASES = {"val": "valid", "validation": "valid", "dev": "valid", "training": "train"}
_NEIGHBOUR_MANIFEST = "manifest.jsonl"


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
    splits: dict[str, int] = field(default_factory=dict)
    split_source: str | None = None
    notes: list[str] = field(default_factory=list)

    def __str__(self) -> str:
        lines = [
            f"kept {self.kept} files ({self.total_seconds / 3600:.2f} h), "
            f"skipped {self.skipped} bad files; decoded {self.decoded}, "
            f"reused {self.reused} from the previous index",
        ]
        if self.kept:
            source = f" (from {self.split_source})" if self.split_source else ""
            lines.append(f"splits: {describe_splits(self.splits)}{source}")
        lines.append(f"manifest: {self.manifest}")
        if self.skipped:
            kinds = ", ".join(f"{count} {kind}" for kind, count in sorted(self.reasons.items()))
            lines.append(f"bad files ({kinds}): {self.bad_report}")
        if self.notes:
            lines.append(
                f"decoders printed {len(self.notes)} notes (bad files are in the report), "
                f"e.g. {self.notes[0]!r}"
            )
        return "\n".join(lines)


def index_folder(
    root: str | os.PathLike,
    *,
    out: str | os.PathLike,
    bad: str | os.PathLike | None = None,
    splits: str | os.PathLike | None = None,
    split_by: str | None = None,
    workers: int = 4,
    progress: bool = True,
) -> IndexSummary:
    """Walk ``root`` for audio files and write a manifest and a bad-files report.

    Files already in an existing manifest (or bad report) at ``out`` with the same size and
    modification time are not decoded again. Both outputs are written whole or not at all,
    and only over a manifest (an existing file that is not one is refused).

    Args:
        root: folder to walk (recursively, following links to folders; hidden ones skipped).
        out: the manifest to write (JSON lines).
        bad: the bad-files report; defaults to ``<out stem>.bad.jsonl`` beside ``out``.
        splits: a manifest with ``split`` or a ``.csv``/``.tsv`` table with ``path`` and
            ``split`` columns; each file takes the split of its row (see the module's doc).
        split_by: ``parent``, ``prefix:SEP`` or ``file``: a hash split, 80/10/10, by group.
        workers: files decoded at once (libsndfile releases the GIL).
        progress: show a progress bar.

    Raises:
        MusicSSLError: ``root`` is not a folder, an output exists and is not a manifest, or
            the splits are malformed (each with the path or option and the reason).
    """
    root = Path(root)
    if not root.is_dir():
        raise MusicSSLError(f"{root}: not a folder")
    if splits is not None and split_by is not None:
        raise MusicSSLError(f"--splits {splits} and --split-by {split_by}: give one of them")
    group_of = _grouping(split_by) if split_by is not None else None
    out = Path(out)
    bad_path = Path(bad) if bad is not None else out.with_name(f"{out.stem}.bad.jsonl")
    if os.path.abspath(out) == os.path.abspath(bad_path):
        raise MusicSSLError(f"{out}: the manifest and the bad-files report must differ")
    previous = {row["path"]: row for row in _existing_rows(out)}
    previous_bad = {row["path"]: row for row in _existing_rows(bad_path)}
    summary = IndexSummary(manifest=out, bad_report=bad_path)
    table: dict[str, str] | None = None
    if splits is not None:
        table, summary.split_source = _read_splits(Path(splits), root), str(splits)
    elif split_by is None:
        table, summary.split_source = _neighbour_splits(root)

    base = out.resolve().parent
    walk_errors: list[tuple[Path, str]] = []
    files = sorted(find_audio(root, errors=walk_errors))
    todo: list[tuple[int, Path, str, os.stat_result]] = []
    results: list[dict[str, Any] | None] = [None] * len(files)
    for position, file in enumerate(files):
        key = _relative(file, base)
        try:
            stat = file.stat()
        except OSError as error:
            results[position] = {"path": key, "reason": audio.os_error_reason(error, file)}
            continue
        old = previous.get(key) or previous_bad.get(key)
        if (
            old is not None
            and old.get("bytes") == stat.st_size
            and old.get("mtime") == stat.st_mtime
        ):
            results[position] = dict(old)
            summary.reused += 1
        else:
            todo.append((position, file, key, stat))

    def inspect(item: tuple[int, Path, str, os.stat_result]) -> tuple[int, dict[str, Any]]:
        position, file, key, stat = item
        row: dict[str, Any] = {"path": key, "bytes": stat.st_size, "mtime": stat.st_mtime}
        try:
            found = audio.check(file)
        except AudioError as error:
            return position, {**row, "reason": error.reason}
        except OSError as error:
            return position, {**row, "reason": audio.os_error_reason(error, file)}
        except Exception as error:  # a decoder's own failure is one bad file, not a stop
            return position, {**row, "reason": f"could not be decoded ({error!r})"}
        row.update(
            duration=round(found.duration, 6),
            sr=found.sr,
            channels=found.channels,
            frames=found.frames,
        )
        return position, {**previous.get(key, {}), **row}

    with audio.decoder_notes() as notes, ThreadPoolExecutor(max(1, workers)) as pool:
        bar = progress_bar(
            total=len(files),
            initial=len(files) - len(todo),
            unit="file",
            desc="index",
            disable=not progress,
            file=notes.console,
        )
        for position, row in pool.map(inspect, todo):
            results[position] = row
            summary.decoded += 1
            bar.update()
        bar.close()
    summary.notes = notes.lines

    good = []
    bad_rows = [{"path": _relative(folder, base), "reason": why} for folder, why in walk_errors]
    for file, result in zip(files, results, strict=True):
        assert result is not None
        row = result
        if "reason" in row:
            row.pop("split", None)
            bad_rows.append(row)
            continue
        if group_of is not None:
            row["split"] = hash_split(group_of(file.relative_to(root)))
        elif table is not None:
            row.pop("split", None)
            found = _lookup(table, file)
            if found is not None:
                row["split"] = found
        good.append(row)
        summary.total_seconds += row["duration"]
    for row in bad_rows:
        kind = row["reason"].split(":")[0].split(" (")[0]
        summary.reasons[kind] = summary.reasons.get(kind, 0) + 1
    summary.kept, summary.skipped = len(good), len(bad_rows)
    summary.splits = split_counts(good)
    if group_of is not None:
        summary.split_source = f"a hash of each file's {split_by} group"
    elif table is None and summary.splits.keys() - {""}:
        summary.split_source = f"the previous {out}"
    write_jsonl(out, good)
    write_jsonl(bad_path, bad_rows)
    return summary


def hash_split(group: str) -> str:
    """The split of a group by a stable hash of its name: 80% train, 10% valid, 10% test."""
    digest = hashlib.sha256(group.encode("utf-8")).digest()
    position = int.from_bytes(digest[:8], "big") / 2.0**64
    for name, share in SPLIT_SHARES:
        position -= share
        if position < 0:
            return name
    return SPLIT_SHARES[-1][0]


def find_audio(root: Path, *, errors: list[tuple[Path, str]] | None = None) -> Iterator[Path]:
    """Audio files under ``root`` by extension, skipping hidden files and folders.

    Links to folders are followed, each real folder once (a link loop ends there). A folder
    that cannot be read is appended to ``errors`` as ``(folder, reason)`` when a list is
    given, and otherwise skipped.
    """
    seen: set[str] = set()

    def unreadable(error: OSError) -> None:
        if errors is not None and error.filename is not None:
            reason = f"folder not readable: {audio.os_error_reason(error)}"
            errors.append((Path(error.filename), reason))

    for folder, subfolders, names in os.walk(root, onerror=unreadable, followlinks=True):
        real = os.path.realpath(folder)
        if real in seen:
            subfolders[:] = []
            continue
        seen.add(real)
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
    try:
        with open(path, encoding="utf-8") as handle:
            for number, line in enumerate(handle, start=1):
                if not line.strip():
                    continue
                try:
                    row = json.loads(line)
                except json.JSONDecodeError as error:
                    raise MusicSSLError(f"{path}:{number}: not JSON ({error.msg})") from None
                if not isinstance(row, dict) or not isinstance(row.get("path"), str):
                    raise MusicSSLError(f"{path}:{number}: expected an object with a 'path' key")
                row["abspath"] = str(base / row["path"])
                rows.append(row)
    except UnicodeDecodeError:
        raise MusicSSLError(f"{path}: not a manifest (not UTF-8 text)") from None
    except OSError as error:
        raise MusicSSLError(f"{path}: {audio.os_error_reason(error, path)}") from None
    return rows


def write_jsonl(path: str | os.PathLike, rows: Iterable[dict[str, Any]]) -> None:
    """Write JSON lines whole or not at all (temporary file, then rename)."""
    with atomic_path(path) as temporary, open(temporary, "w", encoding="utf-8") as handle:
        for row in rows:
            row = {key: value for key, value in row.items() if key != "abspath"}
            handle.write(json.dumps(row, ensure_ascii=False) + "\n")


def _existing_rows(path: Path) -> list[dict[str, Any]]:
    """The rows of an output about to be rewritten; refuses anything that is not a manifest."""
    if not os.path.lexists(path):
        return []
    if path.is_dir():
        raise MusicSSLError(f"{path}: is a folder, not a manifest file")
    try:
        return read_manifest(path)
    except MusicSSLError:
        raise MusicSSLError(
            f"{path}: exists and is not a manifest; refusing to overwrite it (choose a new path)"
        ) from None


def _relative(file: Path, base: Path) -> str:
    # The folder is resolved, the name is kept: a link is listed under its own name, and a
    # broken link or a link loop still has one.
    real = os.path.join(os.path.realpath(file.parent), file.name)
    return Path(os.path.relpath(real, base)).as_posix()


def _grouping(split_by: str) -> Any:
    """The group key of a file (its path relative to the indexed folder) for ``split_by``."""
    if split_by == "parent":
        return lambda relative: relative.parent.as_posix()
    if split_by == "file":
        return lambda relative: relative.as_posix()
    if split_by.startswith("prefix:") and len(split_by) > len("prefix:"):
        separator = split_by[len("prefix:") :]
        return lambda relative: relative.stem.rsplit(separator, 1)[0]
    raise MusicSSLError(
        f"--split-by {split_by!r}: expected 'parent', 'file' or 'prefix:SEP' (e.g. 'prefix:-')"
    )


def _read_splits(path: Path, root: Path) -> dict[str, str]:
    """Real path of each listed file -> its split, from a manifest or a table."""
    if not path.is_file():
        raise MusicSSLError(f"{path}: no such splits file")
    if path.suffix.lower() in (".csv", ".tsv"):
        entries = _read_table(path)
    else:
        entries = []
        for number, row in enumerate(read_manifest(path), start=1):
            if row.get("split") not in (None, ""):
                entries.append((number, row["path"], row["split"]))
        if not entries:
            raise MusicSSLError(f"{path}: no row has a 'split' to carry")
    # Paths are relative to the table's folder, or else to the indexed folder.
    table: dict[str, str] = {}
    for number, name, split in entries:
        split = _split_name(split, f"{path}:{number}")
        key = os.path.realpath(path.resolve().parent / name)
        if table.setdefault(key, split) != split:
            raise MusicSSLError(
                f"{path}:{number}: {name} is listed in splits {table[key]!r} and {split!r}"
            )
    for number, name, split in entries:
        table.setdefault(os.path.realpath(root / name), _split_name(split, f"{path}:{number}"))
    return table


def _read_table(path: Path) -> list[tuple[int, str, str]]:
    delimiter = "\t" if path.suffix.lower() == ".tsv" else ","
    try:
        with open(path, encoding="utf-8-sig", newline="") as handle:
            reader = csv.DictReader(handle, delimiter=delimiter)
            columns = [name.strip().lower() for name in reader.fieldnames or []]
            if "path" not in columns or "split" not in columns:
                raise MusicSSLError(
                    f"{path}: needs 'path' and 'split' columns in its header line "
                    f"(found {', '.join(columns) or 'none'})"
                )
            reader.fieldnames = columns
            return [
                (number, (row["path"] or "").strip(), (row["split"] or "").strip())
                for number, row in enumerate(reader, start=2)
                if (row["path"] or "").strip()
            ]
    except UnicodeDecodeError:
        raise MusicSSLError(f"{path}: not a text table (not UTF-8)") from None
    except csv.Error as error:
        raise MusicSSLError(f"{path}: not a readable table ({error})") from None


def _split_name(value: object, where: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise MusicSSLError(f"{where}: the split is empty (expected train, valid or test)")
    name = value.strip().lower()
    return _SPLIT_ALIASES.get(name, name)


def _neighbour_splits(root: Path) -> tuple[dict[str, str] | None, str | None]:
    """Splits of the manifest beside ``root`` (the built-in corpus's layout), when it has any."""
    beside = root.resolve().parent / _NEIGHBOUR_MANIFEST
    if not beside.is_file():
        return None, None
    try:
        rows = read_manifest(beside)
    except MusicSSLError:
        return None, None
    inside = os.path.realpath(root) + os.sep
    table = {
        os.path.realpath(row["abspath"]): _split_name(row["split"], str(beside))
        for row in rows
        if isinstance(row.get("split"), str) and row["split"].strip()
    }
    if not any(key.startswith(inside) for key in table):
        return None, None
    return table, str(beside)


def _lookup(table: dict[str, str], file: Path) -> str | None:
    found = table.get(os.path.realpath(file))
    if found is None:
        found = table.get(os.path.join(os.path.realpath(file.parent), file.name))
    return found


def split_counts(rows: Iterable[Mapping[str, Any]]) -> dict[str, int]:
    """How many rows each split holds (``""`` for rows with none), train, valid, test first."""
    counts = Counter(str(row.get("split") or "") for row in rows)
    order = {name: rank for rank, (name, _) in enumerate(SPLIT_SHARES)}
    return dict(sorted(counts.items(), key=lambda item: (order.get(item[0], 3), item[0])))


def describe_splits(counts: dict[str, int]) -> str:
    """``split_counts`` in words: "train 28, valid 4, test 4", and the rows with none."""
    named = ", ".join(f"{name} {count}" for name, count in counts.items() if name)
    if not named:
        return "none (pretraining needs them: give --splits or --split-by to data index)"
    unsplit = counts.get("", 0)
    return named + (f", {unsplit} with no split" if unsplit else "")
