"""``musicssl evaluate``: one source of embeddings, every task, one ``results.json`` and report.

The steps, each in its own module: open the source (``sources``: a checkpoint or run folder,
an ``.npz`` of embeddings from any system, or ``baseline:NAME``), resolve the tasks, embed
every audio file they need once (``cache``), probe each task (``scoring``), draw the map of
the style task (``tsne``), set the cached baselines beside it, and write the report folder
(``report.folder``). Results are typed (``results``) until they are written.
"""

from __future__ import annotations

import json
import numbers
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from musicssl.embed import DEFAULT_READOUT
from musicssl.errors import MusicSSLError
from musicssl.evaluate.cache import EvaluationCache, default_cache, results_key
from musicssl.evaluate.held_out import trained_files_notes, training_notes
from musicssl.evaluate.report.folder import check_out, write_evaluation
from musicssl.evaluate.results import Evaluation
from musicssl.evaluate.scoring import evaluate_embeddings
from musicssl.evaluate.sources import Embedded, Source, open_source
from musicssl.evaluate.task import Task
from musicssl.evaluate.task_specs import needs_corpus, resolve_tasks
from musicssl.evaluate.tsne import task_map
from musicssl.huggingface import model_path
from musicssl.recipe import DEFAULT_CORPUS

DEFAULT_BASELINES = ("mfcc", "logmel", "random")
MAP_TASK = "style"


def evaluate(
    source: str,
    *,
    out: str | os.PathLike,
    corpus: str | os.PathLike | None = None,
    tasks: Sequence[str] | None = None,
    seeds: int = 5,
    layers: str | None = None,
    readout: str = DEFAULT_READOUT,
    baselines: Sequence[str] = DEFAULT_BASELINES,
    cache: str | os.PathLike | None = None,
    device: str = "cpu",
    progress: bool = True,
    reference: str | os.PathLike | None = None,
) -> Evaluation:
    """Evaluate one source on every task and write ``results.json`` and the report to ``out``.

    Args:
        source: a checkpoint or run folder, ``hf:FOLDER``, an ``.npz`` (``names`` relative
            to the corpus's audio folder, ``emb``), or ``baseline:NAME``.
        out: folder for ``results.json``, ``report.md``, ``report.html`` and figures: missing,
            empty, or an earlier report (whose files are replaced).
        corpus: the built-in corpus folder, which must hold a corpus; ``None`` for
            ``data/corpus``, where the small one is built when missing (and which your own
            tasks alone never read).
        tasks: task names (see ``resolve_tasks``); all built-in tasks by default.
        seeds: probe fits per task (mean ± std over them).
        layers: "all" to probe every encoder layer as well.
        readout: how an encoder's layers become clip vectors, "mean" or "freq"
            (``musicssl.embed.Model``); the baselines keep theirs.
        baselines: baselines to set beside the source in the report (each cached).
        cache: cache folder (default ``default_cache()``).
        device: where models embed.
        progress: print what is being done.
        reference: when ``source`` is ``baseline:random``, the run whose architecture it
            takes (default: the demo recipe's encoder).

    Returns:
        The results (``to_dict()`` is what ``results.json`` holds).

    Raises:
        MusicSSLError: ``out`` is not ours to write, an unknown task or source, a named
            ``corpus`` folder without a corpus, a cache inside an audio folder, or an
            ``.npz`` whose names match no task.
    """
    # One name given as a string is a list of one, not of its letters.
    tasks = [tasks] if isinstance(tasks, str) else tasks
    baselines = [baselines] if isinstance(baselines, str) else baselines
    if not isinstance(source, (str, os.PathLike)):
        raise MusicSSLError(f"source must be a checkpoint or run folder, an .npz or "
                            f"baseline:NAME, got {type(source).__name__}")  # fmt: skip
    source = os.fspath(source)
    _check_baselines(baselines)  # before any work
    _check_protocol(seeds, layers)
    out_dir = check_out(out)
    _note_replaced(out_dir, source)
    # The source first: a bad one is refused before the corpus is built or degraded.
    opened = open_source(source, reference=reference, device=device, readout=readout)
    corpus_dir = _corpus(corpus, progress=progress, build=needs_corpus(tasks))
    cache_dir = Path(cache) if cache is not None else default_cache()
    task_list = _tasks(tasks, corpus_dir, cache_dir, progress=progress)
    store = EvaluationCache(cache_dir)
    if layers == "all" and opened.embedded is not None:
        _warn_missing_layers(opened.embedded, source, task_list)
    embedded = _embed(opened, task_list, store, layers=layers, progress=progress)
    evaluation = evaluate_embeddings(opened, task_list, embedded, corpus=corpus_dir,
                                     seeds=seeds, layers=layers, progress=progress)  # fmt: skip
    _beside_the_probes(evaluation, opened, source, task_list, embedded, corpus=corpus_dir)
    reference_run = _random_reference(opened, source, warn="random" in baselines and progress)
    evaluation.embedded_with = reference_run if opened.embedded is not None else None
    others = _baselines(baselines, source, task_list, store, corpus=corpus_dir, seeds=seeds,
                        layers=layers, reference=reference_run, device=device,
                        progress=progress)  # fmt: skip
    evaluation.baselines = {label: other.headlines() for label, other in others.items()}
    evaluation.baseline_layers = _layer_scores(others)
    write_evaluation(
        out_dir,
        evaluation.to_dict(),
        baselines={label: other.to_dict() for label, other in others.items()},
    )
    return evaluation


def _baselines(
    names: Sequence[str],
    source: str,
    task_list: Sequence[Task],
    store: EvaluationCache,
    *,
    corpus: Path | None,
    seeds: int,
    layers: str | None,
    reference: str | None,
    device: str,
    progress: bool,
) -> dict[str, Evaluation]:
    """Each named baseline's results on the same tasks, by label (the source itself skipped)."""
    return {
        label: baseline_results(
            label,
            task_list,
            store,
            corpus=corpus,
            seeds=seeds,
            # The same architecture: layer by layer beside the source's layers.
            layers=layers if label == "baseline:random" else None,
            reference=reference,
            device=device,
            progress=progress,
        )
        for label in (f"baseline:{name}" for name in names)
        if label != source
    }


def _layer_scores(results: dict[str, Evaluation]) -> dict[str, Any] | None:
    """Per source, each task's scores layer by layer, for those probed layer by layer."""
    layered = {
        label: {name: task.by_layer for name, task in other.tasks.items() if task.by_layer}
        for label, other in results.items()
    }
    return {label: tasks for label, tasks in layered.items() if tasks} or None


def _warn_missing_layers(embedded: Embedded, source: str, tasks: Sequence[Task]) -> None:
    """Say what ``--layers all`` cannot probe in an ``.npz`` made without every layer."""
    if not embedded.layer_keys:
        note = f"--layers all is ignored: {source} holds no layer_K arrays, only 'emb'"
    elif not embedded.frame_layer_keys and any(task.kind == "pitch" for task in tasks):
        note = (
            f"pitch is probed on the last layer only: {source} holds no frames_layer_K "
            "arrays (`musicssl embed --layer all --frames` writes them)"
        )
    else:
        return
    print(f"note: {note}", file=sys.stderr, flush=True)


def _beside_the_probes(
    evaluation: Evaluation,
    opened: Source,
    source: str,
    tasks: Sequence[Task],
    embedded: dict[Path, Embedded],
    *,
    corpus: Path | None,
) -> None:
    """What the report shows beside the probes' scores: a checkpoint's equivariance and
    training notes (warned of), an audio-text model's zero-shot scores, the style map."""
    if opened.is_encoder and corpus is not None:  # your own tasks alone read no corpus
        from musicssl.evaluate.equivariance import equivariance_probe

        evaluation.equivariance = equivariance_probe(opened.model, corpus)
    if opened.is_checkpoint:
        evaluation.notes += training_notes(source, corpus=corpus)
        evaluation.notes += trained_files_notes(source, tasks)
    elif opened.embedded is not None and (run := _embedded_by(opened.embedded)) is not None:
        if Path(run).is_dir():  # an .npz that musicssl embed wrote with a run of ours
            evaluation.notes += training_notes(run, corpus=corpus)
            evaluation.notes += trained_files_notes(run, tasks)
        else:
            evaluation.notes.append(
                f"{source} was embedded with {run}, which is not there: what it trained on "
                "is not checked against the tasks' held-out files"
            )
    for line in evaluation.notes:
        print(f"warning: {line}", file=sys.stderr, flush=True)
    if corpus is not None and opened.model is not None and getattr(opened.model, "has_text", False):
        _zero_shot(evaluation, opened, tasks, embedded, corpus=corpus)
    style = next((task for task in tasks if task.name == MAP_TASK), None)
    if style is not None and MAP_TASK in evaluation.tasks:
        arrays = embedded[style.root].arrays
        evaluation.map = task_map(style, embedded[style.root].names, arrays["emb"], seed=0)


def _random_reference(opened: Source, source: str, *, warn: bool) -> str | None:
    """The checkpoint (or ``hf:FOLDER``) whose architecture ``baseline:random`` takes: the
    source itself, or the checkpoint (or ``hf:`` model) an ``.npz`` of ``musicssl embed``
    names when it is there; else None (the demo's network, said when ``warn``)."""
    if opened.is_encoder:
        return source
    embedded_by = _embedded_by(opened.embedded) if opened.embedded is not None else None
    if embedded_by is not None and Path(embedded_by).is_dir():
        return embedded_by
    model = opened.embedded.arrays.get("model") if opened.embedded is not None else None
    if model is not None and model.ndim == 0 and model_path(str(model)).is_dir():
        return str(model)  # an hf: model's own architecture
    if opened.embedded is not None and warn:
        print(f"note: baseline:random is the demo's network with random weights, not the "
              f"architecture behind {source} (the .npz does not name a checkpoint that is "
              "there)", file=sys.stderr, flush=True)  # fmt: skip
    return None


def _embedded_by(embedded: Embedded) -> str | None:
    """The checkpoint folder an ``.npz`` of ``musicssl embed`` was embedded with, or None."""
    found = embedded.arrays.get("checkpoint")
    return str(found) if found is not None and found.ndim == 0 and str(found) else None


def _check_protocol(seeds: int, layers: str | None) -> None:
    """Refuse ``seeds`` that are not a count of probe fits, and ``layers`` other than "all"."""
    if not isinstance(seeds, numbers.Integral) or isinstance(seeds, bool) or seeds < 1:
        raise MusicSSLError(f"seeds must be a whole number of probe fits >= 1, got {seeds!r}")
    if layers not in (None, "all"):
        raise MusicSSLError(f"layers must be None or 'all', got {layers!r}")


def _check_baselines(baselines: Sequence[str]) -> None:
    """Refuse an unknown baseline name ("none" alone means none, on the command line)."""
    from musicssl.evaluate.baselines import BASELINES

    unknown = [name for name in baselines if name not in BASELINES]
    if unknown:
        raise MusicSSLError(
            f"unknown baseline {unknown[0]!r}; valid names: {', '.join(BASELINES)} "
            "(or 'none' alone)"
        )


def _zero_shot(
    evaluation: Evaluation,
    source: Source,
    tasks: Sequence[Task],
    embedded: dict[Path, Embedded],
    *,
    corpus: Path,
) -> None:
    """Add the zero-shot tasks of a source with a text tower (``evaluate.zeroshot``)."""
    from musicssl.evaluate.zeroshot import missing_clips, zero_shot_results

    root = (corpus / "audio").resolve()
    found = next((e for r, e in embedded.items() if Path(r).resolve() == root), None)
    if not (corpus / "manifest.jsonl").is_file():
        return
    vectors = found.vectors() if found is not None else {}
    missing, total = missing_clips(corpus, vectors)
    if missing:  # scored on part of the test split, it would not be the zero-shot task
        note = (
            f"zero-shot left out: it scores all {total} test clips of the corpus, and these "
            f"tasks embedded {total - missing} (add a clip task, such as style)"
        )
        evaluation.notes.append(note)
        print(f"note: {note}", file=sys.stderr, flush=True)
        return
    evaluation.tasks.update(zero_shot_results(source.model, corpus, vectors))


def _note_replaced(out: Path, source: str) -> None:
    """Say so when ``out`` (``check_out`` found it ours) holds the report of another source."""
    try:
        replaced = str(json.loads((out / "results.json").read_text(encoding="utf-8"))["source"])
    except (OSError, ValueError, KeyError, TypeError):
        return
    if replaced != source:
        print(f"note: {out} holds the report of {replaced}; it is replaced by that of {source}",
              file=sys.stderr, flush=True)  # fmt: skip


def _tasks(
    specs: Sequence[str] | None, corpus: Path | None, cache: Path, *, progress: bool
) -> list[Task]:
    """The tasks ``specs`` name, their cache checked, and what each left out said."""
    # Without a corpus, no task is a built-in one: none reads it.
    builtin_corpus = corpus if corpus is not None else Path(DEFAULT_CORPUS)
    tasks = resolve_tasks(specs, corpus=builtin_corpus, cache=cache, progress=progress)
    _check_cache(cache, tasks)
    for task in tasks:  # a test set smaller than its protocol's is said, not hidden
        if task.left_out:
            print(f"note: task {task.name}: {task.left_out}", file=sys.stderr, flush=True)
    return tasks


def _corpus(corpus: str | os.PathLike | None, *, progress: bool, build: bool) -> Path | None:
    """The corpus folder as it is (any size); at the default place, built small when missing.
    None when no built-in task needs one (``build`` false) and none is named: what your own
    tasks report does not hang on a corpus that happens to lie in the working folder.

    A folder the caller names must hold a corpus already: a mistyped path is an error, not a
    few minutes of building somewhere new.
    """
    if corpus is None and not build:
        return None
    corpus_dir = Path(corpus if corpus is not None else DEFAULT_CORPUS)
    if not (corpus_dir / "manifest.jsonl").is_file():
        if corpus is not None:
            raise MusicSSLError(
                f"{corpus_dir}: no built-in corpus here (no manifest.jsonl); "
                f"build one with `musicssl corpus build --out {corpus_dir}`"
            )
        from musicssl.builtin import build_corpus

        if progress:
            print(f"no corpus in {corpus_dir}: building the small built-in corpus there "
                  "(a few minutes on 2 cores)", flush=True)  # fmt: skip
        build_corpus(corpus_dir, size="small", seed=0, progress=progress)
    return corpus_dir


def baseline_results(
    label: str,
    tasks: Sequence[Task],
    store: EvaluationCache,
    *,
    corpus: Path | None,
    seeds: int,
    reference: str | None,
    device: str,
    progress: bool,
    layers: str | None = None,
) -> Evaluation:
    """The results of ``baseline:NAME`` on ``tasks``, from the cache or computed and cached.

    Args:
        reference: for ``baseline:random``, the checkpoint whose architecture it takes.
        layers: "all" to probe every layer as well.
    """
    source = open_source(label, reference=reference, device=device)
    key = results_key(source, tasks, seeds=seeds, layers=layers)
    cached = store.results(key)
    if cached is not None:
        if progress:
            print(f"{label}: its results read from the cache ({store.folder})", flush=True)
        return cached
    if progress:
        print(f"evaluating {label} for comparison", flush=True)
    embedded = _embed(source, tasks, store, layers=layers, progress=progress)
    evaluation = evaluate_embeddings(
        source, tasks, embedded, corpus=corpus, seeds=seeds, layers=layers, progress=progress
    )
    store.store_results(key, evaluation)
    return evaluation


def _embed(
    source: Source,
    tasks: Sequence[Task],
    store: EvaluationCache,
    *,
    layers: str | None,
    progress: bool,
) -> dict[Path, Embedded]:
    """The source's embeddings of every task's files, one ``Embedded`` per task root."""
    groups: dict[Path, list[Task]] = {}
    for task in tasks:
        groups.setdefault(task.root, []).append(task)
    return {
        root: store.embeddings(source, group, layers=layers, progress=progress)
        for root, group in groups.items()
    }


def _check_cache(cache: Path, tasks: Sequence[Task]) -> None:
    """Refuse a cache folder inside an audio folder: indexing it would pick the cache up."""
    for root in {task.root for task in tasks}:
        if cache.resolve().is_relative_to(Path(root).resolve()):
            raise MusicSSLError(
                f"{cache}: the cache folder is inside the audio folder {root}; "
                "choose a --cache outside it"
            )
