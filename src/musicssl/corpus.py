"""Index a folder of audio: a manifest of usable files and a report of the bad ones.

Manifest: one JSON object per line, per file: ``path`` (relative to the manifest's own folder,
with forward slashes), ``duration`` (s), ``sr``, ``channels``, ``frames``, plus ``bytes`` and
``mtime`` so that re-indexing a grown folder only decodes new or changed files, ``sha256`` of
its bytes (a copy of a file under another name is kept once), and ``split``
(``train``, ``valid`` or ``test``) where the index was given one. Other keys are labels and
travel unchanged through the pipeline.

Bad-files report: one JSON object per line: ``path`` and ``reason``. A bad file (missing,
unreadable, a broken link, not audio, corrupt, truncated, silent) never stops the run.

Splits travel with the data, from one of (first that applies):

- ``splits=``: a manifest whose rows carry ``split``, or a table (``.csv``, ``.tsv``) with
  ``path`` and ``split`` columns; its paths are relative to its own folder or to the indexed
  folder; or ``GivenSplits`` (a standard data set's own split); a file it does not name gets
  no split, so pretraining never reads it;
- ``split_by=``: a stable hash of each file's group, 80/10/10 train/valid/test, where the group
  is its parent folder (``parent``), the file name up to its last SEP (``prefix:SEP``: takes of
  one piece stay together) or the file alone (``file``);
- the manifest beside the indexed folder (``FOLDER/../manifest.jsonl``, as the built-in corpus
  lays out) when its rows carry ``split``;
- otherwise the split a file had in the previous index at ``out``.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from musicssl import audio
from musicssl.errors import MusicSSLError
from musicssl.index_rows import file_rows, partial_rows, relative_path
from musicssl.labels import apply_labels, read_labels
from musicssl.manifest import read_manifest, write_jsonl
from musicssl.plural import counted
from musicssl.splits import (
    GivenSplits,
    carry_splits,
    describe_splits,
    grouping,
    hash_split,
    lookup,
    neighbour_splits,
    read_splits,
    refuse_moved_splits,
    split_counts,
    split_notes,
    unlisted_note,
)


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
    split_notes: list[str] = field(default_factory=list)
    labels: str | None = None

    def __str__(self) -> str:
        lines = [
            f"kept {counted(self.kept, 'file')} ({self.total_seconds / 3600:.2f} h), skipped "
            f"{counted(self.skipped, 'bad file')}; decoded {self.decoded}, "
            f"reused {self.reused} from the previous index",
        ]
        if self.kept:
            source = f" (from {self.split_source})" if self.split_source else ""
            lines.append(f"splits: {describe_splits(self.splits)}{source}")
            lines += self.split_notes
        if self.labels:
            lines.append(self.labels)
        lines.append(f"manifest: {self.manifest}")
        if self.skipped:
            lines.append(f"bad files ({kinds(self)}): {self.bad_report}")
        if self.notes:
            lines.append(
                f"decoders printed {counted(len(self.notes), 'note')} (bad files are in the "
                f"report), e.g. {self.notes[0]!r}"
            )
        return "\n".join(lines)


def kinds(summary: IndexSummary) -> str:
    """How many bad files of each kind, e.g. "1 empty file, 2 not audio"."""
    return ", ".join(f"{count} {kind}" for kind, count in sorted(summary.reasons.items()))


def index_folder(
    root: str | os.PathLike,
    *,
    out: str | os.PathLike,
    bad: str | os.PathLike | None = None,
    splits: str | os.PathLike | GivenSplits | None = None,
    split_by: str | None = None,
    labels: str | os.PathLike | None = None,
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
            ``split`` columns, or ``GivenSplits``; each file takes the split of its row (see
            the module's doc).
        split_by: ``parent``, ``prefix:SEP`` or ``file``: a hash split, 80/10/10, by group.
        labels: a table whose columns each file's row gains (``musicssl.labels``); they
            replace the labels a file's row had.
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
    group_of = grouping(split_by) if split_by is not None else None
    out, bad_path = _outputs(Path(out), bad)
    both = (
        splits is not None
        and not isinstance(splits, GivenSplits)
        and labels is not None
        and _same_file(splits, labels)
    )
    label_table = read_labels(Path(labels), root, splits_too=both) if labels is not None else None
    previous = {row["path"]: row for row in _existing_rows(out)}
    previous_bad = {row["path"]: row for row in _existing_rows(bad_path, report=True)}
    summary = IndexSummary(manifest=out, bad_report=bad_path)
    table, summary.split_source = _split_table(splits, split_by, root)

    base = out.resolve().parent
    files, walk_errors = _audio_files(root)
    progress_file = out.with_name(f".{out.name}.partial")  # what a killed index had done
    earlier = {**{row["path"]: row for row in partial_rows(progress_file)}, **previous_bad}
    results = file_rows(files, base, previous, earlier, summary, workers=workers,
                    progress=progress, progress_file=progress_file)  # fmt: skip
    bad_rows = [{"path": relative_path(folder, base), "reason": why} for folder, why in walk_errors]
    good, renamed = _with_splits(files, results, bad_rows, root=root, group_of=group_of,
                                 split_by=split_by, table=table, previous=previous)  # fmt: skip
    if label_table is not None:  # on the rows kept: a second path to a file is counted once
        summary.labels = apply_labels(files, results, label_table, Path(labels or ""))
    refuse_moved_splits(out, good, previous)
    _summarise(summary, good, bad_rows)
    unlisted = _unlisted(splits, root, files, good)
    summary.split_source, summary.split_notes = split_notes(
        summary.splits, source=summary.split_source, out=out, split_by=split_by,
        from_table=table is not None, unlisted=unlisted, carried=renamed, files=files, root=root,
    )  # fmt: skip
    if good:  # else the report says why each failed; an empty manifest would help no one
        write_jsonl(out, good)
    write_jsonl(bad_path, bad_rows)
    progress_file.unlink(missing_ok=True)
    if not good:
        raise MusicSSLError(
            f"{root}: none of its {counted(len(bad_rows), 'audio file')} could be read "
            f"({kinds(summary)}); why each failed: {bad_path}"
        )
    return summary


def _split_table(
    splits: str | os.PathLike | GivenSplits | None, split_by: str | None, root: Path
) -> tuple[dict[str, str] | None, str | None]:
    """Each file's split by its real path, and where the splits come from (see the module's
    doc); (None, None) for a hash split, or no splits to carry."""
    if isinstance(splits, GivenSplits):
        return splits.table(), splits.source
    if splits is not None:
        return read_splits(Path(splits), root), str(splits)
    if split_by is None:
        return neighbour_splits(root)
    return None, None


def _unlisted(
    splits: str | os.PathLike | GivenSplits | None,
    root: Path,
    files: list[Path],
    good: list[dict[str, Any]],
) -> str | None:
    """A note on what the splits did not name: a table's rows that name no file, or the files
    a data set's own split leaves out (in no split: never pretrained on)."""
    if isinstance(splits, GivenSplits):
        unsplit = sum(not row.get("split") for row in good)
        if not unsplit:
            return None
        return (
            f"note: {counted(unsplit, 'file')} under {root} not in the split of {splits.source}: "
            f"pretraining never reads {'it' if unsplit == 1 else 'them'}"
        )
    return unlisted_note(Path(splits), root, files) if splits is not None else None


def _outputs(out: Path, bad: str | os.PathLike | None) -> tuple[Path, Path]:
    """The manifest and the bad-files report (``<out stem>.bad.jsonl`` by default): two files."""
    bad_path = Path(bad) if bad is not None else out.with_name(f"{out.stem}.bad.jsonl")
    if os.path.abspath(out) == os.path.abspath(bad_path):
        raise MusicSSLError(f"{out}: the manifest and the bad-files report must differ")
    return out, bad_path


def _audio_files(root: Path) -> tuple[list[Path], list[tuple[Path, str]]]:
    """The audio files under ``root``, sorted, and what the walk could not enter, with why.

    Raises:
        MusicSSLError: there is nothing at all: no audio file and nothing unreadable.
    """
    walk_errors: list[tuple[Path, str]] = []
    files = sorted(find_audio(root, errors=walk_errors))
    if not files and not walk_errors:
        raise MusicSSLError(
            f"{root}: no audio files in it or below (looked for {' '.join(audio.AUDIO_EXTENSIONS)})"
        )
    return files, walk_errors


def _with_splits(
    files: list[Path],
    results: list[dict[str, Any]],
    bad_rows: list[dict[str, Any]],
    *,
    root: Path,
    group_of: Callable[[Path], str] | None,
    split_by: str | None,
    table: dict[str, str] | None,
    previous: dict[str, dict[str, Any]],
) -> tuple[list[dict[str, Any]], int]:
    """The rows of readable files, each with its split (a hash of its group, its row of the
    table, or the one it had: ``splits.carry_splits``, whose count comes second); the others
    are appended to ``bad_rows``, without a split.

    A file reached twice (through a link), or a copy of one (the same bytes), is kept once:
    two paths could put the same audio in two splits. The path kept is the one the previous
    manifest listed (runs may have trained on it under its split), or else the first.
    """
    first_path: dict[Path, str] = {}
    first_copy: dict[str, str] = {}
    listed_first = sorted(range(len(files)), key=lambda i: results[i].get("path") not in previous)
    for position in listed_first:
        row = results[position]
        if "reason" in row:
            continue
        real = files[position].resolve()
        if real in first_path:
            results[position] = {
                "path": row["path"],
                "reason": f"the same file as {first_path[real]}",
            }
        elif row["sha256"] in first_copy:
            why = f"a copy of {first_copy[row['sha256']]} (the same bytes)"
            results[position] = {"path": row["path"], "reason": why}
        else:
            first_path[real] = first_copy[row["sha256"]] = row["path"]
    good, groups = [], []
    for file, row in zip(files, results, strict=True):
        if "reason" in row:
            row.pop("split", None)
            bad_rows.append(row)
            continue
        row.pop("split_by", None)
        if group_of is not None:
            groups.append(group_of(file.relative_to(root)))
            row["split"], row["split_by"] = hash_split(groups[-1]), split_by
        elif table is not None:
            row.pop("split", None)
            found = lookup(table, file)
            if found is not None:
                row["split"] = found
        good.append(row)
    carried = carry_splits(good, previous, groups=groups if group_of else None, split_by=split_by)
    return good, carried


def _summarise(
    summary: IndexSummary, good: list[dict[str, Any]], bad_rows: list[dict[str, Any]]
) -> None:
    for row in bad_rows:
        kind = _reason_kind(row["reason"])
        summary.reasons[kind] = summary.reasons.get(kind, 0) + 1
    summary.kept, summary.skipped = len(good), len(bad_rows)
    summary.total_seconds = sum(row["duration"] for row in good)
    summary.splits = split_counts(good)


# Reasons that name another path, counted by kind in the summary (the report names each).
_KINDS_NAMING_A_PATH = {
    "a copy of ": "copies of another file",
    "the same file as ": "paths to a file listed under another",
    "a link to ": "links out of the folder",
}


def _reason_kind(reason: str) -> str:
    """The kind of a bad file's reason, as the summary counts it: "empty", "not audio", ..."""
    for start, kind in _KINDS_NAMING_A_PATH.items():
        if reason.startswith(start):
            return kind
    return reason.split(":")[0].split(" (")[0]


def find_audio(root: Path, *, errors: list[tuple[Path, str]] | None = None) -> Iterator[Path]:
    """Audio files under ``root`` by extension, skipping hidden files and folders.

    Links to folders are followed, each real folder once (a link loop ends there), except a
    link to a folder above ``root``, which would walk out of ``root`` into everything beside
    it. Such a link, and a folder that cannot be read, is appended to
    ``errors`` as ``(path, reason)`` when a list is given, and otherwise skipped.
    """
    seen: set[str] = set()
    top = os.path.realpath(root)

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
        for name in [n for n in subfolders if os.path.islink(os.path.join(folder, n))]:
            target = os.path.realpath(os.path.join(folder, name))
            if top.startswith(target.rstrip(os.sep) + os.sep):
                subfolders.remove(name)
                if errors is not None:
                    why = f"a link to {target}, which holds {root}: not followed out of it"
                    errors.append((Path(folder) / name, why))
        for name in names:
            if not name.startswith(".") and audio.is_audio_path(name):
                yield Path(folder) / name


def _existing_rows(path: Path, *, report: bool = False) -> list[dict[str, Any]]:
    """The rows of an output about to be rewritten: a manifest of ``data index``'s, or with
    ``report`` a bad-files report of its; refuses anything else (one for the other too)."""
    if not os.path.lexists(path):
        return []
    if path.is_dir():
        raise MusicSSLError(f"{path}: is a folder, not a manifest file")
    try:
        rows = read_manifest(path)
    except MusicSSLError:
        raise MusicSSLError(
            f"{path}: exists and is not a manifest; refusing to overwrite it (choose a new path)"
        ) from None
    # data index writes each file's size and time (or, in a bad-files report, a reason): a
    # manifest without them (the built-in corpus's, a table of labels) is someone else's.
    if any(not ({"bytes", "mtime"} <= row.keys() or "reason" in row) for row in rows):
        raise MusicSSLError(
            f"{path}: a manifest that data index did not write; refusing to overwrite it "
            "(choose a new path)"
        )
    wrong = [row for row in rows if ("reason" in row) != report]
    if wrong:
        held, wanted = (
            ("a manifest", "bad-files report") if report else ("a bad-files report", "manifest")
        )
        raise MusicSSLError(
            f"{path}: holds {held}; refusing to overwrite it with the {wanted} (choose a new path)"
        )
    return rows


def _same_file(a: str | os.PathLike, b: str | os.PathLike) -> bool:
    try:
        return os.path.samefile(a, b)
    except OSError:
        return False
