"""``musicssl evaluate``: one source of embeddings, every task, one ``results.json`` and report.

A source is a checkpoint (or run folder), an ``.npz`` of embeddings from any system, or a
baseline (``baseline:mfcc``, ``baseline:logmel``, ``baseline:random``). Every audio file the
tasks need is embedded once; the embeddings are cached under a key made of what produced them
(the weights' hash or the baseline's settings) and what they cover (each file's name and the
hash of its bytes), so a second evaluation only fits probes, and an edited or replaced file is
embedded again. Baseline results are cached the
same way, so the report can set a checkpoint beside them without recomputing them.
"""

from __future__ import annotations

import dataclasses
import datetime
import functools
import hashlib
import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from musicssl.errors import MusicSSLError
from musicssl.evaluate.task import Task

PROTOCOL_VERSION = 1
DEFAULT_CORPUS = Path("data/corpus")
DEFAULT_BASELINES = ("mfcc", "logmel", "random")


def default_cache() -> Path:
    """Where embeddings and baseline results are cached: ``$MUSICSSL_CACHE`` or ~/.cache."""
    return Path(os.environ.get("MUSICSSL_CACHE", "~/.cache/musicssl")).expanduser()


@dataclasses.dataclass
class Source:
    """Something that gives embeddings: an encoder-like model, or a ready ``.npz``.

    Attributes:
        label: how reports name it (the path as given, or ``baseline:NAME``).
        model: a ``musicssl.embed.Model`` or a baseline; None for an ``.npz``.
        arrays: the ``.npz`` arrays; None for a model.
        identity: what makes its embeddings what they are (for cache keys).
    """

    label: str
    model: Any = None
    arrays: dict[str, np.ndarray] | None = None
    identity: dict[str, Any] = dataclasses.field(default_factory=dict)

    @property
    def is_baseline(self) -> bool:
        return self.label.startswith("baseline:")


def open_source(spec: str, *, reference: str | None = None, device: str = "cpu") -> Source:
    """Open a checkpoint, a run folder, an ``.npz`` or ``baseline:NAME``.

    Args:
        spec: what to evaluate.
        reference: for ``baseline:random``, the checkpoint whose architecture to use.
    """
    if spec.startswith("baseline:"):
        from musicssl.evaluate.baselines import build_baseline

        model = build_baseline(spec.split(":", 1)[1], reference=reference, device=device)
        return Source(spec, model=model, identity={"baseline": model.config()})
    path = Path(spec)
    if path.suffix == ".npz":
        if not path.is_file():
            raise MusicSSLError(f"{path}: no such embeddings file")
        with np.load(path, allow_pickle=False) as data:
            arrays = {key: data[key] for key in data.files}
        for key in ("names", "emb"):
            if key not in arrays:
                raise MusicSSLError(f"{path}: an embeddings .npz needs '{key}' (has {data.files})")
        if arrays["emb"].ndim != 2 or len(arrays["emb"]) != len(arrays["names"]):
            raise MusicSSLError(
                f"{path}: 'emb' must be (len(names), dim); got {arrays['emb'].shape} "
                f"for {len(arrays['names'])} names"
            )
        return Source(spec, arrays=arrays, identity={"npz": _file_hash(path)})
    from musicssl.embed import checkpoint_folder, load

    folder = checkpoint_folder(path)
    model = load(folder, device=device)
    identity = {
        "weights": _file_hash(folder / "encoder.safetensors"),
        "encoder": json.loads((folder / "encoder.json").read_text()),
    }
    return Source(str(spec), model=model, identity=identity)


def resolve_tasks(specs: Sequence[str] | None, *, corpus: Path) -> list[Task]:
    """Tasks from names: built-in task names, ``DATASET=ROOT``, or a CSV/JSONL table."""
    from musicssl.evaluate import builtin_tasks, datasets

    if not specs:
        return builtin_tasks.builtin_tasks(corpus)
    tasks: list[Task] = []
    for spec in specs:
        if "=" in spec:
            dataset, root = spec.split("=", 1)
            if dataset not in datasets.DATASETS:
                raise MusicSSLError(
                    f"unknown data set {dataset!r}; known: {', '.join(sorted(datasets.DATASETS))}"
                )
            loaded = datasets.DATASETS[dataset](Path(root))
            tasks.extend(loaded if isinstance(loaded, list) else [loaded])
        elif spec.endswith((".csv", ".jsonl")):
            tasks.append(datasets.table_task(Path(spec)))
        elif spec in builtin_tasks.TASKS:
            tasks.append(builtin_tasks.TASKS[spec](corpus))
        else:
            raise MusicSSLError(
                f"unknown task {spec!r}: give a built-in task "
                f"({', '.join(builtin_tasks.TASKS)}), DATASET=ROOT "
                f"({', '.join(sorted(datasets.DATASETS))}) or a .csv/.jsonl table"
            )
    return tasks


def evaluate(
    source: str,
    *,
    out: str | os.PathLike,
    corpus: str | os.PathLike | None = None,
    tasks: Sequence[str] | None = None,
    seeds: int = 5,
    layers: str | None = None,
    baselines: Sequence[str] = DEFAULT_BASELINES,
    cache: str | os.PathLike | None = None,
    device: str = "cpu",
    progress: bool = True,
) -> dict[str, Any]:
    """Evaluate one source on every task and write ``results.json`` and the report to ``out``.

    Args:
        source: a checkpoint or run folder, an ``.npz`` (``names`` relative to the corpus's
            audio folder, ``emb``), or ``baseline:NAME``.
        out: folder for ``results.json``, ``report.md``, ``report.html`` and figures.
        corpus: the built-in corpus folder (built, small size, when missing).
        tasks: task names (see ``resolve_tasks``); all built-in tasks by default.
        seeds: probe fits per task (mean ± std over them).
        layers: "all" to probe every encoder layer as well.
        baselines: baselines to set beside the source in the report (each cached).
        cache: cache folder (default ``default_cache()``).

    Returns:
        The results (as written to ``results.json``).
    """
    corpus_dir = Path(corpus) if corpus is not None else DEFAULT_CORPUS
    if corpus is None or not (corpus_dir / "manifest.jsonl").is_file():
        from musicssl.builtin import build_corpus

        build_corpus(corpus_dir, size="small", seed=0, progress=progress)
    cache_dir = Path(cache) if cache is not None else default_cache()
    task_list = resolve_tasks(tasks, corpus=corpus_dir)
    opened = open_source(source, device=device)
    results = _evaluate_source(
        opened,
        task_list,
        corpus=corpus_dir,
        seeds=seeds,
        layers=layers,
        cache=cache_dir,
        progress=progress,
        with_map=True,
    )
    reference = source if opened.model is not None and not opened.is_baseline else None
    others: dict[str, dict[str, Any]] = {}
    for name in baselines:
        label = f"baseline:{name}"
        if label == source:
            continue
        others[label] = _cached_baseline(
            label,
            task_list,
            corpus=corpus_dir,
            seeds=seeds,
            reference=reference,
            cache=cache_dir,
            device=device,
            progress=progress,
        )
    out_dir = Path(out)
    out_dir.mkdir(parents=True, exist_ok=True)
    results["baselines"] = {label: _summary(other) for label, other in others.items()}
    _write_json(out_dir / "results.json", results)
    from musicssl.evaluate.report import write_report

    write_report(results, out_dir, baselines=others)
    return results


def _evaluate_source(
    source: Source,
    tasks: list[Task],
    *,
    corpus: Path,
    seeds: int,
    layers: str | None,
    cache: Path,
    progress: bool,
    with_map: bool,
) -> dict[str, Any]:
    from musicssl.evaluate.protocol import evaluate_task

    embeddings = {
        root: _embeddings(source, group, layers=layers, cache=cache, progress=progress)
        for root, group in _by_root(tasks).items()
    }
    results: dict[str, Any] = {
        "source": source.label,
        "corpus": str(corpus),
        "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "version": _version(),
        "protocol": PROTOCOL_VERSION,
        "seeds": seeds,
        "layers": layers,
        "tasks": {},
        "skipped": [],
        "skipped_files": [],
    }
    for task in tasks:
        arrays = embeddings[task.root]
        results["skipped_files"].extend(arrays.pop("__skipped__", []))
        task_ready, reason = _restrict(task, arrays, outside=source.arrays is not None)
        if task_ready is None:
            results["skipped"].append(f"{task.name}: {reason}")
            continue
        vectors = dict(zip(arrays["names"].tolist(), arrays["emb"]))
        frames = _frames(arrays) if task.kind == "pitch" else None
        if task.kind == "pitch" and not frames:
            results["skipped"].append(f"{task.name}: the embeddings hold no frame tracks")
            continue
        if progress:
            print(f"probing {task.name} ({task.kind}, {seeds} seeds)", flush=True)
        entry = evaluate_task(task_ready, vectors, frames=frames, seeds=seeds)
        if reason:
            entry["note"] = reason
        if layers == "all" and task.kind != "pitch":
            entry["by_layer"] = {}
            for key in sorted(k for k in arrays if k.startswith("layer_")):
                layer_vectors = dict(zip(arrays["names"].tolist(), arrays[key]))
                scored = evaluate_task(task_ready, layer_vectors, seeds=seeds)
                entry["by_layer"][key.removeprefix("layer_")] = {
                    metric: {"mean": value["mean"], "std": value["std"]}
                    for metric, value in scored["metrics"].items()
                }
        results["tasks"][task.name] = entry
    style = next((t for t in tasks if t.name == "style"), None)
    if with_map and style is not None and "style" in results["tasks"]:
        from musicssl.evaluate.report import embedding_map

        arrays = embeddings[style.root]
        index = {name: i for i, name in enumerate(arrays["names"].tolist())}
        test = [e for e in style.split("test") if e.name in index]
        points = embedding_map(arrays["emb"][[index[e.name] for e in test]], seed=0)
        results["map"] = {
            "task": "style",
            "points": np.round(points, 4).tolist(),
            "labels": [str(e.target) for e in test],
        }
    return results


def _cached_baseline(
    label: str,
    tasks: list[Task],
    *,
    corpus: Path,
    seeds: int,
    reference: str | None,
    cache: Path,
    device: str,
    progress: bool,
) -> dict[str, Any]:
    source = open_source(label, reference=reference, device=device)
    key = _hash(
        {
            "identity": source.identity,
            "tasks": [_task_signature(task) for task in tasks],
            "seeds": seeds,
            "protocol": PROTOCOL_VERSION,
        }
    )
    path = cache / "results" / f"{key}.json"
    if path.is_file():
        return json.loads(path.read_text())
    if progress:
        print(f"evaluating {label} for comparison", flush=True)
    results = _evaluate_source(
        source,
        tasks,
        corpus=corpus,
        seeds=seeds,
        layers=None,
        cache=cache,
        progress=progress,
        with_map=False,
    )
    _write_json(path, results)
    return results


def _embeddings(
    source: Source, tasks: list[Task], *, layers: str | None, cache: Path, progress: bool
) -> dict[str, Any]:
    """The arrays of an embeddings ``.npz`` covering every file of ``tasks`` (one root)."""
    if source.arrays is not None:
        return dict(source.arrays)
    from musicssl.embed import embed_items, file_items, save_npz

    root = tasks[0].root
    names = list(dict.fromkeys(name for task in tasks for name in task.names))
    frame_names = sorted({name for task in tasks if task.kind == "pitch" for name in task.names})
    key = _hash(
        {
            "identity": source.identity,
            "files": [[name, _content_hash(Path(root) / name)] for name in names],
            "frames": frame_names,
            "layers": layers,
            "protocol": PROTOCOL_VERSION,
        }
    )
    path = cache / "embeddings" / f"{key}.npz"
    if path.is_file():
        with np.load(path, allow_pickle=False) as data:
            arrays: dict[str, Any] = {k: data[k] for k in data.files}
        arrays["__skipped__"] = arrays.pop("skipped").tolist()
        return arrays
    items = file_items(root, names, sr=source.model.sample_rate)
    arrays, skipped = embed_items(
        source.model, items, layers=layers, frames_for=set(frame_names), progress=progress
    )
    arrays["skipped"] = np.array(skipped, dtype=str)
    save_npz(path, arrays)
    arrays["__skipped__"] = arrays.pop("skipped").tolist()
    for line in skipped:
        print(f"skipped {line}", flush=True)
    return arrays


def _restrict(
    task: Task, arrays: dict[str, Any], *, outside: bool
) -> tuple[Task | None, str | None]:
    """The task over the files that have embeddings, or None and why it cannot run."""
    available = set(arrays["names"].tolist())
    missing = [name for name in task.names if name not in available]
    if not missing:
        return task, None
    if outside:
        return None, (
            f"the .npz has no embedding for {len(missing)} of its {len(task.names)} files "
            f"(names must be relative to {task.root}), e.g. {missing[0]}"
        )
    examples = tuple(e for e in task.examples if e.name in available)
    try:
        kept = dataclasses.replace(task, examples=examples)
    except MusicSSLError as error:
        return None, f"{len(missing)} files could not be embedded ({error})"
    return kept, f"{len(missing)} files could not be embedded and were left out"


def _frames(arrays: dict[str, Any]) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    if "frames" not in arrays or "frame_offsets" not in arrays:
        return {}
    names = arrays.get("frame_names", arrays["names"]).tolist()
    offsets = arrays["frame_offsets"]
    return {
        name: (
            arrays["frames"][offsets[i] : offsets[i + 1]],
            arrays["frame_times"][offsets[i] : offsets[i + 1]],
        )
        for i, name in enumerate(names)
    }


def _by_root(tasks: list[Task]) -> dict[Path, list[Task]]:
    groups: dict[Path, list[Task]] = {}
    for task in tasks:
        groups.setdefault(task.root, []).append(task)
    return groups


def _summary(results: dict[str, Any]) -> dict[str, Any]:
    """The headline of each task, for the main results.json."""
    summary = {}
    for name, entry in results["tasks"].items():
        main = entry["main"]
        summary[name] = {main: {k: entry["metrics"][main][k] for k in ("mean", "std")}}
    return summary


def _task_signature(task: Task) -> str:
    digest = hashlib.sha256(f"{task.name}|{task.kind}|{task.root}".encode())
    for example in task.examples:
        target = example.target
        if isinstance(target, np.ndarray):
            target = hashlib.sha256(np.ascontiguousarray(target).tobytes()).hexdigest()
        digest.update(f"{example.name}|{example.split}|{target!r}\n".encode())
    return digest.hexdigest()


def _content_hash(path: Path) -> str | None:
    """The file's SHA-1, or None when it cannot be read (it will be reported when embedded).

    Remembered per (path, size, mtime) for the life of the process: one evaluation keys the
    source's and every baseline's embeddings on the same files.
    """
    try:
        stat = path.stat()
        return _remembered_hash(str(path), stat.st_size, stat.st_mtime_ns)
    except OSError:
        return None


@functools.cache
def _remembered_hash(path: str, size: int, mtime_ns: int) -> str:
    return _file_hash(Path(path), algorithm="sha1")


def _file_hash(path: Path, *, algorithm: str = "sha256") -> str:
    digest = hashlib.new(algorithm)
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _hash(value: Any) -> str:
    return hashlib.sha256(json.dumps(value, sort_keys=True, default=str).encode()).hexdigest()[:32]


def _write_json(path: Path, value: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.partial")
    temporary.write_text(json.dumps(value, indent=1))
    os.replace(temporary, path)


def _version() -> str:
    from musicssl import __version__

    return __version__
