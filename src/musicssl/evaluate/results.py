"""What an evaluation produces, as types: one ``TaskResult`` per task, gathered in ``Evaluation``.

``Evaluation.to_dict()`` is the content of ``results.json``, and ``Evaluation.from_dict`` reads
it back (the baseline cache stores the same format). The keys of that file are documented in
the README and read by ``musicssl compare``: they do not change when these types do.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from musicssl.errors import MusicSSLError

# Bump when the protocol changes what a score means: cached baseline results are recomputed.
# 2: the tempo probe classifies tempo bins; the last window of a clip ends at its last sample.
# 3: a spectrogram ViT ends in its last block (the final norm moved to its pretraining heads).
# 4: so does the frame transformer.
# 6: frames are timed by the encoder's frame hop (pitch pairs each with the f0 under it);
# 5 was taken for a while by the weighted sum of layers, and is skipped.
# 7: pitch is scored on the f0 track's own grid (each voiced f0 value reads the frame nearest
# it: the same test rows whatever the frame rate); ViT and frame-transformer frames are timed
# at the centre of the spectrogram frames they read.
PROTOCOL_VERSION = 7


@dataclass(frozen=True)
class MetricSummary:
    """One metric over seeds: mean, sample std (0 for one seed) and the per-seed values."""

    mean: float
    std: float
    values: tuple[float, ...] = ()

    @classmethod
    def of(cls, values: Iterable[float]) -> MetricSummary:
        """The summary of per-seed values."""
        array = np.asarray(list(values), dtype=np.float64)
        # The sample std: the noise rule compares spreads of 3 to 5 seeds, which the
        # population std understates (by a fifth at 3 seeds).
        std = float(array.std(ddof=1)) if len(array) > 1 else 0.0
        return cls(float(array.mean()), std, tuple(float(v) for v in array))

    def to_dict(self) -> dict[str, Any]:
        return {"mean": self.mean, "std": self.std, "values": list(self.values)}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> MetricSummary:
        return cls(float(data["mean"]), float(data["std"]), tuple(data.get("values", ())))


@dataclass
class TaskResult:
    """The scores of one task.

    Attributes:
        name, kind, description: the task's.
        split_sizes: examples per split (frame-level tasks add ``frames_<split>``).
        main: the headline metric.
        chance: what an embedding carrying no information scores, per metric.
        metrics: per metric, its summary over seeds on the test split.
        probe: the probe chosen on valid (None for retrieval).
        valid: the valid score of every probe tried (None for retrieval).
        notes: what the protocol had to leave out, in words.
        classes, majority, confusion: classification kinds only.
        curve: retrieval only: ``k``, ``recall`` and ``chance`` lists.
        note: why some files of the task were left out, if any were.
        by_layer: per encoder layer, the summary of every metric (``--layers all``); probe
            tasks of an encoder whose layers share one width add ``"weighted"``, a learned
            weighted sum of every layer (``layer_sum``).
        best_layer: the layer of ``by_layer`` whose probe scored best on valid: the one to
            use for this task (probe tasks only; its test scores are ``by_layer``'s).
        layer_weights: the weight of each layer in the ``"weighted"`` sum (summing to 1).
    """

    name: str
    kind: str
    description: str
    split_sizes: dict[str, int]
    main: str
    chance: dict[str, float]
    metrics: dict[str, MetricSummary]
    probe: dict[str, Any] | None = None
    valid: dict[str, float] | None = None
    notes: list[str] = field(default_factory=list)
    classes: list[str] | None = None
    majority: dict[str, float] | None = None
    confusion: list[list[int]] | None = None
    curve: dict[str, Any] | None = None
    note: str | None = None
    by_layer: dict[str, dict[str, MetricSummary]] | None = None
    best_layer: str | None = None
    layer_weights: dict[str, float] | None = None

    @property
    def headline(self) -> MetricSummary:
        """The summary of the headline metric."""
        return self.metrics[self.main]

    def to_dict(self) -> dict[str, Any]:
        """The task's entry of ``results.json``; only JSON types."""
        out: dict[str, Any] = {
            "name": self.name,
            "kind": self.kind,
            "description": self.description,
            "split_sizes": dict(self.split_sizes),
            "main": self.main,
            "chance": dict(self.chance),
            "metrics": {metric: value.to_dict() for metric, value in self.metrics.items()},
            "probe": self.probe,
            "valid": self.valid,
            "notes": list(self.notes),
        }
        optional = {
            "classes": self.classes,
            "majority": self.majority,
            "confusion": self.confusion,
            "curve": self.curve,
            "note": self.note,
            "best_layer": self.best_layer,
            "layer_weights": self.layer_weights,
        }
        out.update({key: value for key, value in optional.items() if value is not None})
        if self.by_layer is not None:
            out["by_layer"] = {
                # each seed's value too: the report pairs a layer with the same layer of
                # the random weights seed by seed
                layer: {m: s.to_dict() for m, s in scores.items()}
                for layer, scores in self.by_layer.items()
            }
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> TaskResult:
        by_layer = data.get("by_layer")
        return cls(
            name=data["name"],
            kind=data["kind"],
            description=data.get("description", ""),
            split_sizes=dict(data["split_sizes"]),
            main=data["main"],
            chance=dict(data["chance"]),
            metrics={m: MetricSummary.from_dict(s) for m, s in data["metrics"].items()},
            probe=data.get("probe"),
            valid=data.get("valid"),
            notes=list(data.get("notes", [])),
            classes=data.get("classes"),
            majority=data.get("majority"),
            confusion=data.get("confusion"),
            curve=data.get("curve"),
            note=data.get("note"),
            best_layer=data.get("best_layer"),
            layer_weights=data.get("layer_weights"),
            by_layer=None
            if by_layer is None
            else {
                layer: {m: MetricSummary.from_dict(s) for m, s in scores.items()}
                for layer, scores in by_layer.items()
            },
        )


@dataclass(frozen=True)
class SkippedTask:
    """A task that could not run on a source, and why."""

    task: str
    reason: str

    def __str__(self) -> str:
        return f"{self.task}: {self.reason}"

    @classmethod
    def parse(cls, line: str) -> SkippedTask:
        task, _, reason = line.partition(": ")
        return cls(task, reason)


@dataclass(frozen=True)
class EmbeddingMap:
    """A 2-D picture of a task's test embeddings: one point and one label per test clip."""

    task: str
    points: np.ndarray  # Shape: (num_items, 2)
    labels: tuple[str, ...]

    def to_dict(self) -> dict[str, Any]:
        return {
            "task": self.task,
            "points": np.round(np.asarray(self.points, dtype=np.float64), 4).tolist(),
            "labels": list(self.labels),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> EmbeddingMap:
        points = np.asarray(data["points"], dtype=np.float64).reshape(-1, 2)
        return cls(str(data["task"]), points, tuple(str(label) for label in data["labels"]))


@dataclass
class Evaluation:
    """Every result of one source: the content of ``results.json``.

    Attributes:
        source: how the report names the source (the path as given, or ``baseline:NAME``).
        corpus: the built-in corpus folder the tasks were read from.
        created: ISO 8601 time, UTC.
        checkpoint: the checkpoint folder a run or checkpoint source was read from (a run
            folder's latest when evaluated); None for an ``.npz`` or a baseline.
        model: for a model read from a Hugging Face folder, what it is in one line (its kind,
            size, input and weights hash); for ``baseline:random``, whose architecture its
            weights fill; else None.
        embedded_with: for an ``.npz`` of ``musicssl embed``, the checkpoint or ``hf:`` model
            it was embedded with, when that is there (``baseline:random`` is then its
            architecture); else None.
        version: musicssl's version.
        seeds: probe fits per task.
        layers: "all" when every encoder layer was probed too, else None.
        layer_labels: what each probed layer is, by its ``by_layer`` key, where its number
            does not say it all (``Encoder.layer_labels``: a branch's layers); else None.
        tasks: the result of every task that ran, in task order.
        skipped: tasks that could not run.
        skipped_files: audio files that could not be embedded, with the reason.
        notes: what a reader must know before trusting the scores (e.g. the source trained
            on the test split), in words.
        map: the 2-D map of the style task's test embeddings, when drawn.
        baselines: headline (mean, std) per task of each baseline, by ``baseline:NAME``.
        baseline_layers: per task, each layer's scores (``TaskResult.by_layer``) of the
            baselines probed layer by layer (``baseline:random`` under ``--layers all``).
        equivariance: per transform (pitch shift, time stretch), how far the clip embedding
            moves (``evaluate.equivariance``); encoders only.
        protocol: ``PROTOCOL_VERSION`` of the code that computed it.
    """

    source: str
    corpus: str
    created: str
    version: str
    seeds: int
    layers: str | None
    tasks: dict[str, TaskResult] = field(default_factory=dict)
    skipped: list[SkippedTask] = field(default_factory=list)
    skipped_files: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    map: EmbeddingMap | None = None
    baselines: dict[str, dict[str, dict[str, MetricSummary]]] | None = None
    baseline_layers: dict[str, dict[str, dict[str, dict[str, MetricSummary]]]] | None = None
    equivariance: dict[str, dict[str, float]] | None = None
    protocol: int = PROTOCOL_VERSION
    checkpoint: str | None = None
    layer_labels: dict[str, str] | None = None
    model: str | None = None
    embedded_with: str | None = None

    def headlines(self) -> dict[str, dict[str, MetricSummary]]:
        """Per task, its headline metric's summary, as set beside another source's results."""
        return {name: {task.main: task.headline} for name, task in self.tasks.items()}

    def to_dict(self) -> dict[str, Any]:
        """The ``results.json`` content; only JSON types."""
        out: dict[str, Any] = {
            "source": self.source,
            "corpus": self.corpus,
            "created": self.created,
            "version": self.version,
            "protocol": self.protocol,
            "seeds": self.seeds,
            "layers": self.layers,
            "tasks": {name: task.to_dict() for name, task in self.tasks.items()},
            "skipped": [str(skip) for skip in self.skipped],
            "skipped_files": list(self.skipped_files),
            "notes": list(self.notes),
        }
        if self.checkpoint is not None:
            out["checkpoint"] = self.checkpoint
        if self.model is not None:
            out["model"] = self.model
        if self.embedded_with is not None:
            out["embedded_with"] = self.embedded_with
        if self.layer_labels is not None:
            out["layer_labels"] = dict(self.layer_labels)
        if self.map is not None:
            out["map"] = self.map.to_dict()
        if self.equivariance is not None:
            out["equivariance"] = self.equivariance
        if self.baselines is not None:
            out["baselines"] = {  # each seed's value too: the report pairs seeds
                label: {
                    task: {m: s.to_dict() for m, s in scores.items()}
                    for task, scores in tasks.items()
                }
                for label, tasks in self.baselines.items()
            }
        if self.baseline_layers is not None:
            out["baseline_layers"] = {
                label: {
                    task: {
                        layer: {m: s.to_dict() for m, s in scores.items()}
                        for layer, scores in by_layer.items()
                    }
                    for task, by_layer in tasks.items()
                }
                for label, tasks in self.baseline_layers.items()
            }
        return out

    @classmethod
    def read(cls, folder: str | os.PathLike) -> Evaluation:
        """The results an evaluation wrote into ``folder`` (its ``results.json``, which may be
        named instead).

        Raises:
            MusicSSLError: no such folder or file, or it does not hold an evaluation's results.
        """
        from musicssl.evaluate.report.compare import read_results  # it reads this module

        folder = Path(folder)
        if folder.name == "results.json" and folder.is_file():  # the file itself named
            folder = folder.parent
        data = read_results(folder)
        try:
            return cls.from_dict(data)
        except (KeyError, TypeError, ValueError, AttributeError) as error:
            raise MusicSSLError(
                f"{folder / 'results.json'}: not an evaluation's results ({error!r})"
            ) from None

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Evaluation:
        baselines, layered = data.get("baselines"), data.get("baseline_layers")
        return cls(
            source=str(data["source"]),
            corpus=str(data.get("corpus", "")),
            created=str(data.get("created", "")),
            version=str(data.get("version", "")),
            seeds=int(data.get("seeds") or 0),
            layers=data.get("layers"),
            tasks={name: TaskResult.from_dict(t) for name, t in data["tasks"].items()},
            skipped=[SkippedTask.parse(str(line)) for line in data.get("skipped", [])],
            skipped_files=[str(line) for line in data.get("skipped_files", [])],
            notes=[str(line) for line in data.get("notes", [])],
            map=EmbeddingMap.from_dict(data["map"]) if data.get("map") else None,
            equivariance=data.get("equivariance"),
            checkpoint=data.get("checkpoint"),
            model=data.get("model"),
            embedded_with=data.get("embedded_with"),
            layer_labels=data.get("layer_labels"),
            baselines=None
            if baselines is None
            else {
                label: {
                    task: {m: MetricSummary.from_dict(s) for m, s in scores.items()}
                    for task, scores in tasks.items()
                }
                for label, tasks in baselines.items()
            },
            baseline_layers=None
            if layered is None
            else {
                label: {
                    task: {
                        layer: {m: MetricSummary.from_dict(s) for m, s in scores.items()}
                        for layer, scores in by_layer.items()
                    }
                    for task, by_layer in tasks.items()
                }
                for label, tasks in layered.items()
            },
            protocol=int(data.get("protocol", PROTOCOL_VERSION)),
        )
