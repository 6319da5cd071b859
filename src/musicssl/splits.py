"""Splits that travel with the data: from a table, a neighbouring manifest, or a stable hash.

A clip's split (``train``, ``valid`` or ``test``) decides what pretraining may see and what
evaluation scores; see ``musicssl.corpus`` for the order in which ``data index`` takes them.
"""

from __future__ import annotations

import csv
import hashlib
import os
import unicodedata
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from musicssl.errors import MusicSSLError
from musicssl.manifest import read_manifest
from musicssl.plural import counted

SPLIT_SHARES = (("train", 0.8), ("valid", 0.1), ("test", 0.1))


@dataclass(frozen=True)
class GivenSplits:
    """Each file's split as the caller gives it (a standard data set's own protocol, read
    by its loader), rather than read from a table.

    Attributes:
        source: how messages name it, e.g. ``gtzan=/data/gtzan``.
        split_of: each file's path -> its split.
    """

    source: str
    split_of: Mapping[str, str]

    def __str__(self) -> str:
        return self.source

    def table(self) -> dict[str, str]:
        """``real_path`` of each file -> its split, as ``read_splits`` gives a table's."""
        return {real_path(path): split for path, split in self.split_of.items()}


_SPLIT_ALIASES = {"val": "valid", "validation": "valid", "dev": "valid", "training": "train"}
_NEIGHBOUR_MANIFEST = "manifest.jsonl"
Found = TypeVar("Found")


def hash_split(group: str) -> str:
    """The split of a group by a stable hash of its name: 80% train, 10% valid, 10% test."""
    digest = hashlib.sha256(group.encode("utf-8")).digest()
    position = int.from_bytes(digest[:8], "big") / 2.0**64
    for name, share in SPLIT_SHARES:
        position -= share
        if position < 0:
            return name
    return SPLIT_SHARES[-1][0]


def grouping(split_by: str) -> Any:
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


def no_separator_note(files: Iterable[Path], separator: str) -> str | None:
    """A note when some file names lack ``separator``: each is then a group of its own."""
    alone = [file for file in files if separator not in file.stem]
    if not alone:
        return None
    return (
        f"note: {counted(len(alone), 'file name')} without {separator!r} (e.g. {alone[0].name}) "
        "each form a group of their own, split apart from any related file"
    )


# Folder names that say a split, as data sets lay their audio out.
SPLIT_FOLDERS = frozenset({"train", "training", "valid", "validation", "val", "dev", "test"})


def split_folders_note(files: Iterable[Path], root: Path, split_by: str) -> str | None:
    """A note when ``root``'s folders are named as splits (``train/``, ``test/``): a hash
    split does not read their names, which a user laying audio out so may expect."""
    tops = {Path(os.path.relpath(file, root)).parts[0] for file in files}
    named = sorted(top for top in tops if top.lower() in SPLIT_FOLDERS)
    if not named:
        return None
    return (
        f"note: folders named {', '.join(named)} are not read as splits: --split-by {split_by} "
        "hashes each group to a split whatever its name; to keep them, give each file its split "
        "in a --splits table (a .csv with path and split columns)"
    )


def real_path(path: str | os.PathLike) -> str:
    """A file's real path, in Unicode's composed form: a table typed on one system names
    "Café" as the file system of another (macOS: decomposed) spells it."""
    return unicodedata.normalize("NFC", os.path.realpath(path))


def _as_named(file: Path) -> str:
    """``real_path`` of a link by its own name, in its folder's real path."""
    return real_path(file.parent) + os.sep + unicodedata.normalize("NFC", file.name)


def read_splits(path: Path, root: Path) -> dict[str, str]:
    """Real path of each listed file -> its split, from a manifest or a table."""
    entries = _entries(path)
    # Paths are relative to the table's folder, or else to the indexed folder.
    table: dict[str, str] = {}
    for number, name, split in entries:
        split = _split_name(split, f"{path}:{number}")
        key = real_path(path.resolve().parent / name)
        if table.setdefault(key, split) != split:
            raise MusicSSLError(
                f"{path}:{number}: {name} is listed in splits {table[key]!r} and {split!r}"
            )
    for number, name, split in entries:
        table.setdefault(real_path(root / name), _split_name(split, f"{path}:{number}"))
    return table


def unlisted_note(path: Path, root: Path, files: Iterable[Path]) -> str | None:
    """A note naming the rows of the splits table at ``path`` that name none of ``files``
    (the files found under ``root``): a path written from another folder, a file not there."""
    found: set[str] = set()
    for file in files:
        found.update((real_path(file), _as_named(file)))
    beside = path.resolve().parent
    missing = [
        name
        for _, name, _ in _entries(path)
        if real_path(beside / name) not in found and real_path(root / name) not in found
    ]
    if not missing:
        return None
    shown = ", ".join(missing[:3]) + (", ..." if len(missing) > 3 else "")
    return (
        f"note: {counted(len(missing), 'row')} of {path} name"
        f"{'' if len(missing) != 1 else 's'} no file found under {root}: {shown} (a row's path "
        f"is relative to the table's folder or to {root})"
    )


def split_notes(
    counts: dict[str, int],
    *,
    source: str | None,
    out: Path,
    split_by: str | None,
    from_table: bool,
    unlisted: str | None,
    carried: int,
    files: Iterable[Path] = (),
    root: Path | None = None,
) -> tuple[str | None, list[str]]:
    """Where an index's splits came from (``source``, the table's, unless a hash or the
    previous manifest at ``out`` gave them), and what to say of them: an empty split, table
    rows that name no file (``unlisted``), files that kept the split they had (``carried``),
    ``files`` whose names lack the separator of ``prefix:SEP``, folders of ``root`` named as
    splits that a hash does not read."""
    if split_by is not None:
        source = f"a hash of each file's {split_by} group"
    elif not from_table and counts.keys() - {""}:
        source = f"the previous {out}"
    notes = [empty_splits_note(counts, split_by=split_by, source=source), unlisted]
    if split_by is not None and split_by.startswith("prefix:"):
        notes.append(no_separator_note(files, split_by.removeprefix("prefix:")))
    if split_by is not None and root is not None:
        notes.append(split_folders_note(files, root, split_by))
    if carried:
        notes.append(f"{counted(carried, 'file')} renamed, moved or added since the last "
                     "index kept the split of their audio or their group")  # fmt: skip
    return source, [note for note in notes if note]


def empty_splits_note(
    counts: dict[str, int], *, split_by: str | None, source: str | None
) -> str | None:
    """A note naming the splits that got no file, when some did: why, and what to do."""
    empty = [name for name, _ in SPLIT_SHARES if not counts.get(name)]
    if not 0 < len(empty) < 3:  # split into three parts, or not split at all
        return None
    if split_by == "file":
        return (
            f"note: no file in {' or '.join(empty)}: a hash gives 80/10/10 only on average, and "
            "these files are too few; give each file its split in a table (--splits TABLE)"
        )
    if split_by is not None:
        return (
            f"note: no file in {' or '.join(empty)}: too few groups to give each split some (a "
            "folder per group with --split-by parent; --split-by file splits file by file)"
        )
    return f"note: no file in {' or '.join(empty)}: {source} puts none of the files found there"


def _entries(path: Path) -> list[tuple[int, str, str]]:
    """(line, path as listed, split) of each row of a splits table or manifest with a split."""
    if not path.is_file():
        raise MusicSSLError(f"{path}: no such splits file")
    if path.suffix.lower() in (".csv", ".tsv"):
        return _read_table(path)
    entries = []
    for number, row in enumerate(read_manifest(path), start=1):
        if row.get("split") not in (None, ""):
            entries.append((number, row["path"], row["split"]))
    if not entries:
        raise MusicSSLError(f"{path}: no row has a 'split' to carry")
    return entries


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
    name = _SPLIT_ALIASES.get(name, name)
    if name not in ("train", "valid", "test"):
        # A typo would take its clips out of every split that training and probes read.
        raise MusicSSLError(f"{where}: split {value!r} is not train, valid or test")
    return name


def neighbour_splits(root: Path) -> tuple[dict[str, str] | None, str | None]:
    """Splits of the manifest beside ``root`` (the built-in corpus's layout), when it has any."""
    beside = root.resolve().parent / _NEIGHBOUR_MANIFEST
    if not beside.is_file():
        return None, None
    try:
        rows = read_manifest(beside)
    except MusicSSLError:
        return None, None
    inside = real_path(root) + os.sep
    table: dict[str, str] = {}
    for row in rows:
        if isinstance(row.get("split"), str) and row["split"].strip():
            split, file = _split_name(row["split"], str(beside)), Path(row["abspath"])
            # Keyed as ``lookup`` reads: a copy of the corpus made of links reaches the
            # files elsewhere, and its rows name them inside ``root``.
            table[real_path(file)] = table[_as_named(file)] = split
    if not any(key.startswith(inside) for key in table):
        return None, None
    return table, str(beside)


def carry_splits(
    good: list[dict[str, Any]],
    previous: dict[str, dict[str, Any]],
    *,
    groups: list[str] | None,
    split_by: str | None,
) -> int:
    """Splits travel with the audio when a folder is indexed again into one manifest.

    A file renamed or moved since (its bytes listed under a path that is gone) keeps its
    split, unless a table gives it one. With a hash split of the kind the last index used
    (``split_by``, kept in each row), a listed file keeps its split too, and a new file joins
    the split most listed files of its ``group`` have: a renamed or grown folder stays in one
    split. Under another kind, listed files take the new hash (and ``refuse_moved_splits``
    refuses a move). Returns how many new paths took a split from before.
    """
    by_content = {row["sha256"]: row for row in previous.values() if row.get("sha256")}
    known: list[str | None] = []
    for row in good:
        listed = previous.get(row["path"])
        old = listed or by_content.get(row.get("sha256", ""))
        renamed = listed is None and old is not None and (split_by or not row.get("split"))
        same_kind = split_by is not None and old is not None and old.get("split_by") == split_by
        known.append(old.get("split") if old is not None and (renamed or same_kind) else None)
    shares: dict[str, Counter[str]] = {}
    for group, split in zip(groups or [], known, strict=False):
        if split:
            shares.setdefault(group, Counter())[split] += 1
    carried = 0
    for position, row in enumerate(good):
        chosen = known[position]
        if chosen is None and groups is not None and groups[position] in shares:
            chosen = shares[groups[position]].most_common(1)[0][0]
        if chosen:
            carried += row["path"] not in previous and chosen != row.get("split")
            row["split"] = chosen
    return carried


def refuse_moved_splits(
    out: Path, good: list[dict[str, Any]], previous: dict[str, dict[str, Any]]
) -> None:
    """Refuse to move a file from one split to another than the manifest at ``out`` gave it,
    under its path or, renamed, under its bytes: a run pretrained on the old train split would
    be evaluated on its own training audio. Taking its split away is refused too: a later
    index could then give it any split, and the move would be made in two steps."""
    by_content = {row["sha256"]: row for row in previous.values() if row.get("sha256")}
    moved = []
    for row in good:
        old = previous.get(row["path"]) or by_content.get(row.get("sha256", "")) or {}
        if old.get("split") and row.get("split") != old["split"]:
            moved.append((row["path"], old["split"], row.get("split") or "no split"))
    if moved:
        path, old, new = moved[0]
        raise MusicSSLError(
            f"{out}: these splits would move {counted(len(moved), 'file')} "
            f"out of the split this manifest gave them (e.g. {path}: {old} -> {new}), and runs "
            "pretrained on the old train split could be evaluated on their training audio; "
            "write the new index to another --out"
        )


def lookup(table: Mapping[str, Found], file: Path) -> Found | None:
    """``file``'s entry in a table keyed by ``real_path`` (or a link's own name), or None."""
    found = table.get(real_path(file))
    if found is None:
        found = table.get(_as_named(file))
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
