"""What a probe learns and how its outputs are scored, per task kind.

``clip_data`` (clip-level kinds) and ``pitch_data`` (frame-level pitch) turn a task and its
embeddings into a ``ProbeData``: inputs and targets per split, the probe's objective, the
metrics of the kind as a function of the probe's outputs, and chance (see ``protocol``).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from musicssl.errors import MusicSSLError
from musicssl.evaluate import metrics
from musicssl.evaluate.pitch_frames import check_features, voiced_frames
from musicssl.evaluate.probes import Objective
from musicssl.evaluate.task import PROBE_SPLITS, Example, Task, check_names
from musicssl.spelling import KEYS, PITCH_CLASSES


def clip_vectors(task: Task, vectors: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    check_names(task, list(vectors), source="embeddings")
    dim, out = None, {}
    for name in task.names:
        vector = np.asarray(vectors[name])
        if vector.ndim != 1:
            raise MusicSSLError(
                f"embeddings: {name} has shape {vector.shape}; a clip vector is (dim,)"
            )
        dim = check_features(vector, what=f"embeddings: {name}", dim=dim)
        out[name] = vector.astype(np.float32)
    return out


@dataclass
class ProbeData:
    """Inputs and references per split, and the metrics of one task kind.

    ``score(split, outputs, rows)`` turns probe outputs on a split into metrics, on the rows
    ``rows`` of that split (a bootstrap resample) or on all of them (None).
    """

    y: dict[str, np.ndarray]
    objective: Objective
    num_outputs: int | None
    score: Callable[[str, np.ndarray, np.ndarray | None], dict[str, float]]
    chance: dict[str, float]
    classes: list[str] | None = None
    majority: dict[str, float] | None = None
    notes: list[str] = field(default_factory=list)
    x: dict[str, np.ndarray] = field(default_factory=dict)
    split_sizes: dict[str, int] = field(default_factory=dict)
    resample: Callable[[np.random.Generator], np.ndarray] | None = None
    # The row of ``x["test"]`` each test reference reads, where rows are shared (pitch: a
    # frame answers for every f0 value near it); None: one row each.
    test_rows: np.ndarray | None = None


def _bootstrap_items(num_items: int) -> Callable[[np.random.Generator], np.ndarray]:
    return lambda rng: rng.integers(0, num_items, num_items)


def _classes_of(task: Task, targets: list[Any]) -> tuple[str, ...]:
    return task.classes or tuple(sorted({str(t) for t in targets}))


def clip_data(task: Task, vectors: Mapping[str, np.ndarray]) -> ProbeData:
    clip = clip_vectors(task, vectors)
    examples = {split: task.split(split) for split in PROBE_SPLITS}
    x = {s: np.stack([clip[e.name] for e in examples[s]]) for s in PROBE_SPLITS}
    sizes = task.split_sizes()
    builder = {
        "multiclass": _multiclass,
        "key": _key,
        "multilabel": _multilabel,
        "regression": _regression,
        "tempo": _tempo,
    }[task.kind]
    data = builder(task, examples)
    data.x, data.split_sizes = x, sizes
    data.resample = _bootstrap_items(sizes["test"])
    return data


def _labels(task: Task, examples: dict[str, list[Example]], classes) -> dict[str, np.ndarray]:
    index = {c: i for i, c in enumerate(classes)}
    y = {}
    for split, rows in examples.items():
        for example in rows:
            if str(example.target) not in index:
                raise MusicSSLError(
                    f"task {task.name}: {example.name} has label {example.target!r}, "
                    f"not one of the task's classes {list(classes)[:10]}"
                )
        y[split] = np.array([index[str(e.target)] for e in rows], dtype=np.int64)
    return y


def _majority(y: dict[str, np.ndarray], num_classes: int) -> float:
    most = np.bincount(y["train"], minlength=num_classes).argmax()
    return float(np.mean(y["test"] == most))


def _multiclass(task: Task, examples: dict[str, list[Example]]) -> ProbeData:
    classes = _classes_of(task, [e.target for e in task.examples])
    y = _labels(task, examples, classes)

    def score(split, outputs, rows):
        reference, estimate = y[split], outputs.argmax(axis=1)
        if rows is not None:
            reference, estimate = reference[rows], estimate[rows]
        return {
            "accuracy": metrics.accuracy(reference, estimate),
            "macro_f1": metrics.macro_f1(reference, estimate),
        }

    chance = {
        "accuracy": 1 / len(classes),
        "macro_f1": metrics.macro_f1_chance(y["test"], num_classes=len(classes)),
    }
    majority = {"accuracy": _majority(y, len(classes))}
    return ProbeData(y, "multiclass", len(classes), score, chance, list(classes), majority)


def _key(task: Task, examples: dict[str, list[Example]]) -> ProbeData:
    y = {}
    for split, rows in examples.items():
        try:
            y[split] = np.array([metrics.key_index(str(e.target)) for e in rows], dtype=np.int64)
        except MusicSSLError as error:
            raise MusicSSLError(f"task {task.name}: {error}") from None
    names = np.array(KEYS)

    def score(split, outputs, rows):
        reference, estimate = y[split], outputs.argmax(axis=1)
        if rows is not None:
            reference, estimate = reference[rows], estimate[rows]
        return {
            "accuracy": metrics.accuracy(reference, estimate),
            "mirex": metrics.key_mirex(names[reference], names[estimate]),
        }

    chance = {
        "accuracy": 1 / len(KEYS),
        "mirex": metrics.key_mirex_chance(names[y["test"]]),
    }
    majority = _majority(y, len(KEYS))
    return ProbeData(
        y,
        "multiclass",
        len(KEYS),
        score,
        chance,
        list(KEYS),
        {"accuracy": majority},
    )


def _multilabel(task: Task, examples: dict[str, list[Example]]) -> ProbeData:
    classes = task.classes or tuple(sorted({str(c) for e in task.examples for c in e.target}))
    index = {c: i for i, c in enumerate(classes)}
    y = {}
    for split, rows in examples.items():
        matrix = np.zeros((len(rows), len(classes)), dtype=np.int64)
        for i, example in enumerate(rows):
            if isinstance(example.target, str):
                raise MusicSSLError(
                    f"task {task.name}: {example.name} has target {example.target!r}; a "
                    "multilabel target is a tuple of class names"
                )
            for label in example.target:
                if str(label) not in index:
                    raise MusicSSLError(
                        f"task {task.name}: {example.name} has label {label!r}, not one of "
                        f"the task's classes"
                    )
                matrix[i, index[str(label)]] = 1
        y[split] = matrix

    def score(split, outputs, rows):
        reference, estimate = y[split], outputs
        if rows is not None:
            reference, estimate = reference[rows], estimate[rows]
        return {
            "roc_auc": metrics.roc_auc_macro(reference, estimate),
            "pr_auc": metrics.pr_auc_macro(reference, estimate),
        }

    scorable = metrics.scorable_classes(y["test"])
    if not scorable.any():
        raise MusicSSLError(
            f"task {task.name}: no class has both positive and negative test examples"
        )
    chance = {"roc_auc": 0.5, "pr_auc": float(y["test"][:, scorable].mean(axis=0).mean())}
    notes = []
    if not scorable.all():
        skipped = [c for c, keep in zip(classes, scorable) if not keep]
        notes.append(
            f"{len(skipped)} class(es) without both positive and negative test examples are "
            f"left out of the AUCs: {', '.join(skipped[:10])}"
        )
    return ProbeData(y, "multilabel", None, score, chance, list(classes), notes=notes)


def _values(task: Task, examples: dict[str, list[Example]], *, positive: bool) -> dict:
    y = {}
    for split, rows in examples.items():
        try:
            values = np.array([float(e.target) for e in rows], dtype=np.float64)
        except (TypeError, ValueError):
            raise MusicSSLError(f"task {task.name}: {split} targets must be numbers") from None
        bad = ~np.isfinite(values) | ((values <= 0) if positive else False)
        if bad.any():
            name = rows[int(np.flatnonzero(bad)[0])].name
            need = "a positive number" if positive else "a finite number"
            raise MusicSSLError(f"task {task.name}: {name}: target must be {need}")
        y[split] = values
    return y


def _regression(task: Task, examples: dict[str, list[Example]]) -> ProbeData:
    y = _values(task, examples, positive=False)

    def score(split, outputs, rows):
        reference, estimate = y[split], outputs
        if rows is not None:
            reference, estimate = reference[rows], estimate[rows]
        return {"r2": metrics.r2(reference, estimate), "mae": metrics.mae(reference, estimate)}

    constant = np.full(len(y["test"]), y["train"].mean())
    return ProbeData(y, "regression", None, score, score("test", constant, None))


# Tempo bins are log-spaced so that every tempo in a bin is within the 4% of Acc1 from the
# bin's centre: a classifier over them keeps an estimate that a regression would pull toward
# the training mean (right up to an octave is far from the mean in log2 BPM).
TEMPO_BIN_WIDTH = 2 * float(np.log2(1 + metrics.TEMPO_TOLERANCE))


def tempo_bins(bpm: np.ndarray) -> np.ndarray:
    """Centres (log2 BPM) of the tempo bins that cover ``bpm``, one ``TEMPO_BIN_WIDTH`` apart."""
    low, high = np.log2(bpm.min()), np.log2(bpm.max())
    count = int(np.floor((high - low) / TEMPO_BIN_WIDTH)) + 1
    return low + TEMPO_BIN_WIDTH * (np.arange(count) + 0.5)


def _tempo(task: Task, examples: dict[str, list[Example]]) -> ProbeData:
    bpm = _values(task, examples, positive=True)
    centres = tempo_bins(np.concatenate(list(bpm.values())))

    def nearest_bin(values: np.ndarray) -> np.ndarray:
        return np.abs(np.log2(values)[:, None] - centres[None, :]).argmin(axis=1)

    y = {split: nearest_bin(values) for split, values in bpm.items()}

    def score(split, outputs, rows):
        reference, estimate = bpm[split], 2.0 ** centres[outputs.argmax(axis=1)]
        if rows is not None:
            reference, estimate = reference[rows], estimate[rows]
        return {
            "acc1": metrics.tempo_acc1(reference, estimate),
            "acc2": metrics.tempo_acc2(reference, estimate),
        }

    most = np.bincount(y["train"], minlength=len(centres)).argmax()
    constant = np.eye(len(centres))[np.full(len(y["test"]), most)]
    classes = [f"{2.0**c:.0f} BPM" for c in centres]
    return ProbeData(y, "multiclass", len(centres), score, score("test", constant, None), classes)


def pitch_data(task: Task, frames: Mapping[str, tuple[np.ndarray, np.ndarray]] | None) -> ProbeData:
    voiced = voiced_frames(task, frames)
    f0 = voiced.f0
    y = {split: metrics.pitch_class(values) for split, values in f0.items()}

    def score(split, outputs, rows):
        reference, estimate = f0[split], outputs.argmax(axis=1)
        if rows is not None:
            reference, estimate = reference[rows], estimate[rows]
        return {"accuracy": metrics.pitch_class_accuracy(reference, estimate)}

    return ProbeData(
        y,
        "multiclass",
        len(PITCH_CLASSES),
        score,
        chance={"accuracy": 1 / 12},
        classes=list(PITCH_CLASSES),
        majority={"accuracy": _majority(y, 12)},
        notes=voiced.notes,
        x=voiced.x,
        split_sizes=voiced.split_sizes,
        resample=voiced.resample,
        test_rows=voiced.test_rows,
    )
