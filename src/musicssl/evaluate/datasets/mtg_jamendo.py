"""MTG-Jamendo auto-tagging (Bogdanov et al., 2019)."""

from __future__ import annotations

import csv
import os
import re
from pathlib import Path

from musicssl.errors import MusicSSLError
from musicssl.evaluate.datasets._common import first_few, need
from musicssl.evaluate.task import Example, Task

MTG_SUBSETS = ("top50tags", "genre", "instrument", "moodtheme", "all")
MTG_COLUMNS = ("TRACK_ID", "ARTIST_ID", "ALBUM_ID", "PATH", "DURATION", "TAGS")


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
    splits_folder = need(
        root / "data" / "splits",
        "a clone of mtg-jamendo-dataset with data/splits/split-<n>/autotagging_*.tsv",
    )
    folder = root / "data" / "splits" / f"split-{split}"
    if not folder.is_dir():
        found = sorted(entry.name for entry in os.scandir(splits_folder) if entry.is_dir())
        raise MusicSSLError(f"{folder}: not found (split folders: {', '.join(found) or 'none'})")
    audio = _audio_folder(root, audio_dir)
    prefix = "autotagging" if subset == "all" else f"autotagging_{subset}"

    examples: list[Example] = []
    seen: dict[str, str] = {}
    missing: list[str] = []
    for split_name, file_split in (("train", "train"), ("valid", "validation"), ("test", "test")):
        table = need(folder / f"{prefix}-{file_split}.tsv", f"the {subset} split files")
        for name, tags in _tracks(table, audio, seen, missing):
            examples.append(Example(name, split_name, tags))
    if missing:
        raise MusicSSLError(
            f"{audio}: {len(missing)} of the {len(seen)} tracks of {folder.name} have no audio "
            f"(<PATH> or its .low.mp3): {first_few(missing)}"
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


def _audio_folder(root: Path, audio_dir: str | Path | None) -> Path:
    """``audio_dir``, or else ``root/audio`` (full quality) or ``root/audio-low``."""
    if audio_dir is not None:
        return need(Path(audio_dir).expanduser().absolute(), "the unpacked MTG-Jamendo audio")
    candidates = (root / "audio", root / "audio-low")
    audio = next((path for path in candidates if path.is_dir()), None)
    if audio is None:
        raise MusicSSLError(
            f"{root}: no audio/ or audio-low/ folder (audio/NN/<id>.mp3 or "
            "audio-low/NN/<id>.low.mp3 as download.py --unpack leaves it); pass audio_dir="
        )
    return audio


def _tracks(
    table: Path, audio: Path, seen: dict[str, str], missing: list[str]
) -> list[tuple[str, tuple[str, ...]]]:
    """(audio name under ``audio``, tags) of each track of one split file. A track already
    ``seen`` in another file is refused; one without audio goes to ``missing``."""
    with open(table, newline="", encoding="utf-8") as stream:
        # No quoting in these files; a stray quote must not swallow the next tabs.
        rows = list(csv.reader(stream, delimiter="\t", quoting=csv.QUOTE_NONE))
    if not rows or tuple(rows[0][: len(MTG_COLUMNS)]) != MTG_COLUMNS:
        raise MusicSSLError(f"{table}: expected the header {' '.join(MTG_COLUMNS)}")
    tracks = []
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
        name = path if (audio / path).is_file() else re.sub(r"\.mp3$", ".low.mp3", path)
        if (audio / name).is_file():
            tracks.append((name, tags))
        else:
            missing.append(path)
    return tracks
