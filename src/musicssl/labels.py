"""Labels of your own in an index: the columns of a table carried into each file's row.

``musicssl data index FOLDER --labels TABLE`` reads a ``.csv``, ``.tsv`` or ``.jsonl`` table
with a ``path`` column and any others (``caption``, ``style``, ``artist``...); each file a
row names gains that row's other columns in the manifest, and so in the store packed from
it. The audio-text recipes learn from ``caption``; ``train.probe_every`` probes the column
``train.probe_label`` names. Paths are relative to the table's folder, or else to FOLDER;
an empty cell sets nothing.
"""

from __future__ import annotations

import csv
import json
from collections import Counter
from pathlib import Path
from typing import Any

from musicssl.errors import MusicSSLError
from musicssl.plural import counted
from musicssl.splits import lookup, real_path

# What the index writes itself: a table cannot set these.
RESERVED = frozenset(
    {"path", "abspath", "bytes", "mtime", "duration", "sr", "channels", "frames", "sha256",
     "samples_sha256", "split", "split_by", "reason"}
)  # fmt: skip


def read_labels(path: Path, root: Path, *, splits_too: bool = False) -> dict[str, dict[str, Any]]:
    """Real path of each listed file -> the labels of its row (its columns but ``path``).

    With ``splits_too`` the table is also the index's table of splits, whose ``split``
    column is read there and left out here.

    Raises:
        MusicSSLError: no such table, another format, no ``path`` column, a column the index
            writes itself, or a file listed twice (each naming the table and line).
    """
    if not path.is_file():
        raise MusicSSLError(f"{path}: no such labels table")
    rows = _rows(path)
    labels: dict[str, dict[str, Any]] = {}
    for number, row in rows:
        name = str(row.get("path") or "").strip()
        if not name:
            raise MusicSSLError(f"{path}:{number}: no path")
        own = {"path", "split"} if splits_too else {"path"}
        if taken := sorted(RESERVED & (row.keys() - own)):
            also = " (or give the table as --splits too)" if taken[0] == "split" else ""
            raise MusicSSLError(
                f"{path}: column {taken[0]!r} is one the index writes itself; rename it{also}"
            )
        values = {k: v for k, v in row.items() if k not in own and v not in (None, "")}
        for key in (real_path(path.resolve().parent / name), real_path(root / name)):
            if labels.setdefault(key, values) is not values:
                raise MusicSSLError(f"{path}:{number}: {name} is listed twice")
    return labels


def _rows(path: Path) -> list[tuple[int, dict[str, Any]]]:
    """(line, row) of each non-empty row of a CSV/TSV table or a JSON-lines file."""
    suffix = path.suffix.lower()
    try:
        if suffix in (".csv", ".tsv"):
            with open(path, encoding="utf-8-sig", newline="") as handle:
                reader = csv.DictReader(handle, delimiter="\t" if suffix == ".tsv" else ",")
                reader.fieldnames = [name.strip() for name in reader.fieldnames or []]
                if "path" not in reader.fieldnames:
                    raise MusicSSLError(f"{path}: needs a 'path' column in its header line")
                return [
                    (number, {k: (v or "").strip() for k, v in row.items() if k is not None})
                    for number, row in enumerate(reader, start=2)
                    if any((v or "").strip() for v in row.values() if isinstance(v, str))
                ]
        if suffix in (".jsonl", ".ndjson"):
            rows = []
            with open(path, encoding="utf-8-sig") as handle:
                for number, line in enumerate(handle, start=1):
                    if not line.strip():
                        continue
                    row = json.loads(line)
                    if not isinstance(row, dict):
                        raise MusicSSLError(f"{path}:{number}: expected a JSON object")
                    rows.append((number, row))
            return rows
    except UnicodeDecodeError:
        raise MusicSSLError(f"{path}: not a text table (not UTF-8)") from None
    except (csv.Error, json.JSONDecodeError) as error:
        raise MusicSSLError(f"{path}: not a readable table ({error})") from None
    raise MusicSSLError(f"{path}: a labels table is a .csv, .tsv or .jsonl file")


def apply_labels(
    files: list[Path], results: list[dict[str, Any]], table: dict[str, dict[str, Any]], path: Path
) -> str:
    """Give each readable file's row the labels of its row in ``table`` (they replace the
    ones it had); what was done, in a line."""
    columns: Counter[str] = Counter()
    labelled = readable = 0
    for file, row in zip(files, results, strict=True):
        if "reason" in row or not row:
            continue
        readable += 1
        for key in [key for key in row if key not in RESERVED]:
            del row[key]
        found = lookup(table, file)
        if found:
            row.update(found)
            labelled += 1
            columns.update(list(found))  # count each column once per file
    named = ", ".join(f"{name} ({count})" for name, count in columns.most_common())
    line = f"labels: {labelled} of {counted(readable, 'file')} from {path}"
    return line + (f": {named}" if named else "; no row of it names a file found here")
