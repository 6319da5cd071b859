"""GTZAN genre recognition (Tzanetakis and Cook, 2002)."""

from __future__ import annotations

import os
import re
from pathlib import Path

from musicssl.errors import MusicSSLError
from musicssl.evaluate.datasets._common import first_few, hash_split, left_out, relative_name
from musicssl.evaluate.task import Example, Task

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


def _gtzan_audio_folder(root: Path) -> Path:
    places = (root / "genres_original", root / "genres", root)
    for folder in places:
        if all((folder / genre).is_dir() for genre in GTZAN_GENRES):
            return folder
    if (root / "Data" / "genres_original").is_dir():  # the layout of a popular re-upload
        raise MusicSSLError(f"{root}: the genre folders are under Data/; give {root / 'Data'}")
    # The place with the most genre folders is the one meant: say what it lacks.
    meant = max(places, key=lambda folder: sum((folder / g).is_dir() for g in GTZAN_GENRES))
    missing = [genre for genre in GTZAN_GENRES if not (meant / genre).is_dir()]
    where = meant.relative_to(root).as_posix() if meant != root else "the folder itself"
    raise MusicSSLError(
        f"{root}: no GTZAN genre folders; expected genres_original/<genre>/<genre>.000NN.wav "
        f"(or genres/<genre>/... or <genre>/... directly) for the genres "
        f"{', '.join(GTZAN_GENRES)} (missing under {where}: {', '.join(missing)})"
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


def _listed_splits(root: Path, lists: str | Path | None) -> dict[str, str] | None:
    """Clip id -> split of the three filtered lists in ``lists`` (default ``root``); None
    when none of them is there (and ``lists`` was not named).

    Raises:
        MusicSSLError: a named ``lists`` without them, only some of the three, a malformed
            list, a clip in two lists.
    """
    folder = Path(lists).expanduser().absolute() if lists is not None else root
    if lists is not None and not (folder / "test_filtered.txt").is_file():
        raise MusicSSLError(f"lists={lists}: no test_filtered.txt there")
    list_files = {split: folder / f"{split}_filtered.txt" for split in ("train", "valid", "test")}
    present = [split for split, list_path in list_files.items() if list_path.is_file()]
    if not present:
        return None
    if len(present) < 3:
        absent = [str(list_files[split]) for split in list_files if split not in present]
        raise MusicSSLError(
            f"{root}: found {', '.join(f'{s}_filtered.txt' for s in present)} but not "
            f"{', '.join(absent)}; the filtered split needs all three lists"
        )
    split_of: dict[str, str] = {}
    for split, list_path in list_files.items():
        for clip in _read_gtzan_list(list_path):
            if clip in split_of:
                raise MusicSSLError(f"{list_path}: {clip} is also in the {split_of[clip]} list")
            split_of[clip] = split
    return split_of


def gtzan(root: str | Path, *, lists: str | Path | None = None) -> Task:
    """GTZAN genre recognition: 10 genres, multiclass (Tzanetakis and Cook, 2002).

    Layout: ``root/genres_original/<genre>/<genre>.000NN.wav`` as commonly distributed
    (``root/genres/<genre>/*.au``, the original archive, and ``root/<genre>/...`` are also
    accepted). Files not named ``<genre>.NNNNN.wav|au`` are ignored.

    Split: when ``root`` (or the folder ``lists``) holds ``train_filtered.txt``,
    ``valid_filtered.txt`` and
    ``test_filtered.txt`` (the fault-filtered split of Kereliuk et al., 2015, as distributed by
    Lee et al., 2017: one clip per line, e.g. ``blues/blues.00029.wav``), those 443/197/290
    clips; listed clips absent from the folder are left out and named in ``Task.left_out``
    (more than 1% of them absent is an error).
    Otherwise a stratified 80/10/10 split of every clip by a hash of
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
                clips[found.group(1)] = (relative_name(root, Path(entry.path)), genre)
    if not clips:
        raise MusicSSLError(f"{audio}: the genre folders hold no <genre>.NNNNN.wav files")

    dropped: list[str] = []
    listed = _listed_splits(root, lists)
    if listed is not None:
        dropped = [clip for clip in listed if clip not in clips]
        if len(dropped) > max(1, 0.01 * len(listed)):  # not jazz.00054 alone: cut short?
            raise MusicSSLError(
                f"{audio}: {len(dropped)} of the {len(listed)} clips of the filtered lists are "
                f"not in the folder ({first_few(dropped)}); is the archive wholly unpacked?"
            )
        examples = [
            Example(clips[clip][0], split, clips[clip][1])
            for clip, split in listed.items()
            if clip in clips
        ]
        description = "GTZAN genre, fault-filtered split (Kereliuk et al., 2015)"
    else:
        split_of = {}
        for genre in GTZAN_GENRES:
            names = [clip for clip, (_, clip_genre) in clips.items() if clip_genre == genre]
            split_of.update(hash_split(names, valid=0.1, test=0.1))
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
        left_out=left_out(dropped, "clips of the filtered lists not in the folder"),
        extra={"split": "filtered" if listed is not None else "random"},
    )
