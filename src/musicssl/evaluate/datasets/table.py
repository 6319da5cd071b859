"""A task from a user's CSV or JSONL table of audio paths and labels."""

from __future__ import annotations

import csv
import json
import math
import os
import sys
import unicodedata
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from musicssl.errors import MusicSSLError
from musicssl.evaluate.datasets._common import canonical_key, first_few, hash_split, relative_name
from musicssl.evaluate.task import PROBE_SPLITS, Example, Task
from musicssl.plural import counted

LABEL_COLUMNS: dict[str, tuple[str, ...]] = {
    # column -> kinds it can hold; the first is the one inferred (see table_task for "label")
    "label": ("multiclass", "regression"),
    "labels": ("multilabel",),
    "key": ("key", "multiclass"),
    "tempo": ("tempo", "regression"),
}
SPLIT_NAMES: dict[str, str] = {
    "train": "train",
    "training": "train",
    "valid": "valid",
    "validation": "valid",
    "val": "valid",
    "dev": "valid",
    "test": "test",
}


def _read_table(path: Path) -> tuple[list[str], list[tuple[int, dict[str, Any]]]]:
    """The columns and the (line number, row) pairs of a CSV or JSONL file."""
    try:
        return _read_text_table(path)
    except UnicodeDecodeError:
        raise MusicSSLError(f"{path}: not a text table (not UTF-8)") from None


def _read_text_table(path: Path) -> tuple[list[str], list[tuple[int, dict[str, Any]]]]:
    suffix = path.suffix.lower()
    rows: list[tuple[int, dict[str, Any]]] = []
    if suffix in (".csv", ".tsv"):
        with open(path, newline="", encoding="utf-8-sig") as stream:
            reader = csv.DictReader(stream, delimiter="\t" if suffix == ".tsv" else ",")
            columns = [column.strip() for column in reader.fieldnames or []]
            reader.fieldnames = columns
            for row in reader:
                if None in row:
                    raise MusicSSLError(f"{path}, line {reader.line_num}: more values than columns")
                if any((value or "").strip() for value in row.values()):
                    rows.append((reader.line_num, row))
        return columns, rows
    if suffix in (".jsonl", ".ndjson"):
        seen: dict[str, None] = {}
        with open(path, encoding="utf-8-sig") as stream:
            for line_num, line in enumerate(stream, start=1):
                if not line.strip():
                    continue
                try:
                    row = json.loads(line)
                except json.JSONDecodeError as error:
                    raise MusicSSLError(f"{path}, line {line_num}: not JSON ({error})") from None
                if not isinstance(row, dict):
                    raise MusicSSLError(f"{path}, line {line_num}: expected a JSON object")
                seen.update(dict.fromkeys(row))
                rows.append((line_num, row))
        return list(seen), rows
    raise MusicSSLError(f"{path}: unknown table format {suffix!r}; expected .csv, .tsv or .jsonl")


def _is_number(value: Any) -> bool:
    if isinstance(value, bool):
        return False
    if isinstance(value, (int, float)):
        return True
    try:
        float(str(value))
    except ValueError:
        return False
    return True


def _parse_target(value: Any, kind: str, where: str) -> Any:
    """One table cell as the target of a task of ``kind``; ``where`` names file and line."""
    if value is None or (isinstance(value, str) and not value.strip()):
        raise MusicSSLError(f"{where}: empty label")
    if kind == "multilabel":
        parts = value if isinstance(value, list) else str(value).split(";")
        labels = sorted({str(part).strip() for part in parts if str(part).strip()})
        if not labels:
            raise MusicSSLError(f"{where}: empty label")
        return tuple(labels)
    if kind in ("regression", "tempo"):
        if not _is_number(value):
            raise MusicSSLError(f"{where}: {value!r} is not a number")
        number = float(value)
        if not math.isfinite(number) or (kind == "tempo" and number <= 0):
            raise MusicSSLError(f"{where}: {value!r} is not a valid {kind} value")
        return number
    if isinstance(value, (list, dict)):
        raise MusicSSLError(f"{where}: expected one label, got {value!r}")
    text = str(value).strip()
    if kind == "key":
        try:
            return canonical_key(text)
        except MusicSSLError as error:
            raise MusicSSLError(f"{where}: {error}") from None
    return text


def _resolve(root: Path, value: Any, where: str) -> str:
    """A table's path cell as a name relative to ``root``."""
    if not isinstance(value, str) or not value.strip():
        raise MusicSSLError(f"{where}: empty path")
    given = Path(value.strip()).expanduser()
    full = Path(os.path.normpath(given if given.is_absolute() else root / given))
    try:
        name = relative_name(root, full)
    except ValueError:
        raise MusicSSLError(f"{where}: {value} is not under the root folder {root}") from None
    if not (root / name).exists():  # a table typed elsewhere may spell it in the other form
        found = (unicodedata.normalize(form, name) for form in ("NFC", "NFD"))
        name = next((other for other in found if (root / other).exists()), name)
    return name


def _note(message: str) -> None:
    """Say something the user should know about their table, one plain line on stderr."""
    print(f"note: {message}", file=sys.stderr, flush=True)


def _warn_one_split_classes(examples: Sequence[Example], kind: str, source: str) -> list[str]:
    """Warn about classes whose examples all fall in one split: a probe cannot be trained
    and tested on them."""
    if kind not in ("multiclass", "multilabel", "key"):
        return []
    splits_of: dict[str, set[str]] = {}
    for example in examples:
        labels = example.target if kind == "multilabel" else (example.target,)
        for label in labels:
            splits_of.setdefault(label, set()).add(example.split)
    messages = [
        f"{source}: class {label!r} has examples only in the {next(iter(splits))} split"
        for label, splits in sorted(splits_of.items())
        if len(splits) == 1
    ]
    for message in messages:
        _note(message)
    return messages


def table_task(
    path: str | Path,
    *,
    root: str | Path | None = None,
    name: str | None = None,
    kind: str | None = None,
) -> Task:
    """A task from a CSV or JSONL table of audio paths and labels.

    Columns (CSV header, or JSONL object keys; others are ignored):

    - ``path``: the audio file, relative to ``root`` (absolute paths are accepted when under
      ``root``). Every file must exist; each may appear once.
    - exactly one label column: ``label`` (one class per row: multiclass; when every value is
      a number: regression, unless ``kind="multiclass"``), ``labels`` (several classes: joined
      by ``;`` in a CSV, a list in JSONL: multilabel), ``key`` (e.g. ``"F# minor"``: key, see
      ``canonical_key``) or ``tempo`` (beats per minute: tempo).
    - ``split`` (optional): train, valid or test (also accepted: training, validation, val,
      dev). Without it, the rows are split 70/15/15 by a hash of the path; with a ``group``
      column, by a hash of the group, so that rows of one group (a piece, an artist, a session)
      always share a split. The split is not stratified by class.
    - ``group`` (optional): see above. With a ``split`` column, a group found in several splits
      is only warned about.

    A class whose rows all fall in one split is noted (a "note: ..." line on stderr), not
    refused; the notes are also kept in ``Task.extra["warnings"]``.

    Args:
        path: the table, ``.csv``, ``.tsv`` or ``.jsonl``.
        root: the folder audio paths are relative to; default: the table's folder.
        name: the task's name; default: the table's file name without its extension.
        kind: force a task kind the label column can hold: "multiclass" or "regression" for
            ``label``, "key" or "multiclass" for ``key``, "tempo" or "regression" for ``tempo``.

    Raises:
        MusicSSLError: naming the file and line: an unknown format, a missing ``path`` column,
            no or several label columns, an empty or invalid label, an unknown split name, a
            duplicate path, a path outside ``root``, a missing audio file, fewer than three
            rows (or groups) to split.
    """
    path = Path(path).expanduser().absolute()
    if not path.is_file():
        raise MusicSSLError(f"{path}: table not found")
    root = Path(os.path.normpath(Path(root).expanduser().absolute() if root else path.parent))
    columns, rows = _read_table(path)
    if not rows:
        raise MusicSSLError(f"{path}: no rows")
    if "path" not in columns:
        raise MusicSSLError(f"{path}: no 'path' column (columns: {', '.join(columns)})")
    column, kind = _label_column(path, columns, rows, kind)
    parsed = _parse_rows(path, root, columns, rows, column=column, kind=kind)
    examples, split_note, notes = _assign_splits(path, columns, parsed)

    if absent := [split for split in PROBE_SPLITS if split not in {e.split for e in examples}]:
        counts = Counter(e.split for e in examples)
        held = ", ".join(f"{split} {counts[split]}" for split in ("train", "valid", "test"))
        raise MusicSSLError(
            f"{path}: no rows in the {' or '.join(absent)} split (split: {split_note}; {held})"
        )
    notes += _warn_one_split_classes(examples, kind, str(path))
    classes: tuple[str, ...] = ()
    if kind in ("multiclass", "key"):
        classes = tuple(sorted({example.target for example in examples}))
    elif kind == "multilabel":
        classes = tuple(sorted({label for example in examples for label in example.target}))
    return Task(
        name=name or path.stem,
        kind=kind,
        root=root,
        examples=tuple(examples),
        classes=classes,
        description=f"{kind} task from {path.name} ({len(examples)} files; split: {split_note})",
        extra={
            "source": str(path),
            "label_column": column,
            "split_column": "split" in columns,
            "warnings": notes,
        },
    )


_Parsed = tuple[str, Any, str | None, str]  # name, target, split, group


def _label_column(
    path: Path, columns: list[str], rows: list[tuple[int, dict]], kind: str | None
) -> tuple[str, str]:
    """The table's one label column and the task kind it makes (``kind`` when given)."""
    label_columns = [column for column in LABEL_COLUMNS if column in columns]
    if len(label_columns) != 1:
        found = ", ".join(label_columns) or f"none; its columns: {', '.join(columns)}"
        raise MusicSSLError(
            f"{path}: needs exactly one label column of {', '.join(LABEL_COLUMNS)} (found: {found})"
        )
    column = label_columns[0]
    allowed = LABEL_COLUMNS[column]
    if kind is None:
        kind = allowed[0]
        if column == "label" and all(_is_number(row.get(column)) for _, row in rows):
            kind = "regression"
    elif kind not in allowed:
        raise MusicSSLError(f"{path}: a {column!r} column makes a {' or '.join(allowed)} task")
    return column, kind


def _parse_rows(
    path: Path,
    root: Path,
    columns: list[str],
    rows: list[tuple[int, dict]],
    *,
    column: str,
    kind: str,
) -> list[_Parsed]:
    """Each row's audio name, target, split (None without a split column) and group."""
    names: dict[str, int] = {}
    parsed: list[_Parsed] = []
    for line_num, row in rows:
        where = f"{path}, line {line_num}"
        item = _resolve(root, row.get("path"), where)
        if item in names:
            raise MusicSSLError(f"{where}: {item} already listed on line {names[item]}")
        names[item] = line_num
        target = _parse_target(row.get(column), kind, where)
        split = None
        if "split" in columns:
            given = str(row.get("split") or "").strip()
            split = SPLIT_NAMES.get(given.lower())
            if split is None:
                raise MusicSSLError(
                    f"{where}: unknown split {given!r}; expected train, valid or test"
                )
        group = str(row.get("group") or "").strip() or item
        parsed.append((item, target, split, group))
    missing = [(line, item) for item, line in names.items() if not (root / item).is_file()]
    if missing:
        shown = first_few([f"{item} (line {line})" for line, item in missing])
        files = counted(len(missing), "audio file")
        raise MusicSSLError(f"{path}: {files} not found under {root}: {shown}")
    return parsed


def _assign_splits(
    path: Path, columns: list[str], parsed: list[_Parsed]
) -> tuple[list[Example], str, list[str]]:
    """The examples with their splits (given, or hashed 70/15/15), how, and warnings."""
    notes: list[str] = []
    if "split" in columns:
        if "group" in columns:
            splits_of_group: dict[str, set[str]] = {}
            for _, _, split, group in parsed:
                splits_of_group.setdefault(group, set()).add(str(split))
            leaking = sorted(group for group, splits in splits_of_group.items() if len(splits) > 1)
            if leaking:
                notes.append(f"{path}: group(s) in several splits: {', '.join(leaking[:5])}")
                _note(notes[-1])
        examples = [Example(item, str(split), target) for item, target, split, _ in parsed]
        return examples, "split column", notes
    by = "group" if "group" in columns else "path"
    groups = [group for _, _, _, group in parsed]
    if len(set(groups)) < 3:
        raise MusicSSLError(f"{path}: no split column and fewer than three {by}s to split 70/15/15")
    assignment = hash_split(groups, valid=0.15, test=0.15)
    examples = [Example(item, assignment[group], target) for item, target, _, group in parsed]
    return examples, f"hash of the {by}, 70/15/15", notes
