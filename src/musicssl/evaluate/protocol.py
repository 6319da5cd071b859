"""The probing protocol: one task plus embeddings in, one JSON-ready dict of results out.

Probe tasks (multiclass, multilabel, regression, key, tempo, pitch): every probe of
``probes.GRID`` is trained on train and scored on valid by the task's headline metric; the
best is refit once per seed (a new initialisation) and scored on a bootstrap resample of the
test set drawn with that seed, so the spread over seeds holds both probe and test-sample
noise. Retrieval tasks have no probe: gallery items are ranked by cosine similarity, and each
seed resamples the queries.

"chance" is what an embedding that carries no information scores in expectation:
a class drawn uniformly at random (accuracy 1/num_classes, macro F1 and the MIREX key score
from the test labels), 0.5 ROC-AUC and the positive rate as PR-AUC (multilabel), the training
mean as the prediction (regression; tempo: the training mean of log2 BPM), and a uniformly
random ranking (retrieval, exact expectations). Classification kinds also report "majority",
the accuracy of always answering the most common training class.

The frames of a pitch task are prepared in ``pitch_frames``, and retrieval is scored in
``retrieval``; this module turns every kind into one result dict.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
from tqdm import tqdm

from musicssl.errors import MusicSSLError
from musicssl.evaluate import metrics
from musicssl.evaluate.pitch_frames import check_features, voiced_frames
from musicssl.evaluate.probes import GRID, Probe, ProbeSpec, fit_probe, select_probe
from musicssl.evaluate.retrieval import score_retrieval
from musicssl.evaluate.task import PROBE_SPLITS, Example, Task, check_names

MAIN = {
    "multiclass": "accuracy",
    "multilabel": "roc_auc",
    "regression": "r2",
    "key": "accuracy",
    "tempo": "acc1",
    "pitch": "accuracy",
    "retrieval": "map",
}


def evaluate_task(
    task: Task,
    vectors: Mapping[str, np.ndarray],
    *,
    frames: Mapping[str, tuple[np.ndarray, np.ndarray]] | None = None,
    seeds: int = 5,
    progress: bool = False,
) -> dict[str, Any]:
    """Probe (or rank) one task's embeddings and score them on its test split.

    Args:
        task: what to evaluate.
        vectors: clip vector per audio name, shape (dim,); may hold names the task does not
            use. Pitch tasks read ``frames`` instead and may pass an empty mapping.
        frames: pitch tasks only: per name, (features of shape (num_frames, dim), frame centre
            times in seconds of shape (num_frames,)).
        seeds: probe initialisations / bootstrap resamples of the test set.
        progress: show a progress bar.

    Returns:
        {"name", "kind", "description", "split_sizes", "main", "chance", "metrics":
        {metric: {"mean", "std", "values"}}, "probe", "valid", "notes", and per kind
        "classes", "confusion", "majority" (classification) or "curve" (retrieval)}; only
        str, int, float, list, dict and None, ready for ``json.dump``.
    """
    if seeds < 1:
        raise MusicSSLError(f"task {task.name}: seeds must be >= 1, not {seeds}")
    if task.kind == "retrieval":
        scored = score_retrieval(task, _clip_vectors(task, vectors), seeds=seeds)
        result = _result(task, scored.split_sizes, scored.chance, scored.values, scored.notes)
        result["curve"] = scored.curve
        return result
    data = _pitch(task, frames) if task.kind == "pitch" else _clip_data(task, vectors)
    return _probe(task, data, seeds=seeds, progress=progress)


# -- inputs --------------------------------------------------------------------------------


def _clip_vectors(task: Task, vectors: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
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
class _ProbeData:
    """Inputs and references per split, and the metrics of one task kind.

    ``score(split, outputs, rows)`` turns probe outputs on a split into metrics, on the rows
    ``rows`` of that split (a bootstrap resample) or on all of them (None).
    """

    y: dict[str, np.ndarray]
    objective: str
    num_outputs: int | None
    score: Callable[[str, np.ndarray, np.ndarray | None], dict[str, float]]
    chance: dict[str, float]
    extra: dict[str, Any] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    x: dict[str, np.ndarray] = field(default_factory=dict)
    split_sizes: dict[str, int] = field(default_factory=dict)
    resample: Callable[[np.random.Generator], np.ndarray] | None = None


def _bootstrap_items(num_items: int) -> Callable[[np.random.Generator], np.ndarray]:
    return lambda rng: rng.integers(0, num_items, num_items)


def _classes_of(task: Task, targets: list[Any]) -> tuple[str, ...]:
    return task.classes or tuple(sorted({str(t) for t in targets}))


def _clip_data(task: Task, vectors: Mapping[str, np.ndarray]) -> _ProbeData:
    clip = _clip_vectors(task, vectors)
    examples = {split: task.split(split) for split in PROBE_SPLITS}
    x = {s: np.stack([clip[e.name] for e in examples[s]]) for s in PROBE_SPLITS}
    sizes = {s: len(examples[s]) for s in PROBE_SPLITS}
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


def _multiclass(task: Task, examples: dict[str, list[Example]]) -> _ProbeData:
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
    extra = {"classes": list(classes), "majority": {"accuracy": _majority(y, len(classes))}}
    return _ProbeData(y, "multiclass", len(classes), score, chance, extra)


def _key(task: Task, examples: dict[str, list[Example]]) -> _ProbeData:
    y = {}
    for split, rows in examples.items():
        try:
            y[split] = np.array([metrics.key_index(str(e.target)) for e in rows], dtype=np.int64)
        except MusicSSLError as error:
            raise MusicSSLError(f"task {task.name}: {error}") from None
    names = np.array(metrics.KEYS)

    def score(split, outputs, rows):
        reference, estimate = y[split], outputs.argmax(axis=1)
        if rows is not None:
            reference, estimate = reference[rows], estimate[rows]
        return {
            "accuracy": metrics.accuracy(reference, estimate),
            "mirex": metrics.key_mirex(names[reference], names[estimate]),
        }

    chance = {
        "accuracy": 1 / len(metrics.KEYS),
        "mirex": metrics.key_mirex_chance(names[y["test"]]),
    }
    majority = _majority(y, len(metrics.KEYS))
    extra = {"classes": list(metrics.KEYS), "majority": {"accuracy": majority}}
    return _ProbeData(y, "multiclass", len(metrics.KEYS), score, chance, extra)


def _multilabel(task: Task, examples: dict[str, list[Example]]) -> _ProbeData:
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
    return _ProbeData(y, "multilabel", None, score, chance, {"classes": list(classes)}, notes)


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


def _regression(task: Task, examples: dict[str, list[Example]]) -> _ProbeData:
    y = _values(task, examples, positive=False)

    def score(split, outputs, rows):
        reference, estimate = y[split], outputs
        if rows is not None:
            reference, estimate = reference[rows], estimate[rows]
        return {"r2": metrics.r2(reference, estimate), "mae": metrics.mae(reference, estimate)}

    constant = np.full(len(y["test"]), y["train"].mean())
    return _ProbeData(y, "regression", None, score, score("test", constant, None))


def _tempo(task: Task, examples: dict[str, list[Example]]) -> _ProbeData:
    bpm = _values(task, examples, positive=True)
    # Tempo errors are relative (a 4% window), so the probe regresses log2 BPM.
    y = {split: np.log2(values) for split, values in bpm.items()}

    def score(split, outputs, rows):
        reference, estimate = bpm[split], 2.0**outputs
        if rows is not None:
            reference, estimate = reference[rows], estimate[rows]
        return {
            "acc1": metrics.tempo_acc1(reference, estimate),
            "acc2": metrics.tempo_acc2(reference, estimate),
        }

    constant = np.full(len(y["test"]), y["train"].mean())
    return _ProbeData(y, "regression", None, score, score("test", constant, None))


def _pitch(task: Task, frames: Mapping[str, tuple[np.ndarray, np.ndarray]] | None) -> _ProbeData:
    voiced = voiced_frames(task, frames)
    f0 = voiced.f0
    y = {split: metrics.pitch_class(values) for split, values in f0.items()}

    def score(split, outputs, rows):
        reference, estimate = f0[split], outputs.argmax(axis=1)
        if rows is not None:
            reference, estimate = reference[rows], estimate[rows]
        return {
            "accuracy": metrics.pitch_class_accuracy(reference, estimate),
            "raw_chroma": metrics.raw_chroma(reference, estimate),
        }

    return _ProbeData(
        y,
        "multiclass",
        len(metrics.PITCH_CLASSES),
        score,
        chance={"accuracy": 1 / 12, "raw_chroma": 1 / 12},
        extra={"classes": list(metrics.PITCH_CLASSES), "majority": {"accuracy": _majority(y, 12)}},
        notes=voiced.notes,
        x=voiced.x,
        split_sizes=voiced.split_sizes,
        resample=voiced.resample,
    )


# -- probing -------------------------------------------------------------------------------


def _summary(values: list[float]) -> dict[str, Any]:
    return {
        "mean": float(np.mean(values)),
        "std": float(np.std(values)),
        "values": [float(v) for v in values],
    }


def _probe(task: Task, data: _ProbeData, *, seeds: int, progress: bool) -> dict[str, Any]:
    main = MAIN[task.kind]
    bar = tqdm(total=len(GRID) + seeds - 1, desc=task.name, disable=not progress, leave=False)

    def valid_score(probe: Probe) -> float:
        return data.score("valid", probe.scores(data.x["valid"]), None)[main]

    best, valid = select_probe(
        data.x["train"],
        data.y["train"],
        data.x["valid"],
        data.y["valid"],
        objective=data.objective,
        score=valid_score,
        grid=GRID,
        num_outputs=data.num_outputs,
        seed=0,
        callback=lambda spec, value: bar.update(),
    )
    # Later seeds train the chosen probe for as many steps as early stopping kept for seed 0
    # (the linear probe runs to convergence whatever the seed).
    spec: ProbeSpec = best.spec
    if spec.type == "mlp":
        spec = replace(spec, max_steps=max(best.steps, 1))
    values: dict[str, list[float]] = {}
    confusion = None
    for seed in range(seeds):
        if seed == 0:
            probe = best
        else:
            probe = fit_probe(
                data.x["train"],
                data.y["train"],
                objective=data.objective,
                spec=spec,
                num_outputs=data.num_outputs,
                seed=seed,
            )
            bar.update()
        outputs = probe.scores(data.x["test"])
        if seed == 0 and data.objective == "multiclass":
            confusion = metrics.confusion(
                data.y["test"], outputs.argmax(axis=1), num_classes=data.num_outputs
            )
        assert data.resample is not None
        rows = data.resample(np.random.default_rng(seed))
        for metric, value in data.score("test", outputs, rows).items():
            values.setdefault(metric, []).append(value)
    bar.close()
    result = _result(task, data.split_sizes, data.chance, values, data.notes)
    result["probe"] = {**best.spec.to_dict(), "steps": best.steps}
    result["valid"] = valid
    result.update(data.extra)
    if confusion is not None:
        result["confusion"] = confusion
    return result


def _result(task, split_sizes, chance, values, notes) -> dict[str, Any]:
    return {
        "name": task.name,
        "kind": task.kind,
        "description": task.description,
        "split_sizes": dict(split_sizes),
        "main": MAIN[task.kind],
        "chance": {metric: float(value) for metric, value in chance.items()},
        "metrics": {metric: _summary(v) for metric, v in values.items()},
        "probe": None,
        "valid": None,
        "notes": list(notes),
    }
