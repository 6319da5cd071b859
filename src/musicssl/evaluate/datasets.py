"""Tasks from a table of labelled audio, and from the local copies of common MIR data sets.

``table_task`` turns a user's CSV or JSONL (path + label(s), optional split) into a ``Task``.
The loaders (``gtzan``, ``magnatagatune``, ``nsynth``, ``giantsteps_key``, ``mtg_jamendo``) read a
data set's layout as it is distributed and build the task the literature evaluates on it. None
of them decodes audio: they check that every file they name exists, and leave unreadable files
to the evaluation, which skips them. Example names are POSIX paths relative to ``Task.root``.

Splits that are not given by the data set are deterministic: items (or groups of items) are
ordered by a SHA-1 hash of their name and cut at fixed proportions, so the same files always
give the same split, whatever the row order or the machine.

Missing audio is an error for loaders driven by annotations (a silently smaller test set would
make scores incomparable), with one exception: a clip named by GTZAN's fault-filtered lists but
absent from the folder is dropped and reported in ``Task.extra["dropped"]``, because deleting
the unreadable ``jazz.00054.wav`` is common practice.
"""

from __future__ import annotations

import csv
import hashlib
import json
import math
import os
import re
import warnings
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

import mir_eval.key

from musicssl.errors import MusicSSLError
from musicssl.evaluate.task import PROBE_SPLITS, Example, Task

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
# One spelling per pitch class, so enharmonic annotations ("D# minor", "Eb minor") fall into
# one of the 24 key classes.
KEY_TONICS = ("C", "C#", "D", "Eb", "E", "F", "F#", "G", "Ab", "A", "Bb", "B")

GTZAN_GENRES = (
    "blues",
    "classical",
    "country",
    "disco",
    "hiphop",
    "jazz",
    "metal",
    "pop",
    "reggae",
    "rock",
)
MTT_SPLIT_FOLDERS = {"train": "0123456789ab", "valid": "c", "test": "def"}
NSYNTH_FOLDERS = {"train": "nsynth-train", "valid": "nsynth-valid", "test": "nsynth-test"}
NSYNTH_PITCH_RANGE = (21, 108)  # the 88 piano keys, as HEAR's nsynth_pitch task
MTG_SUBSETS = ("top50tags", "genre", "instrument", "moodtheme", "all")
MTG_COLUMNS = ("TRACK_ID", "ARTIST_ID", "ALBUM_ID", "PATH", "DURATION", "TAGS")


# --------------------------------------------------------------------------------------------
# shared helpers


def canonical_key(text: str) -> str:
    """A key annotation as one of the 24 key classes, in ``mir_eval.key`` format.

    The tonic is case-insensitive and respelled with ``KEY_TONICS`` (``"d# minor"`` and
    ``"Eb minor"`` both give ``"Eb minor"``); the mode must be major or minor.

    Raises:
        MusicSSLError: the text is not "<tonic> <major|minor>" (``mir_eval.key.validate_key``
            decides what a tonic is; "X" and the mode "other" are not one of the 24 classes).
    """
    words = text.split()
    if len(words) != 2:
        raise MusicSSLError(f"key {text!r} is not of the form '<tonic> <major|minor>'")
    tonic, mode = words[0].capitalize(), words[1].lower()
    try:
        mir_eval.key.validate_key(f"{tonic} {mode}")
    except ValueError as error:
        raise MusicSSLError(f"key {text!r}: {error}") from None
    semitone, mode = mir_eval.key.split_key_string(f"{tonic} {mode}")
    if semitone is None or mode not in ("major", "minor"):
        raise MusicSSLError(f"key {text!r}: not one of the 24 major and minor keys")
    return f"{KEY_TONICS[semitone]} {mode}"


def _hash_order(keys: Iterable[str]) -> list[str]:
    """Distinct keys ordered by the SHA-1 of their text: a shuffle that never changes."""
    return sorted(set(keys), key=lambda key: (hashlib.sha1(key.encode()).hexdigest(), key))


def _round_half_up(value: float) -> int:
    return int(math.floor(value + 0.5))


def _hash_split(keys: Iterable[str], *, valid: float, test: float) -> dict[str, str]:
    """Assign each distinct key to train, valid or test in proportions ``1 - valid - test``,
    ``valid``, ``test`` of the key count (rounded half up).

    A split with a positive proportion gets at least one key when there are three keys or
    more (two or more for a two-way split); fewer keys all go to train.
    """
    ordered = _hash_order(keys)
    count = len(ordered)
    needed = 1 + (valid > 0) + (test > 0)
    num_valid = max(1, _round_half_up(count * valid)) if valid > 0 and count >= needed else 0
    num_test = max(1, _round_half_up(count * test)) if test > 0 and count >= needed else 0
    num_train = count - num_valid - num_test
    splits = ["train"] * num_train + ["valid"] * num_valid + ["test"] * num_test
    return dict(zip(ordered, splits))


def _shown(items: Sequence[str]) -> str:
    """The first few items of a list for an error message."""
    return ", ".join(items[:5]) + (" …" if len(items) > 5 else "")


def _relative(root: Path, path: Path) -> str:
    return path.relative_to(root).as_posix()


def _check_files(root: Path, names: Sequence[str], *, source: str) -> None:
    """Raise when any ``root / name`` is not a file, naming how many and the first few."""
    missing = [name for name in names if not (root / name).is_file()]
    if missing:
        raise MusicSSLError(
            f"{source}: {len(missing)} of the {len(names)} audio files it lists are missing "
            f"under {root}: {_shown(missing)}"
        )


def _need(path: Path, layout: str) -> Path:
    """``path`` when it exists; else an error naming it and the layout expected."""
    if not path.exists():
        raise MusicSSLError(f"{path}: not found; expected {layout}")
    return path


# --------------------------------------------------------------------------------------------
# a user's table


def _read_table(path: Path) -> tuple[list[str], list[tuple[int, dict[str, Any]]]]:
    """The columns and the (line number, row) pairs of a CSV or JSONL file."""
    suffix = path.suffix.lower()
    rows: list[tuple[int, dict[str, Any]]] = []
    if suffix == ".csv":
        with open(path, newline="", encoding="utf-8-sig") as stream:
            reader = csv.DictReader(stream)
            columns = [column.strip() for column in reader.fieldnames or []]
            reader.fieldnames = columns
            for row in reader:
                if None in row:
                    raise MusicSSLError(f"{path}, line {reader.line_num}: more values than columns")
                if any((value or "").strip() for value in row.values()):
                    rows.append((reader.line_num, row))
        return columns, rows
    if suffix in (".jsonl", ".ndjson"):
        columns: dict[str, None] = {}
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
                columns.update(dict.fromkeys(row))
                rows.append((line_num, row))
        return list(columns), rows
    raise MusicSSLError(f"{path}: unknown table format {suffix!r}; expected .csv or .jsonl")


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
        return _relative(root, full)
    except ValueError:
        raise MusicSSLError(f"{where}: {value} is not under the root folder {root}") from None


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
        warnings.warn(message, stacklevel=3)
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

    A class whose rows all fall in one split is warned about (``UserWarning``), not refused;
    the warnings are also kept in ``Task.extra["warnings"]``.

    Args:
        path: the table, ``.csv`` or ``.jsonl``.
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
    label_columns = [column for column in LABEL_COLUMNS if column in columns]
    if len(label_columns) != 1:
        found = ", ".join(label_columns) or "none"
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

    names: dict[str, int] = {}
    parsed: list[tuple[str, Any, str | None, str]] = []  # name, target, split, group
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
        shown = _shown([f"{item} (line {line})" for line, item in missing])
        raise MusicSSLError(f"{path}: {len(missing)} audio file(s) not found under {root}: {shown}")

    notes: list[str] = []
    if "split" in columns:
        split_note = "split column"
        if "group" in columns:
            splits_of_group: dict[str, set[str]] = {}
            for _, _, split, group in parsed:
                splits_of_group.setdefault(group, set()).add(str(split))
            leaking = sorted(group for group, splits in splits_of_group.items() if len(splits) > 1)
            if leaking:
                notes.append(f"{path}: group(s) in several splits: {', '.join(leaking[:5])}")
                warnings.warn(notes[-1], stacklevel=2)
        examples = [Example(item, str(split), target) for item, target, split, _ in parsed]
    else:
        by = "group" if "group" in columns else "path"
        groups = [group for _, _, _, group in parsed]
        if len(set(groups)) < 3:
            raise MusicSSLError(
                f"{path}: no split column and fewer than three {by}s to split 70/15/15"
            )
        assignment = _hash_split(groups, valid=0.15, test=0.15)
        split_note = f"hash of the {by}, 70/15/15"
        examples = [Example(item, assignment[group], target) for item, target, _, group in parsed]

    if absent := [split for split in PROBE_SPLITS if split not in {e.split for e in examples}]:
        raise MusicSSLError(f"{path}: no rows in the {' or '.join(absent)} split")
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
        extra={"source": str(path), "label_column": column, "warnings": notes},
    )


# --------------------------------------------------------------------------------------------
# GTZAN


def _gtzan_audio_folder(root: Path) -> Path:
    for folder in (root / "genres_original", root / "genres", root):
        if all((folder / genre).is_dir() for genre in GTZAN_GENRES):
            return folder
    missing = [genre for genre in GTZAN_GENRES if not (root / "genres_original" / genre).is_dir()]
    raise MusicSSLError(
        f"{root}: no GTZAN genre folders; expected genres_original/<genre>/<genre>.000NN.wav "
        f"(or genres/<genre>/... or <genre>/... directly) for the genres "
        f"{', '.join(GTZAN_GENRES)} (missing under genres_original: {', '.join(missing)})"
    )


def _read_gtzan_list(path: Path) -> list[str]:
    """Clip ids (``"blues.00029"``) of a split list whose lines name one clip each, such as
    ``blues/blues.00029.wav`` (anything after the first whitespace is ignored)."""
    clips = []
    for line_num, line in enumerate(path.read_text().splitlines(), start=1):
        if not line.strip():
            continue
        found = re.search(r"([a-z]+\.\d{5})", line.split()[0])
        if found is None:
            raise MusicSSLError(f"{path}, line {line_num}: no clip name like blues.00029")
        clips.append(found.group(1))
    return clips


def gtzan(root: str | Path) -> Task:
    """GTZAN genre recognition: 10 genres, multiclass (Tzanetakis and Cook, 2002).

    Layout: ``root/genres_original/<genre>/<genre>.000NN.wav`` as commonly distributed
    (``root/genres/<genre>/*.au``, the original archive, and ``root/<genre>/...`` are also
    accepted). Files not named ``<genre>.NNNNN.wav|au`` are ignored.

    Split: when ``root`` holds ``train_filtered.txt``, ``valid_filtered.txt`` and
    ``test_filtered.txt`` (the fault-filtered split of Kereliuk et al., 2015, as distributed by
    Lee et al., 2017: one clip per line, e.g. ``blues/blues.00029.wav``), those 443/197/290
    clips; listed clips absent from the folder are dropped and listed in
    ``Task.extra["dropped"]``. Otherwise a stratified 80/10/10 split of every clip by a hash of
    its name. GTZAN repeats artists and even recordings across clips, and a random split puts
    them on both sides: its scores are optimistic and not comparable with the filtered split.

    Raises:
        MusicSSLError: no genre folders, only some of the three list files, a malformed list,
            a clip in two lists.
    """
    root = Path(root).expanduser().absolute()
    audio = _gtzan_audio_folder(root)
    clips: dict[str, tuple[str, str]] = {}  # clip id -> (name, genre)
    for genre in GTZAN_GENRES:
        pattern = re.compile(rf"({re.escape(genre)}\.\d{{5}})\.(wav|au)$")
        for entry in sorted(os.scandir(audio / genre), key=lambda entry: entry.name):
            found = pattern.match(entry.name)
            if found and entry.is_file():
                clips[found.group(1)] = (_relative(root, Path(entry.path)), genre)
    if not clips:
        raise MusicSSLError(f"{audio}: the genre folders hold no <genre>.NNNNN.wav files")

    lists = {split: root / f"{split}_filtered.txt" for split in ("train", "valid", "test")}
    present = [split for split, list_path in lists.items() if list_path.is_file()]
    dropped: list[str] = []
    if present:
        if len(present) < 3:
            absent = [str(lists[split]) for split in lists if split not in present]
            raise MusicSSLError(
                f"{root}: found {', '.join(f'{s}_filtered.txt' for s in present)} but not "
                f"{', '.join(absent)}; the filtered split needs all three lists"
            )
        split_of: dict[str, str] = {}
        for split, list_path in lists.items():
            for clip in _read_gtzan_list(list_path):
                if clip in split_of:
                    raise MusicSSLError(f"{list_path}: {clip} is also in the {split_of[clip]} list")
                split_of[clip] = split
        dropped = [f"{clip}: listed but not found" for clip in split_of if clip not in clips]
        examples = [
            Example(clips[clip][0], split, clips[clip][1])
            for clip, split in split_of.items()
            if clip in clips
        ]
        description = "GTZAN genre, fault-filtered split (Kereliuk et al., 2015)"
    else:
        split_of = {}
        for genre in GTZAN_GENRES:
            names = [clip for clip, (_, clip_genre) in clips.items() if clip_genre == genre]
            split_of.update(_hash_split(names, valid=0.1, test=0.1))
        examples = [Example(name, split_of[clip], genre) for clip, (name, genre) in clips.items()]
        description = (
            "GTZAN genre, random stratified 80/10/10 split (optimistic: artists repeat across "
            "splits)"
        )
    return Task(
        name="gtzan_genre",
        kind="multiclass",
        root=root,
        examples=tuple(examples),
        classes=tuple(sorted({example.target for example in examples})),
        description=description,
        extra={"dropped": dropped, "split": "filtered" if present else "random"},
    )


# --------------------------------------------------------------------------------------------
# MagnaTagATune


def magnatagatune(root: str | Path) -> Task:
    """MagnaTagATune auto-tagging over its 50 most frequent tags, multilabel (Law et al., 2009).

    Layout: ``root/annotations_final.csv`` (tab-separated, quoted: ``clip_id``, the 188 tag
    columns of 0/1, ``mp3_path``) and the clips at ``root/<mp3_path>`` or
    ``root/mp3/<mp3_path>`` (``<hex digit>/<name>.mp3``, as ``mp3.zip`` unpacks).

    Tags: the 50 tag columns with the most positive clips over the whole file (ties broken by
    column order), kept as spelled (synonyms such as "female" and "woman" are not merged, as
    in the usual benchmark). Split: by the clip's folder, 0-b train, c valid, d-f test
    (Dieleman and Schrauwen, 2014). Clips with none of the 50 tags are dropped, as in the
    split most papers use (Lee et al., 2017; musicnn, CLMR); their count is
    ``Task.extra["dropped_no_tag"]``. Clips shorter than 29.1 s, which that split also drops,
    are not: finding them means decoding.

    Raises:
        MusicSSLError: a missing annotation file, a malformed row (named by line), a missing
            audio file.
    """
    root = Path(root).expanduser().absolute()
    table = _need(
        root / "annotations_final.csv",
        "annotations_final.csv beside the mp3 folders 0-f of MagnaTagATune",
    )
    audio = root / "mp3" if (root / "mp3").is_dir() else root
    with open(table, newline="", encoding="utf-8-sig") as stream:
        rows = list(csv.reader(stream, delimiter="\t"))  # fields are quoted
    if not rows or len(rows[0]) < 3 or rows[0][0] != "clip_id" or rows[0][-1] != "mp3_path":
        raise MusicSSLError(f"{table}: expected a tab-separated header clip_id, <tags>, mp3_path")
    tags = rows[0][1:-1]
    flags: list[tuple[str, list[bool]]] = []
    for line_num, row in enumerate(rows[1:], start=2):
        if not any(row):
            continue
        if len(row) != len(rows[0]) or any(value not in ("0", "1") for value in row[1:-1]):
            raise MusicSSLError(
                f"{table}, line {line_num}: expected {len(rows[0])} fields, tags 0/1"
            )
        folder = row[-1].split("/")[0]
        if len(folder) != 1 or folder not in "0123456789abcdef":
            raise MusicSSLError(f"{table}, line {line_num}: mp3_path {row[-1]!r} is not in 0-f/")
        flags.append((row[-1], [value == "1" for value in row[1:-1]]))
    counts = [sum(values[index] for _, values in flags) for index in range(len(tags))]
    top = sorted(sorted(range(len(tags)), key=lambda index: (-counts[index], index))[:50])

    split_of_folder = {
        folder: split for split, folders in MTT_SPLIT_FOLDERS.items() for folder in folders
    }
    examples = []
    dropped = 0
    for mp3_path, values in flags:
        labels = tuple(sorted(tags[index] for index in top if values[index]))
        if not labels:
            dropped += 1
            continue
        examples.append(Example(mp3_path, split_of_folder[mp3_path[0]], labels))
    _check_files(audio, [example.name for example in examples], source=str(table))
    return Task(
        name="magnatagatune",
        kind="multilabel",
        root=audio,
        examples=tuple(examples),
        classes=tuple(sorted(tags[index] for index in top)),
        description="MagnaTagATune top-50 tags, split by folder (0-b / c / d-f)",
        extra={"dropped_no_tag": dropped},
    )


# --------------------------------------------------------------------------------------------
# NSynth


def _read_nsynth(root: Path, folder: str) -> list[dict[str, Any]]:
    """The notes of one NSynth split folder, each with its audio name checked."""
    examples_json = _need(
        root / folder / "examples.json", f"{folder}/examples.json and {folder}/audio/*.wav"
    )
    try:
        with open(examples_json, encoding="utf-8") as stream:
            notes = json.load(stream)
    except json.JSONDecodeError as error:
        raise MusicSSLError(f"{examples_json}: not JSON ({error})") from None
    if not isinstance(notes, dict):
        raise MusicSSLError(f"{examples_json}: expected an object of notes keyed by note_str")
    audio = root / folder / "audio"
    on_disk = {entry.name for entry in os.scandir(audio)} if audio.is_dir() else set()
    rows = []
    for note_str, note in notes.items():
        try:
            row = {
                "name": f"{folder}/audio/{note_str}.wav",
                "family": str(note["instrument_family_str"]),
                "pitch": int(note["pitch"]),
                "instrument": str(note["instrument_str"]),
                "exists": f"{note_str}.wav" in on_disk,
            }
        except (KeyError, TypeError, ValueError) as error:
            raise MusicSSLError(
                f"{examples_json}: note {note_str!r} lacks a field: {error}"
            ) from None
        rows.append(row)
    missing = [row["name"] for row in rows if not row["exists"]]
    if missing:
        raise MusicSSLError(
            f"{examples_json}: {len(missing)} of its {len(rows)} notes have no audio file: "
            + _shown(missing)
        )
    return rows


def nsynth(root: str | Path, *, max_train: int | None = None) -> list[Task]:
    """NSynth instrument family (11 classes) and pitch, two multiclass tasks (Engel et al., 2017).

    Layout: ``root/nsynth-{train,valid,test}/examples.json`` and ``.../audio/<note_str>.wav``,
    as the json/wav archives unpack. The official splits are used; when ``nsynth-train`` is
    absent (it is 22 GB) but the other two are present, ``nsynth-valid`` is split 80/20 into
    train and valid by a hash of the instrument, so no instrument is in both.

    The pitch task follows HEAR's ``nsynth_pitch``: classes are the MIDI pitches 21-108 (the
    88 piano keys), written ``"021"``...``"108"`` so they sort in pitch order; notes outside
    that range are left out of the pitch task only (``Task.extra["dropped"]`` counts them).

    Args:
        root: the folder holding the ``nsynth-*`` folders.
        max_train: keep at most this many train notes, chosen by a hash of their names (the
            same notes for both tasks). HEAR's ``nsynth_pitch_5h`` trains on five hours of
            audio, 4,500 notes.

    Raises:
        MusicSSLError: valid or test missing, a malformed ``examples.json``, missing audio.
    """
    root = Path(root).expanduser().absolute()
    present = {split: (root / folder).is_dir() for split, folder in NSYNTH_FOLDERS.items()}
    if not (present["valid"] and present["test"]):
        absent = [
            f"{root / NSYNTH_FOLDERS[split]}" for split in ("valid", "test") if not present[split]
        ]
        raise MusicSSLError(
            f"{', '.join(absent)}: not found; expected nsynth-valid/ and nsynth-test/ (and "
            "optionally nsynth-train/), each with examples.json and audio/<note_str>.wav"
        )
    notes: list[tuple[dict[str, Any], str]] = []
    if present["train"]:
        for split, folder in NSYNTH_FOLDERS.items():
            notes += [(row, split) for row in _read_nsynth(root, folder)]
        split_note = "official splits"
    else:
        valid_rows = _read_nsynth(root, NSYNTH_FOLDERS["valid"])
        by_instrument = _hash_split([row["instrument"] for row in valid_rows], valid=0.2, test=0)
        notes += [(row, by_instrument[row["instrument"]]) for row in valid_rows]
        notes += [(row, "test") for row in _read_nsynth(root, NSYNTH_FOLDERS["test"])]
        split_note = "no nsynth-train: nsynth-valid split 80/20 by instrument; official test"
    if max_train is not None:
        train_names = _hash_order(row["name"] for row, split in notes if split == "train")
        kept = set(train_names[:max_train])
        notes = [(row, split) for row, split in notes if split != "train" or row["name"] in kept]

    family = [Example(row["name"], split, row["family"]) for row, split in notes]
    low, high = NSYNTH_PITCH_RANGE
    pitch = [
        Example(row["name"], split, f"{row['pitch']:03d}")
        for row, split in notes
        if low <= row["pitch"] <= high
    ]
    return [
        Task(
            name="nsynth_instrument",
            kind="multiclass",
            root=root,
            examples=tuple(family),
            classes=tuple(sorted({example.target for example in family})),
            description=f"NSynth instrument family ({split_note})",
            extra={"split": split_note},
        ),
        Task(
            name="nsynth_pitch",
            kind="multiclass",
            root=root,
            examples=tuple(pitch),
            classes=tuple(sorted({example.target for example in pitch})),
            description=f"NSynth pitch, MIDI {low}-{high} ({split_note})",
            extra={"split": split_note, "dropped": len(family) - len(pitch)},
        ),
    ]


# --------------------------------------------------------------------------------------------
# GiantSteps key


def _find_audio(folder: Path, stem: str) -> Path | None:
    for suffix in (".mp3", ".wav"):
        if (folder / f"{stem}{suffix}").is_file():
            return folder / f"{stem}{suffix}"
    return None


def _giantsteps_test(root: Path) -> tuple[list[tuple[Path, str]], list[str]]:
    """(audio path, key) of the GiantSteps key data set, and the annotations dropped."""
    layout = "annotations/key/<id>.LOFI.key and audio/<id>.LOFI.mp3 (giantsteps-key-dataset)"
    key_folder = _need(root / "annotations" / "key", layout)
    audio = _need(root / "audio", layout)
    items, dropped, missing = [], [], []
    for key_file in sorted(key_folder.glob("*.key")):
        stem = key_file.name[: -len(".key")]
        text = key_file.read_text(encoding="utf-8").strip()
        try:
            key = canonical_key(text)
        except MusicSSLError:
            dropped.append(f"{key_file.name}: {text!r} is not one major or minor key")
            continue
        found = _find_audio(audio, stem)
        if found is None:
            missing.append(f"{stem}.mp3")
            continue
        items.append((found, key))
    if missing:
        raise MusicSSLError(
            f"{audio}: {len(missing)} annotated clips have no .mp3 or .wav: {_shown(missing)}"
        )
    if not items:
        raise MusicSSLError(f"{key_folder}: no usable .key annotations; expected {layout}")
    return items, dropped


def _giantsteps_mtg(root: Path) -> tuple[list[tuple[Path, str]], list[str]]:
    """(audio path, key) of the GiantSteps MTG key data set's confident, single-key tracks."""
    layout = "annotations/annotations.txt and audio/<ID>.LOFI.mp3 (giantsteps-mtg-key-dataset)"
    table = _need(root / "annotations" / "annotations.txt", layout)
    audio = _need(root / "audio", layout)
    items, dropped, missing = [], [], []
    lines = table.read_text(encoding="utf-8").splitlines()
    for line_num, line in enumerate(lines, start=1):
        fields = [field.strip() for field in line.split("\t")]
        if not line.strip() or fields[0].upper() == "ID" or line.startswith("#"):
            continue
        if len(fields) < 3:
            raise MusicSSLError(f"{table}, line {line_num}: expected ID, key and confidence")
        track, text, confidence = fields[:3]
        # Confidence 2: the annotators were sure; 1 and 0 mark doubtful or missing keys.
        if confidence != "2":
            dropped.append(f"{track}: confidence {confidence}")
            continue
        try:
            key = canonical_key(text)
        except MusicSSLError:
            dropped.append(f"{track}: {text!r} is not one major or minor key")
            continue
        found = _find_audio(audio, f"{track}.LOFI")
        if found is None:
            missing.append(f"{track}.LOFI.mp3")
            continue
        items.append((found, key))
    if missing:
        raise MusicSSLError(
            f"{audio}: {len(missing)} annotated tracks have no .mp3 or .wav: {_shown(missing)}"
        )
    if len(items) < 2:
        raise MusicSSLError(f"{table}: fewer than two usable annotations")
    return items, dropped


def giantsteps_key(root: str | Path, *, train_root: str | Path | None = None) -> Task:
    """Key detection on GiantSteps key (Knees et al., 2015): 24 classes, kind "key".

    Layout of ``root`` (giantsteps-key-dataset after ``audio_dl.sh``):
    ``annotations/key/<id>.LOFI.key`` (text such as ``"Eb minor"``) and
    ``audio/<id>.LOFI.mp3`` (or ``.wav`` after ``convert_audio.sh``). Keys are respelled by
    ``canonical_key``; annotations that are not one major or minor key are dropped and listed
    in ``Task.extra["dropped"]``.

    GiantSteps key is a test set. With ``train_root`` (giantsteps-mtg-key-dataset:
    ``annotations/annotations.txt`` with columns ID, MANUAL KEY, C and
    ``audio/<ID>.LOFI.mp3``), its tracks annotated with confidence 2 and a single key are
    split 85/15 into train and valid by a hash of the name, and all of GiantSteps is the test
    set, the usual protocol. Without it, GiantSteps alone is split 70/15/15 by a hash of the
    name: about 420 training clips, so scores are lower and not comparable with the literature.
    Names are relative to the folder the two roots share.

    Raises:
        MusicSSLError: a missing annotation folder or file, missing audio, no usable keys.
    """
    root = Path(root).expanduser().absolute()
    test_items, dropped = _giantsteps_test(root)
    if train_root is None:
        base = root
        assignment = _hash_split(
            (_relative(base, audio) for audio, _ in test_items), valid=0.15, test=0.15
        )
        split_note = "GiantSteps key split 70/15/15 by hash (no training set given)"
        items = [(audio, key, assignment[_relative(base, audio)]) for audio, key in test_items]
    else:
        train_root = Path(train_root).expanduser().absolute()
        train_items, train_dropped = _giantsteps_mtg(train_root)
        dropped += [f"mtg {note}" for note in train_dropped]
        base = Path(os.path.commonpath([root, train_root]))
        assignment = _hash_split(
            (_relative(base, audio) for audio, _ in train_items), valid=0.15, test=0
        )
        items = [(audio, key, assignment[_relative(base, audio)]) for audio, key in train_items]
        items += [(audio, key, "test") for audio, key in test_items]
        split_note = "train/valid: GiantSteps MTG key (85/15 by hash); test: GiantSteps key"
    examples = [Example(_relative(base, audio), split, key) for audio, key, split in items]
    return Task(
        name="giantsteps_key",
        kind="key",
        root=base,
        examples=tuple(examples),
        classes=tuple(sorted({example.target for example in examples})),
        description=f"GiantSteps key ({split_note})",
        extra={"dropped": dropped, "split": split_note},
    )


# --------------------------------------------------------------------------------------------
# MTG-Jamendo


def mtg_jamendo(
    root: str | Path,
    *,
    split: int = 0,
    subset: str = "top50tags",
    audio_dir: str | Path | None = None,
) -> Task:
    """MTG-Jamendo auto-tagging, multilabel (Bogdanov et al., 2019).

    Layout: ``root`` is a clone of the mtg-jamendo-dataset repository, whose
    ``data/splits/split-<split>/autotagging_<subset>-{train,validation,test}.tsv`` (``subset``
    "all": ``autotagging-*.tsv``) list TRACK_ID, ARTIST_ID, ALBUM_ID, PATH, DURATION and then
    one tag per column (``genre---rock``; tags are kept whole, with their category). The audio,
    as ``scripts/download/download.py --unpack`` leaves it, is ``<audio_dir>/<PATH>``
    (``NN/<id>.mp3``) or, for the low-quality download, ``<audio_dir>/NN/<id>.low.mp3``;
    ``audio_dir`` defaults to ``root/audio``, else ``root/audio-low``.

    The official splits are artist-disjoint; split 0 is the one usually reported.

    Raises:
        MusicSSLError: an unknown subset, missing split files (naming the split folders
            found), a malformed row, missing audio.
    """
    if subset not in MTG_SUBSETS:
        raise MusicSSLError(f"mtg_jamendo: unknown subset {subset!r}; one of {MTG_SUBSETS}")
    root = Path(root).expanduser().absolute()
    splits_folder = _need(
        root / "data" / "splits",
        "a clone of mtg-jamendo-dataset with data/splits/split-<n>/autotagging_*.tsv",
    )
    folder = root / "data" / "splits" / f"split-{split}"
    if not folder.is_dir():
        found = sorted(entry.name for entry in os.scandir(splits_folder) if entry.is_dir())
        raise MusicSSLError(f"{folder}: not found (split folders: {', '.join(found) or 'none'})")
    if audio_dir is None:
        candidates = (root / "audio", root / "audio-low")
        audio = next((path for path in candidates if path.is_dir()), None)
        if audio is None:
            raise MusicSSLError(
                f"{root}: no audio/ or audio-low/ folder (audio/NN/<id>.mp3 or "
                "audio-low/NN/<id>.low.mp3 as download.py --unpack leaves it); pass audio_dir="
            )
    else:
        audio = _need(Path(audio_dir).expanduser().absolute(), "the unpacked MTG-Jamendo audio")
    prefix = "autotagging" if subset == "all" else f"autotagging_{subset}"

    examples: list[Example] = []
    seen: dict[str, str] = {}
    missing: list[str] = []
    for split_name, file_split in (("train", "train"), ("valid", "validation"), ("test", "test")):
        table = _need(folder / f"{prefix}-{file_split}.tsv", f"the {subset} split files")
        with open(table, newline="", encoding="utf-8") as stream:
            # No quoting in these files; a stray quote must not swallow the next tabs.
            rows = list(csv.reader(stream, delimiter="\t", quoting=csv.QUOTE_NONE))
        if not rows or tuple(rows[0][: len(MTG_COLUMNS)]) != MTG_COLUMNS:
            raise MusicSSLError(f"{table}: expected the header {' '.join(MTG_COLUMNS)}")
        for line_num, row in enumerate(rows[1:], start=2):
            if not any(row):
                continue
            tags = tuple(sorted({tag.strip() for tag in row[5:] if tag.strip()}))
            if len(row) < 6 or not tags:
                raise MusicSSLError(f"{table}, line {line_num}: expected a track with tags")
            track, path = row[0], row[3]
            if track in seen:
                raise MusicSSLError(f"{table}, line {line_num}: {track} is also in {seen[track]}")
            seen[track] = table.name
            name = path
            if not (audio / name).is_file():
                name = re.sub(r"\.mp3$", ".low.mp3", path)
                if not (audio / name).is_file():
                    missing.append(path)
                    continue
            examples.append(Example(name, split_name, tags))
    if missing:
        raise MusicSSLError(
            f"{audio}: {len(missing)} of the {len(seen)} tracks of {folder.name} have no audio "
            f"(<PATH> or its .low.mp3): {_shown(missing)}"
        )
    classes = tuple(sorted({tag for example in examples for tag in example.target}))
    return Task(
        name=f"mtg_jamendo_{subset}" + (f"_split{split}" if split else ""),
        kind="multilabel",
        root=audio,
        examples=tuple(examples),
        classes=classes,
        description=f"MTG-Jamendo {subset} tags, official split-{split}",
        extra={"split": split, "subset": subset},
    )


DATASETS: dict[str, Callable[..., Task | list[Task]]] = {
    "gtzan": gtzan,
    "magnatagatune": magnatagatune,
    "nsynth": nsynth,
    "giantsteps_key": giantsteps_key,
    "mtg_jamendo": mtg_jamendo,
}
