"""NSynth instrument family and pitch (Engel et al., 2017)."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from musicssl.errors import MusicSSLError
from musicssl.evaluate.datasets._common import first_few, hash_order, hash_split, need
from musicssl.evaluate.task import Example, Task
from musicssl.plural import counted

NSYNTH_FOLDERS = {"train": "nsynth-train", "valid": "nsynth-valid", "test": "nsynth-test"}
NSYNTH_PITCH_RANGE = (21, 108)  # the 88 piano keys, as HEAR's nsynth_pitch task


def _read_nsynth(root: Path, folder: str) -> list[dict[str, Any]]:
    """The notes of one NSynth split folder, each with its audio name checked."""
    examples_json = need(
        root / folder / "examples.json", f"{folder}/examples.json and {folder}/audio/*.wav"
    )
    try:
        with open(examples_json, encoding="utf-8-sig") as stream:  # a BOM, as some editors save
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
    missing = [str(row["name"]) for row in rows if not row["exists"]]
    if missing:
        raise MusicSSLError(
            f"{examples_json}: {len(missing)} of its {len(rows)} notes have no audio file: "
            + first_few(missing)
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
    that range are left out of the pitch task only (``Task.left_out`` counts them).

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
        by_instrument = hash_split([row["instrument"] for row in valid_rows], valid=0.2, test=0)
        notes += [(row, by_instrument[row["instrument"]]) for row in valid_rows]
        notes += [(row, "test") for row in _read_nsynth(root, NSYNTH_FOLDERS["test"])]
        split_note = "no nsynth-train: nsynth-valid split 80/20 by instrument; official test"
    if max_train is not None:
        train_names = hash_order(row["name"] for row, split in notes if split == "train")
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
            left_out=f"{counted(len(family) - len(pitch), 'note')} outside MIDI {low}-{high} "
            "left out, as HEAR's nsynth_pitch does"
            if len(family) > len(pitch)
            else "",
            extra={"split": split_note},
        ),
    ]
