"""MagnaTagATune auto-tagging (Law et al., 2009)."""

from __future__ import annotations

import csv
from collections.abc import Sequence
from pathlib import Path

from musicssl.errors import MusicSSLError
from musicssl.evaluate.datasets._common import first_few, need
from musicssl.evaluate.task import Example, Task
from musicssl.plural import counted

MTT_SPLIT_FOLDERS = {"train": "0123456789ab", "valid": "c", "test": "def"}


def _check_files(root: Path, names: Sequence[str], *, source: str) -> None:
    """Raise when any ``root / name`` is not a file, naming how many and the first few."""
    missing = [name for name in names if not (root / name).is_file()]
    if missing:
        raise MusicSSLError(
            f"{source}: {len(missing)} of the {len(names)} audio files it lists are missing "
            f"under {root}: {first_few(missing)}"
        )


def magnatagatune(root: str | Path) -> Task:
    """MagnaTagATune auto-tagging over its 50 most frequent tags, multilabel (Law et al., 2009).

    Layout: ``root/annotations_final.csv`` (tab-separated, quoted: ``clip_id``, the 188 tag
    columns of 0/1, ``mp3_path``) and the clips at ``root/<mp3_path>`` or
    ``root/mp3/<mp3_path>`` (``<hex digit>/<name>.mp3``, as ``mp3.zip`` unpacks).

    Tags: the 50 tag columns with the most positive clips over the whole file (ties broken by
    column order), kept as spelled (synonyms such as "female" and "woman" are not merged, as
    in the usual benchmark). Split: by the clip's folder, 0-b train, c valid, d-f test
    (Dieleman and Schrauwen, 2014). Clips with none of the 50 tags are dropped, as in the
    split most papers use (Lee et al., 2017; musicnn, CLMR); ``Task.left_out``
    counts them. Clips shorter than 29.1 s, which that split also drops,
    are not: finding them means decoding.

    Raises:
        MusicSSLError: a missing annotation file, a malformed row (named by line), a missing
            audio file.
    """
    root = Path(root).expanduser().absolute()
    table = need(
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
        left_out=f"{counted(dropped, 'clip')} with none of the 50 tags left out, as the usual "
        "split does"
        if dropped
        else "",
    )
