"""The evaluation cache: embeddings, and the results of baselines, computed once.

Embeddings are keyed by what produced them (the source's identity: the weights' hash or the
baseline's settings) and what they cover (each file's name and the hash of its bytes), so a
second evaluation only fits probes, and an edited or replaced file is embedded again. A
baseline's results are keyed by its identity, the tasks (every example and target), the seeds
and ``PROTOCOL_VERSION``, so the report sets a checkpoint beside them without recomputing them.

Layout::

    embeddings/<key>.npz    the arrays of ``musicssl.embed_folder.embed_items`` plus ``skipped``
    results/<key>.json      an ``Evaluation`` as ``results.json`` holds it
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import zipfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from musicssl.errors import MusicSSLError
from musicssl.evaluate.results import PROTOCOL_VERSION, Evaluation
from musicssl.evaluate.sources import Embedded, Source
from musicssl.evaluate.task import Task
from musicssl.files import atomic_path, file_hash, write_text
from musicssl.plural import counted


def default_cache() -> Path:
    """Where the cache lives: ``$MUSICSSL_CACHE`` or ``~/.cache/musicssl``."""
    return Path(os.environ.get("MUSICSSL_CACHE", "~/.cache/musicssl")).expanduser()


class EvaluationCache:
    """Embeddings and baseline results under one folder.

    Args:
        folder: the cache folder (created on first write).
    """

    def __init__(self, folder: str | os.PathLike) -> None:
        self.folder = Path(folder)

    def embeddings(
        self, source: Source, tasks: Sequence[Task], *, layers: str | None, progress: bool
    ) -> Embedded:
        """The embeddings of every file of ``tasks`` (which share one root), cached.

        Frame tracks are kept for the files of pitch tasks only (every layer's with
        ``layers="all"``).
        """
        assert len({task.root for task in tasks}) == 1
        root = tasks[0].root
        names = list(dict.fromkeys(name for task in tasks for name in task.names))
        if source.embedded is not None:
            return source.embedded.rooted(root, names)
        from musicssl.embed_folder import embed_items, file_items

        assert source.model is not None
        frame_names = sorted({n for task in tasks if task.kind == "pitch" for n in task.names})
        key = cache_key(
            {
                "identity": source.identity,
                "files": [[name, content_hash(Path(root) / name)] for name in names],
                "frames": frame_names,
                "layers": layers,
                "protocol": PROTOCOL_VERSION,
                # 2: with every layer, the pitch files' frame tracks of every layer too
                "format": 2,
            }
        )
        path = self.folder / "embeddings" / f"{key}.npz"
        cached = _read_cached(path)
        if cached is not None:
            if progress:
                print(
                    f"embed: {counted(len(names), 'file')} read from the cache ({path})", flush=True
                )
            for line in cached.skipped:  # said again: a second evaluation hides no bad file
                print(f"skipped {line}", flush=True)
            return cached
        items = file_items(root, names, sr=source.model.sample_rate)
        arrays, skipped = embed_items(
            source.model,
            items,
            layers=layers,
            frames_for=set(frame_names),
            progress=progress,
        )
        self._write_npz(path, {**arrays, "skipped": np.array(skipped, dtype=str)})
        for line in skipped:
            print(f"skipped {line}", flush=True)
        return Embedded(arrays, list(skipped))

    def results(self, key: str) -> Evaluation | None:
        """The cached results under ``key``; None when absent or unreadable."""
        path = self.folder / "results" / f"{key}.json"
        try:
            return Evaluation.from_dict(json.loads(path.read_text(encoding="utf-8")))
        except (OSError, ValueError, KeyError, TypeError):
            return None

    def store_results(self, key: str, evaluation: Evaluation) -> None:
        """Keep ``evaluation`` under ``key``, written whole."""
        path = self.folder / "results" / f"{key}.json"
        self._writable(path.parent)
        write_text(path, json.dumps(evaluation.to_dict(), indent=1))

    def _write_npz(self, path: Path, arrays: dict[str, np.ndarray]) -> None:
        self._writable(path.parent)
        with atomic_path(path) as temporary:
            np.savez(temporary, **arrays)  # type: ignore[arg-type]  # numpy's stub: allow_pickle

    def _writable(self, folder: Path) -> None:
        try:
            folder.mkdir(parents=True, exist_ok=True)
        except OSError as error:
            raise MusicSSLError(
                f"{folder}: cannot write the evaluation cache ({error.strerror}); "
                "choose another --cache"
            ) from None


def _read_cached(path: Path) -> Embedded | None:
    """The embeddings cached at ``path``; None when absent, or unreadable (embedded again)."""
    try:
        with np.load(path, allow_pickle=False) as data:
            arrays = {name: data[name] for name in data.files}
        skipped = [str(line) for line in arrays.pop("skipped").tolist()]
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile):
        return None
    return Embedded(arrays, skipped)


def results_key(
    source: Source, tasks: Sequence[Task], *, seeds: int, layers: str | None = None
) -> str:
    """The cache key of a source's results on ``tasks`` with ``seeds`` seeds (and ``layers``)."""
    fields = {
        "identity": source.identity,
        "tasks": [task_signature(task) for task in tasks],
        "seeds": seeds,
        "protocol": PROTOCOL_VERSION,
        "std": "sample",  # results from before held the population std over seeds
    }
    if layers is not None:  # results of the last layer alone keep their key
        fields["layers"] = layers
        fields["weighted_sum"] = True  # results from before it lack the weighted sum
    return cache_key(fields)


def task_signature(task: Task) -> str:
    """A digest of a task's name, kind, root and every example with its target."""
    digest = hashlib.sha256(f"{task.name}|{task.kind}|{task.root}".encode())
    for example in task.examples:
        target = example.target
        if isinstance(target, np.ndarray):
            target = hashlib.sha256(np.ascontiguousarray(target).tobytes()).hexdigest()
        digest.update(f"{example.name}|{example.split}|{target!r}\n".encode())
    return digest.hexdigest()


def content_hash(path: Path) -> str | None:
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
    return file_hash(Path(path), algorithm="sha1")


def cache_key(value: Any) -> str:
    """A short digest of a JSON-able value (keys sorted)."""
    return hashlib.sha256(json.dumps(value, sort_keys=True, default=str).encode()).hexdigest()[:32]
