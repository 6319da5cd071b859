"""Probe every task on one source's embeddings: which tasks can be scored, and their scores.

A task is skipped, with the reason, when the source's embeddings miss its files, when it
cannot be learnt (one class in train, or a split without the classes the probe learns), or
when it needs frame tracks the embeddings lack; the others are probed (``protocol``), with
every layer as well under ``--layers all``, and a learned weighted sum of the layers
(``layer_sum``) where they share one width.
"""

from __future__ import annotations

import dataclasses
import datetime
import sys
from collections.abc import Sequence
from pathlib import Path

from musicssl.embed import Model
from musicssl.errors import MusicSSLError
from musicssl.evaluate.protocol import evaluate_layer_sum, evaluate_task
from musicssl.evaluate.results import Evaluation, SkippedTask, TaskResult
from musicssl.evaluate.sources import Embedded, Source
from musicssl.evaluate.task import Task
from musicssl.plural import counted


def evaluate_embeddings(
    source: Source,
    tasks: Sequence[Task],
    embedded: dict[Path, Embedded],
    *,
    corpus: Path | None,
    seeds: int,
    layers: str | None,
    progress: bool,
) -> Evaluation:
    """Probe every task on the source's embeddings (one ``Embedded`` per task root).

    Raises:
        MusicSSLError: the source is an ``.npz`` whose names match no task.
    """
    evaluation = Evaluation(
        source=source.label,
        corpus=str(corpus) if corpus is not None else "",
        created=datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        version=_version(),
        seeds=seeds,
        layers=layers,
        checkpoint=source.checkpoint,
        model=source.model_line,
        layer_labels=_layer_labels(source) if layers == "all" else None,
    )
    for found in embedded.values():
        evaluation.skipped_files.extend(found.skipped)
    ready: list[tuple[Task, str | None]] = []
    for task in tasks:
        kept, reason = _restrict(task, embedded[task.root], outside=source.embedded is not None)
        if kept is None:
            evaluation.skipped.append(SkippedTask(task.name, str(reason)))
        elif unlearnable := _unlearnable(kept):
            evaluation.skipped.append(SkippedTask(task.name, unlearnable))
        elif task.kind == "pitch" and not embedded[task.root].frames():
            evaluation.skipped.append(SkippedTask(task.name, "the embeddings hold no frame tracks"))
        else:
            ready.append((kept, reason))
            if reason and source.embedded is not None:  # a checkpoint's bad files are listed
                print(f"warning: task {task.name}: {reason}", file=sys.stderr, flush=True)
    if source.embedded is not None and not ready:
        if not any(set(embedded[task.root].names) & set(task.names) for task in tasks):
            raise MusicSSLError(_no_match(source, tasks))
        reasons = "; ".join(f"{skip.task}: {skip.reason}" for skip in evaluation.skipped)
        raise MusicSSLError(f"{source.label}: no task could be probed ({reasons})")
    for skip in evaluation.skipped:  # the report says it too; a reader of the terminal sees it
        print(f"warning: task {skip.task} skipped: {skip.reason}", file=sys.stderr, flush=True)
    for task, reason in ready:
        if progress:
            print(f"probing {task.name} ({task.kind}, {counted(seeds, 'seed')})", flush=True)
        result = _probe_task(task, embedded[task.root], seeds=seeds, layers=layers)
        result.note = "; ".join(note for note in (task.left_out, reason) if note) or None
        evaluation.tasks[task.name] = result
    return evaluation


def _layer_labels(source: Source) -> dict[str, str] | None:
    """The encoder's labels of its layers by ``by_layer`` key, where any says more than the
    layer's number (``Encoder.layer_labels``); None for an ``.npz`` or a baseline of features."""
    labels = source.model.encoder.layer_labels() if isinstance(source.model, Model) else []
    return {str(index): label for index, label in enumerate(labels)} if any(labels) else None


# The ``by_layer`` key of the learned weighted sum of every layer (``layer_sum``).
WEIGHTED = "weighted"


def _probe_task(task: Task, embedded: Embedded, *, seeds: int, layers: str | None) -> TaskResult:
    """The task's result on the clip vectors (or frames), and on every layer with "all"
    (and, for a probe task on layers of one width, on their learned weighted sum)."""
    if task.kind == "pitch":
        result = evaluate_task(task, {}, frames=embedded.frames(), seeds=seeds)
        keys, prefix = embedded.frame_layer_keys, "frames_layer_"
    else:
        result = evaluate_task(task, embedded.vectors(), seeds=seeds)
        keys, prefix = embedded.layer_keys, "layer_"
    if layers == "all" and keys:
        per_layer = {
            key.removeprefix(prefix): _layer_result(task, embedded, key, seeds=seeds)
            for key in keys
        }
        result.by_layer = {layer: scores.metrics for layer, scores in per_layer.items()}
        result.best_layer = best_layer(per_layer)
        widths = {embedded.arrays[key].shape[-1] for key in keys}
        if task.kind != "retrieval" and len(keys) > 1 and len(widths) == 1:
            inputs = {
                key.removeprefix(prefix): embedded.frames(key)
                if task.kind == "pitch"
                else embedded.vectors(key)
                for key in keys
            }
            summed, result.layer_weights = evaluate_layer_sum(task, inputs, seeds=seeds)
            result.by_layer[WEIGHTED] = summed.metrics
    return result


def _layer_result(task: Task, embedded: Embedded, key: str, *, seeds: int) -> TaskResult:
    if task.kind == "pitch":
        return evaluate_task(task, {}, frames=embedded.frames(key), seeds=seeds)
    return evaluate_task(task, embedded.vectors(key), seeds=seeds)


def best_layer(per_layer: dict[str, TaskResult]) -> str | None:
    """The layer whose best probe scored highest on valid (first of ties); None when the
    task has no validation split to choose by (retrieval)."""
    chosen, best = None, -float("inf")
    for layer, result in per_layer.items():
        if result.valid and max(result.valid.values()) > best:
            chosen, best = layer, max(result.valid.values())
    return chosen


def _restrict(task: Task, embedded: Embedded, *, outside: bool) -> tuple[Task | None, str | None]:
    """The task over the files that have embeddings (and why some were left out), or None."""
    available = set(embedded.names)
    missing = [name for name in task.names if name not in available]
    if not missing:
        return task, None
    if outside and 2 * len(missing) > len(task.names):  # most missing: named otherwise?
        found = len(task.names) - len(missing)
        return None, (
            f"the .npz has no embedding for {len(missing)} of its {len(task.names)} files, "
            f"e.g. {missing[0]} ({found} found; a task is probed when at least half of its "
            f"files are; names must be relative to {task.root}, to a folder above it, or "
            "absolute)"
        )
    why = (
        f"the .npz has no embedding for {counted(len(missing), 'file')} of {len(task.names)} "
        f"(e.g. {missing[0]})"
        if outside
        else f"{counted(len(missing), 'file')} could not be embedded"
    )
    examples = tuple(e for e in task.examples if e.name in available)
    try:
        kept = dataclasses.replace(task, examples=examples)
    except MusicSSLError as error:  # e.g. a split left without examples
        return None, f"{why}, and without them {str(error).removeprefix(f'task {task.name}: ')}"
    return kept, f"{why}; left out"


def _unlearnable(task: Task) -> str | None:
    """Why a classification task cannot be scored, or None: fewer than two classes in
    train, or a valid or test split with no example of a class the probe learns."""
    if task.kind not in ("multiclass", "key", "multilabel"):
        return None

    def labels(split: str) -> set[str]:
        found: set[str] = set()
        for example in task.split(split):
            found.update(example.target if task.kind == "multilabel" else (example.target,))
        return found

    learnt = labels("train")
    if len(learnt) < 2:
        only = f" ({next(iter(learnt))!r})" if learnt else ""
        return (
            f"only one class{only} in the train split: a probe has nothing to tell apart, "
            "and any score would be meaningless"
        )
    for split, use in (("valid", "choose the probe on"), ("test", "score")):
        if not labels(split) & learnt:
            return (
                f"the {split} split has no example of any class in the train split "
                f"({', '.join(sorted(learnt)[:5])}): nothing to {use}"
            )
    return None


def _no_match(source: Source, tasks: Sequence[Task]) -> str:
    """One line: the ``.npz``'s names match no task, and the names it should have."""
    assert source.embedded is not None
    expected = tasks[0].names[:2] if tasks else []
    given = source.embedded.names[:2]
    roots = ", ".join(sorted({str(task.root) for task in tasks}))
    return (
        f"{source.label}: its names match the files of no task; names must be audio paths "
        f"relative to {roots} (or to a folder above it, or absolute), e.g. "
        f"{', '.join(expected)} (the .npz has e.g. "
        f"{', '.join(given) or 'no names'})"
    )


def _version() -> str:
    from musicssl import __version__

    return __version__
