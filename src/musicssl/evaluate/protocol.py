"""The probing protocol: one task plus embeddings in, one JSON-ready dict of results out.

Probe tasks (multiclass, multilabel, regression, key, tempo, pitch): every probe of
``probes.GRID`` is trained on train and scored on valid by the task's headline metric; the
best is refit once per seed (a new initialisation) and scored on a bootstrap resample of the
test set drawn with that seed, so the spread over seeds holds both probe and test-sample
noise. Retrieval tasks have no probe: gallery items are ranked by cosine similarity, and each
seed resamples the queries.

"chance" is what an embedding that carries no information scores in expectation: a class
drawn uniformly at random (accuracy 1/num_classes, macro F1 and the MIREX key score from the
test labels), 0.5 ROC-AUC and the positive rate as PR-AUC (multilabel), the training mean as
the prediction (regression), the centre of the most common training tempo bin (tempo: the
probe classifies log-spaced tempo bins), and a uniformly random ranking (retrieval, exact
expectations). Classification kinds also report "majority", the accuracy of always answering
the most common training class.

What a probe learns per kind is in ``targets`` (the frames of a pitch task are prepared in
``pitch_frames``), and retrieval is scored in ``retrieval``; this module turns every kind into
one ``TaskResult``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from typing import Any

import numpy as np

from musicssl.errors import MusicSSLError
from musicssl.evaluate import metrics
from musicssl.evaluate.layer_sum import learn_layer_weights, mix_layers
from musicssl.evaluate.probes import GRID, Probe, ProbeSpec, fit_probe, select_probe
from musicssl.evaluate.results import MetricSummary, TaskResult
from musicssl.evaluate.retrieval import score_retrieval
from musicssl.evaluate.targets import ProbeData, clip_data, clip_vectors, pitch_data
from musicssl.evaluate.task import Task
from musicssl.progress import bar as progress_bar

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
) -> TaskResult:
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
        The task's scores; ``to_dict()`` gives its ``results.json`` entry.
    """
    if seeds < 1:
        raise MusicSSLError(f"task {task.name}: seeds must be >= 1, not {seeds}")
    if task.kind == "retrieval":
        scored = score_retrieval(task, clip_vectors(task, vectors), seeds=seeds)
        result = _result(task, scored.split_sizes, scored.chance, scored.values, scored.notes)
        result.curve = scored.curve
        return result
    data = pitch_data(task, frames) if task.kind == "pitch" else clip_data(task, vectors)
    return _probe(task, data, seeds=seeds, progress=progress)


def evaluate_layer_sum(
    task: Task,
    layers: Mapping[str, Mapping[str, Any]],
    *,
    seeds: int = 5,
) -> tuple[TaskResult, dict[str, float]]:
    """Probe a learned weighted sum of every layer (``layer_sum``) on one probe task.

    Args:
        task: a probe task (not retrieval: its weights would have no labels to learn from).
        layers: per layer name, in layer order, what ``evaluate_task`` takes for it: clip
            vectors per audio name, or (pitch) ``frames`` per audio name.
        seeds: as ``evaluate_task``.

    Returns:
        The mixed layers' scores, and the weight of each layer (summing to 1).
    """
    if task.kind == "retrieval":
        raise MusicSSLError(f"task {task.name}: a retrieval task has no probe to weigh layers")
    build = pitch_data if task.kind == "pitch" else clip_data
    data = [build(task, inputs) for inputs in layers.values()]
    weights = learn_layer_weights(data)
    result = _probe(task, mix_layers(data, weights), seeds=seeds, progress=False)
    return result, dict(zip(layers, weights.tolist()))


def _probe(task: Task, data: ProbeData, *, seeds: int, progress: bool) -> TaskResult:
    main = MAIN[task.kind]
    bar = progress_bar(
        total=len(GRID) + seeds - 1, desc=task.name, disable=not progress, leave=False
    )

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
        if data.test_rows is not None:  # each reference's row
            outputs = outputs[data.test_rows]
        if seed == 0 and data.objective == "multiclass":
            confusion = metrics.confusion(
                data.y["test"], outputs.argmax(axis=1), num_classes=int(data.num_outputs or 0)
            )
        assert data.resample is not None
        rows = data.resample(np.random.default_rng(seed))
        for metric, value in data.score("test", outputs, rows).items():
            values.setdefault(metric, []).append(value)
    bar.close()
    result = _result(task, data.split_sizes, data.chance, values, data.notes)
    result.probe = {**best.spec.to_dict(), "steps": best.steps}
    result.valid = valid
    result.classes = data.classes
    result.majority = data.majority
    result.confusion = confusion
    return result


def _result(
    task: Task,
    split_sizes: Mapping[str, int],
    chance: Mapping[str, float],
    values: Mapping[str, list[float]],
    notes: list[str],
) -> TaskResult:
    return TaskResult(
        name=task.name,
        kind=task.kind,
        description=task.description,
        split_sizes=dict(split_sizes),
        main=MAIN[task.kind],
        chance={metric: float(value) for metric, value in chance.items()},
        metrics={metric: MetricSummary.of(v) for metric, v in values.items()},
        notes=list(notes),
    )
