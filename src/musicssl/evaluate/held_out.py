"""What a run trained on, set against what its evaluation holds out: splits travel with the
data, and a report says when a run saw the test split or the split that picks the probe."""

from __future__ import annotations

import json
import os
from collections import Counter
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from musicssl.errors import MusicSSLError

if TYPE_CHECKING:
    from musicssl.evaluate.task import Task
    from musicssl.recipe import Recipe


def training_notes(source: str, *, corpus: Path | None, depth: int = 0) -> list[str]:
    """Warnings about what a run trained on: the test split, or (for the built-in corpus's
    own store) the valid split that picks the probe; [] when its recipe cannot be read.
    ``corpus`` is the built-in corpus evaluated on; None when none is.
    A run that started from another (``train.init_from``) answers for that one's too."""
    recipe = _recipe(source)
    if recipe is None:
        return []
    data, init_from = recipe.data, recipe.train.init_from
    splits = {part.strip() for part in data.splits.split(",") if part.strip()}
    everything = "all" in splits
    notes = []
    # A store that is not there is noted by ``trained_files_notes``.
    same = _same_corpus(Path(data.store), corpus) if data.store and corpus else None
    if same and (everything or "test" in splits):
        notes.append(
            f"{source} trained on the test split (data.splits={data.splits}): its test "
            "scores are not held out"
        )
    if same and (everything or "valid" in splits):
        notes.append(
            f"{source} trained on the valid split of {corpus} (data.splits={data.splits}), "
            "which picks the probe: the probe choice is not held out"
        )
    if init_from and not Path(init_from).exists():
        notes.append(
            f"{source} started from {init_from} (train.init_from), which is not there: what "
            "that run trained on is not checked"
        )
    elif init_from and depth < 16:  # a chain of runs, each started from the last
        earlier = training_notes(init_from, corpus=corpus, depth=depth + 1)
        notes += [
            f"{source} started from {init_from} (train.init_from): {note}" for note in earlier
        ]
    return notes


def _same_corpus(store: Path, corpus: Path) -> bool | None:
    """Whether ``store`` was packed from the manifest of ``corpus`` (in its folder, or
    elsewhere from the same manifest); None when the store cannot be read."""
    if store.resolve().parent == corpus.resolve():
        return True
    try:
        meta = json.loads((store / "store.json").read_text())
        packed, sr = meta["manifest_sha256"], int(meta["sr"])
    except (OSError, ValueError, KeyError, TypeError):
        return None
    from musicssl.manifest import read_manifest
    from musicssl.pack import manifest_digest

    try:
        rows = read_manifest(corpus / "manifest.jsonl")
    except (OSError, MusicSSLError):
        return False
    return packed in (manifest_digest(rows, sr), manifest_digest(rows, sr, located=True))


def trained_files_notes(source: str, tasks: Sequence[Task]) -> list[str]:
    """Warnings for tasks whose valid or test files the run at ``source`` (or a run it
    started from) trained on: files with the bytes of a training clip of its store, or with
    its decoded samples (the same audio in another lossless format; stores of manifests that
    ``data index`` wrote record them).

    A table of your own without a ``split`` column is split by a hash of its paths, which
    knows nothing of the run's store. Only files of a training clip's size (or sample rate
    and length) are hashed.
    """
    by_bytes: dict[int, dict[str, str]] = {}  # bytes -> sha256 -> the run that trained on it
    by_samples: dict[tuple[int, int], dict[str, str]] = {}  # (sr, frames) -> samples digest
    notes = []
    for run, recipe in _chain(source):
        if recipe.data.store and not (Path(recipe.data.store) / "clips.jsonl").is_file():
            notes.append(
                f"{source}: the store {recipe.data.store} it (or a run it started from) "
                "trained on is not there: the tasks' held-out files are not checked against it"
            )
        for row in _store_rows(recipe.data.store):
            picked = recipe.data.splits == "all" or row.get("split") in {
                part.strip() for part in recipe.data.splits.split(",")
            }
            if not picked:
                continue
            if row.get("sha256") and isinstance(row.get("bytes"), int):
                by_bytes.setdefault(row["bytes"], {}).setdefault(row["sha256"], run)
            if row.get("samples_sha256") and isinstance(row.get("frames"), int):
                shape = (int(row.get("sr") or 0), row["frames"])
                by_samples.setdefault(shape, {}).setdefault(row["samples_sha256"], run)
    if not by_bytes and not by_samples:
        return notes
    for task in tasks:
        seen: Counter[tuple[str, str]] = Counter()  # (the run, the split)
        for example in task.examples:
            if example.split in ("train", "gallery"):
                continue
            by = _trained_by(task.root / example.name, by_bytes, by_samples)
            if by is not None:
                seen[by, example.split] += 1
        for run in dict.fromkeys(run for run, _ in seen):
            counts = ", ".join(f"{n} {split}" for (r, split), n in sorted(seen.items()) if r == run)
            who = run if run == source else f"{run}, which {source} started from,"
            notes.append(
                f"{who} trained on files that task {task.name} holds out ({counts}): their "
                f"scores are not held out; {_advice(task)}"
            )
    return notes


def _trained_by(
    path: Path,
    by_bytes: dict[int, dict[str, str]],
    by_samples: dict[tuple[int, int], dict[str, str]],
) -> str | None:
    """The run that trained on the audio of ``path`` (its bytes, else its decoded samples),
    or None; a file that cannot be read is none."""
    from musicssl import audio
    from musicssl.files import file_hash

    try:
        size = os.stat(path).st_size
        if size in by_bytes and (run := by_bytes[size].get(file_hash(path))) is not None:
            return run
        if not by_samples:
            return None
        header = audio.info(path)
        shape = (header.sr, header.frames)
        return by_samples[shape].get(audio.samples_digest(path)) if shape in by_samples else None
    except (OSError, MusicSSLError):
        return None


def _advice(task: Task) -> str:
    """What to change so that a task holds out none of a run's training files."""
    if task.extra.get("split_column") is False:  # a table split by a hash of its paths
        return "give the table a split column that keeps them in train"
    return "evaluate on a task without them, or pretrain on a store without them"


def _recipe(source: str) -> Recipe | None:
    """The recipe a checkpoint (or a run's latest) trained with; None when there is none to
    read."""
    from musicssl.checkpoint import checkpoint_folder
    from musicssl.recipe import Recipe

    try:
        found = [checkpoint_folder(source) / "recipe.yaml", Path(source) / "recipe.yaml"]
        path = next((candidate for candidate in found if candidate.is_file()), None)
        return Recipe.load(path) if path is not None else None
    except MusicSSLError:
        return None


def _chain(source: str) -> Iterator[tuple[str, Recipe]]:
    """The run at ``source`` and its recipe, then each run it started from (at most 16)."""
    for _ in range(16):
        recipe = _recipe(source)
        if recipe is None:
            return
        yield source, recipe
        if not recipe.train.init_from:
            return
        source = recipe.train.init_from


def _store_rows(store: str) -> list[dict]:
    """The rows of the store at ``store``; none when it cannot be read (moved, deleted)."""
    from musicssl.manifest import read_manifest

    try:
        return read_manifest(Path(store) / "clips.jsonl") if store else []
    except MusicSSLError:
        return []
