"""Rows of a built-in corpus's manifest as the evaluation tasks read them: checked fields,
the transfer renders' paths made relative to the corpus, audio names, f0 tracks."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from musicssl.errors import MusicSSLError
from musicssl.evaluate.task import PROBE_SPLITS
from musicssl.manifest import read_manifest

MANIFEST = "manifest.jsonl"
AUDIO = "audio"
TRANSFER = "transfer"  # the corpus's folder of transfer renders (builtin.transfer.FOLDER)


def read_rows(
    corpus_dir: Path, task: str, fields: Sequence[str], *, transfer: bool = False
) -> tuple[list[dict], Path]:
    """The manifest's rows, checked for the fields every task needs and ``fields``.

    With ``transfer``, the test rows are those of the transfer renders, their ``path`` and
    ``f0`` made relative to ``corpus_dir`` (``audio/../transfer/audio/<clip_id>.wav``).
    """
    manifest = Path(corpus_dir) / MANIFEST
    if not manifest.is_file():
        raise MusicSSLError(
            f"{manifest}: no such manifest; the {task} task needs a built-in corpus "
            "(musicssl corpus build --out DIR)"
        )
    rows = read_manifest(manifest)
    if transfer:
        rows = [row for row in rows if row.get("split") != "test"] + transfer_rows(corpus_dir)
    if not rows:
        raise MusicSSLError(f"{manifest}: the manifest is empty")
    for number, row in enumerate(rows, start=1):
        for key in ("clip_id", "split", *fields):
            if row.get(key) is None:
                raise MusicSSLError(
                    f"{manifest}:{number}: no {key!r} in the row; the {task} task needs it"
                )
        if row["split"] not in PROBE_SPLITS:
            raise MusicSSLError(
                f"{manifest}:{number}: split {row['split']!r} is not one of {PROBE_SPLITS}"
            )
    return rows, manifest


def transfer_rows(corpus_dir: Path) -> list[dict]:
    """The rows of the transfer renders, their paths relative to the corpus folder."""
    manifest = Path(corpus_dir) / TRANSFER / MANIFEST
    if not manifest.is_file():
        raise MusicSSLError(
            f"{manifest}: no transfer renders; the @transfer tasks need a corpus built by "
            "this version (musicssl corpus build --out DIR)"
        )
    rows = read_manifest(manifest)
    for row in rows:
        row["path"] = f"{AUDIO}/../{TRANSFER}/{row['path']}"
        if row.get("f0"):
            row["f0"] = f"{TRANSFER}/{row['f0']}"
    return rows


def audio_root(corpus_dir: Path) -> Path:
    """The folder every built-in task's names are relative to."""
    return Path(corpus_dir) / AUDIO


def clip_name(row: dict[str, Any], manifest: Path) -> str:
    """The clip's audio path relative to the audio folder; the file must exist."""
    path = str(row["path"])
    prefix = f"{AUDIO}/"
    if not path.startswith(prefix):
        raise MusicSSLError(
            f"{manifest}: clip {row['clip_id']} has path {path!r}, not under {prefix}"
        )
    if not Path(row["abspath"]).is_file():
        raise MusicSSLError(f"{manifest}: clip {row['clip_id']}: no audio file {row['abspath']}")
    return path[len(prefix) :]


def f0_track(corpus_dir: Path, row: dict[str, Any]) -> np.ndarray:
    """The clip's f0 track in Hz. Shape: (num_frames,), float32, 0 where unvoiced."""
    path = Path(corpus_dir) / row["f0"]
    try:
        f0 = np.load(path)
    except (OSError, ValueError) as error:
        raise MusicSSLError(f"{path}: cannot read the f0 track ({error})") from None
    if f0.ndim != 1 or not np.all(np.isfinite(f0)) or np.any(f0 < 0):
        raise MusicSSLError(f"{path}: an f0 track must be 1-D, finite and >= 0 (shape {f0.shape})")
    return f0.astype(np.float32, copy=False)


def test_rows(rows: list[dict], manifest: Path, task: str) -> list[dict]:
    """The rows of split ``test``; a task without any is refused."""
    test = [row for row in rows if row["split"] == "test"]
    if not test:
        raise MusicSSLError(f"{manifest}: no clip has split 'test'; the {task} task needs some")
    return test
