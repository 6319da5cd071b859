"""What a run trained on, set against what its evaluation holds out: splits travel with the
data, and a report says when a run saw the test split or the split that picks the probe."""

from __future__ import annotations

from pathlib import Path

from musicssl.errors import MusicSSLError


def training_notes(source: str, *, corpus: Path, depth: int = 0) -> list[str]:
    """Warnings about what a run trained on: the test split, or (for the built-in corpus's
    own store) the valid split that picks the probe; [] when its recipe cannot be read.
    A run that started from another (``train.init_from``) answers for that one's too."""
    from musicssl.checkpoint import checkpoint_folder
    from musicssl.recipe import Recipe

    path = Path(source)
    try:
        found = [checkpoint_folder(path) / "recipe.yaml", path / "recipe.yaml"]
    except MusicSSLError:
        return []
    recipe_path = next((candidate for candidate in found if candidate.is_file()), None)
    if recipe_path is None:
        return []
    try:
        recipe = Recipe.load(recipe_path)
    except MusicSSLError:
        return []
    data, init_from = recipe.data, recipe.train.init_from
    splits = {part.strip() for part in data.splits.split(",") if part.strip()}
    everything = "all" in splits
    notes = []
    if everything or "test" in splits:
        notes.append(
            f"{source} trained on the test split (data.splits={data.splits}): its test "
            "scores are not held out"
        )
    store = Path(data.store) if data.store else None
    same_corpus = store is not None and store.resolve().parent == corpus.resolve()
    if same_corpus and (everything or "valid" in splits):
        notes.append(
            f"{source} trained on the valid split of {corpus} (data.splits={data.splits}), "
            "which picks the probe: the probe choice is not held out"
        )
    if init_from and depth < 16:  # a chain of runs, each started from the last
        earlier = training_notes(init_from, corpus=corpus, depth=depth + 1)
        notes += [
            f"{source} started from {init_from} (train.init_from): {note}" for note in earlier
        ]
    return notes
