"""Zero-shot classification of the built-in corpus's test clips by a run with a text tower.

Each clip's embedding (the encoder's, as cached for the probes) goes through the run's audio
projection; each class is the ensemble of its prompts (``evaluate.prompts``) through the text
tower; a clip takes the class of highest cosine. No label of any split is used to fit
anything. Three tasks, from the corpus's manifest:

- ``zeroshot_style``: the six styles (accuracy);
- ``zeroshot_mode``: major or minor, the mode of the key label (accuracy);
- ``zeroshot_family``: the General MIDI families playing; a clip is right when its top
  family is one of them (hit@1), and chance is the mean share of families a clip has.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from musicssl.evaluate.prompts import PROMPTS, PROMPTS_VERSION
from musicssl.evaluate.results import MetricSummary, TaskResult
from musicssl.manifest import read_manifest

TASKS = ("style", "mode", "family")


def targets(rows: Sequence[Mapping[str, Any]], task: str) -> list[tuple[str, ...]]:
    """Each row's true classes for a zero-shot task (one class, or several for ``family``)."""
    if task == "style":
        return [(str(row["style"]),) for row in rows]
    if task == "mode":
        return [(str(row["key"]).split()[-1],) for row in rows]
    if task == "family":
        return [tuple(dict.fromkeys(str(f) for f in row["families"])) for row in rows]
    raise ValueError(f"unknown zero-shot task {task!r}")


def class_embeddings(model: Any, task: str) -> tuple[list[str], np.ndarray]:
    """The classes of a task and their prompt-ensemble text embeddings. Shape: (C, dim)."""
    classes = sorted(PROMPTS[task])
    vectors = []
    for name in classes:
        prompts = model.embed_text(list(PROMPTS[task][name]))  # (P, dim), normalised
        mean = prompts.mean(axis=0)
        vectors.append(mean / max(float(np.linalg.norm(mean)), 1e-12))
    return classes, np.stack(vectors)


def zero_shot_accuracy(
    audio: np.ndarray, truth: Sequence[tuple[str, ...]], classes: Sequence[str], text: np.ndarray
) -> tuple[float, float]:
    """(accuracy, chance) of the nearest class by cosine; a hit is any of a row's classes.

    Args:
        audio: clips in the joint space. Shape: (num_clips, dim).
        truth: each clip's true classes.
        classes: class names, in the rows of ``text``.
        text: class embeddings. Shape: (num_classes, dim).
    """
    audio = audio / np.maximum(np.linalg.norm(audio, axis=1, keepdims=True), 1e-12)
    predicted = np.argmax(audio @ text.T, axis=1)
    hits = [classes[p] in wanted for p, wanted in zip(predicted, truth)]
    chance = float(np.mean([len(set(w) & set(classes)) / len(classes) for w in truth]))
    return float(np.mean(hits)), chance


def missing_clips(
    corpus_dir: Path, vectors: Mapping[str, np.ndarray], *, split: str = "test"
) -> tuple[int, int]:
    """How many of the corpus's ``split`` clips have no embedding in ``vectors``, of how many."""
    rows = [
        row for row in read_manifest(corpus_dir / "manifest.jsonl") if row.get("split") == split
    ]
    return sum(_name(row) not in vectors for row in rows), len(rows)


def zero_shot_results(
    model: Any, corpus_dir: Path, vectors: Mapping[str, np.ndarray], *, split: str = "test"
) -> dict[str, TaskResult]:
    """The three zero-shot tasks on the corpus's ``split`` clips, from their clip embeddings.

    Args:
        model: a ``musicssl.embed.Model`` with a text tower (``has_text``).
        corpus_dir: the built-in corpus (its ``manifest.jsonl``).
        vectors: clip embeddings by name relative to ``corpus_dir/audio``.
    """
    rows = [
        row
        for row in read_manifest(corpus_dir / "manifest.jsonl")
        if row.get("split") == split and _name(row) in vectors
    ]
    if not rows:
        return {}
    audio = model.project_audio(np.stack([vectors[_name(row)] for row in rows]))
    results = {}
    for task in TASKS:
        truth = targets(rows, task)
        classes, text = class_embeddings(model, task)
        accuracy, chance = zero_shot_accuracy(audio, truth, classes, text)
        metric = "hit_at_1" if task == "family" else "accuracy"
        notes = ["one value, whatever the seeds: no probe to fit, no test set resampled"]
        if task != "family":  # a text tower that always answers one class scores its share
            ((most, count),) = Counter(labels[0] for labels in truth).most_common(1)
            notes.append(f"always answering the most common class ({most}) scores "
                         f"{count / len(truth):.3f} here")  # fmt: skip
        results[f"zeroshot_{task}"] = TaskResult(
            name=f"zeroshot_{task}",
            kind="multilabel" if task == "family" else "multiclass",
            description=f"{task}, zero-shot from the text tower (prompts v{PROMPTS_VERSION}, "
            "no probe)",
            split_sizes={split: len(rows)},
            main=metric,
            chance={metric: chance},
            metrics={metric: MetricSummary.of([accuracy])},
            notes=notes,
            classes=list(classes),
        )
    return results


def _name(row: Mapping[str, Any]) -> str:
    return str(row["path"]).removeprefix("audio/")
