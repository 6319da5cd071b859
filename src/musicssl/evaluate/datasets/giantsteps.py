"""GiantSteps key detection (Knees et al., 2015), trained on GiantSteps MTG key."""

from __future__ import annotations

import os
from pathlib import Path

from musicssl.errors import MusicSSLError
from musicssl.evaluate.datasets._common import (
    canonical_key,
    first_few,
    hash_split,
    left_out,
    need,
    relative_name,
)
from musicssl.evaluate.task import Example, Task
from musicssl.plural import counted


def _find_audio(folder: Path, stem: str) -> Path | None:
    for suffix in (".mp3", ".wav"):
        if (folder / f"{stem}{suffix}").is_file():
            return folder / f"{stem}{suffix}"
    return None


def _giantsteps_test(root: Path) -> tuple[list[tuple[Path, str]], list[str]]:
    """(audio path, key) of the GiantSteps key data set, and the annotations dropped."""
    layout = "annotations/key/<id>.LOFI.key and audio/<id>.LOFI.mp3 (giantsteps-key-dataset)"
    key_folder = need(root / "annotations" / "key", layout)
    audio = need(root / "audio", layout)
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
            f"{audio}: {counted(len(missing), 'annotated clip')} without an .mp3 or .wav: "
            f"{first_few(missing)}"
        )
    if not items:
        raise MusicSSLError(f"{key_folder}: no usable .key annotations; expected {layout}")
    return items, dropped


def _giantsteps_mtg(root: Path) -> tuple[list[tuple[Path, str]], list[str]]:
    """(audio path, key) of the GiantSteps MTG key data set's confident, single-key tracks."""
    layout = "annotations/annotations.txt and audio/<ID>.LOFI.mp3 (giantsteps-mtg-key-dataset)"
    table = need(root / "annotations" / "annotations.txt", layout)
    audio = need(root / "audio", layout)
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
            f"{audio}: {len(missing)} annotated tracks have no .mp3 or .wav: {first_few(missing)}"
        )
    if len(items) < 2:
        raise MusicSSLError(f"{table}: fewer than two usable annotations")
    return items, dropped


def giantsteps_key(root: str | Path, *, train_root: str | Path | None = None) -> Task:
    """Key detection on GiantSteps key (Knees et al., 2015): 24 classes, kind "key".

    Layout of ``root`` (giantsteps-key-dataset after ``audio_dl.sh``):
    ``annotations/key/<id>.LOFI.key`` (text such as ``"Eb minor"``) and
    ``audio/<id>.LOFI.mp3`` (or ``.wav`` after ``convert_audio.sh``). Keys are respelled by
    ``canonical_key``; annotations that are not one major or minor key are left out and named
    in ``Task.left_out``.

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
        assignment = hash_split(
            (relative_name(base, audio) for audio, _ in test_items), valid=0.15, test=0.15
        )
        split_note = "GiantSteps key split 70/15/15 by hash (no training set given)"
        items = [(audio, key, assignment[relative_name(base, audio)]) for audio, key in test_items]
    else:
        train_root = Path(train_root).expanduser().absolute()
        train_items, train_dropped = _giantsteps_mtg(train_root)
        dropped += [f"mtg {note}" for note in train_dropped]
        base = Path(os.path.commonpath([root, train_root]))
        assignment = hash_split(
            (relative_name(base, audio) for audio, _ in train_items), valid=0.15, test=0
        )
        items = [(audio, key, assignment[relative_name(base, audio)]) for audio, key in train_items]
        items += [(audio, key, "test") for audio, key in test_items]
        split_note = "train/valid: GiantSteps MTG key (85/15 by hash); test: GiantSteps key"
    examples = [Example(relative_name(base, audio), split, key) for audio, key, split in items]
    return Task(
        name="giantsteps_key",
        kind="key",
        root=base,
        examples=tuple(examples),
        classes=tuple(sorted({example.target for example in examples})),
        description=f"GiantSteps key ({split_note})",
        left_out=left_out(dropped, "annotations not of one major or minor key, or unsure"),
        extra={"split": split_note},
    )
