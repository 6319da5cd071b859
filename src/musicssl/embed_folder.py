"""Embed every clip of an audio file, a folder, a manifest or a store into one ``.npz``.

``embed_files`` streams each file through a ``musicssl.embed.Model`` (memory bounded by the
window batch, not the track length), skips and reports bad files, and writes ``names`` and
``emb`` (``layer_K`` per layer with ``layers="all"``; frame tracks with ``frames``) whole or
not at all. ``embed_items`` does the same for any (name, blocks) pairs; the evaluation's
cache embeds through it.
"""

from __future__ import annotations

import os
import re
import sys
import zipfile
from collections.abc import Callable, Container, Iterable, Iterator, Sequence
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np

from musicssl import audio
from musicssl.checkpoint import checkpoint_folder
from musicssl.corpus import find_audio
from musicssl.decoder_notes import decoder_notes
from musicssl.embed import Model
from musicssl.errors import AudioError, MusicSSLError
from musicssl.files import atomic_path
from musicssl.huggingface import PREFIX, HuggingFaceModel
from musicssl.manifest import read_manifest, refuse_report
from musicssl.plural import counted
from musicssl.progress import bar as progress_bar
from musicssl.store import SampleStore


def embed_files(
    model: Model,
    source: str | os.PathLike,
    *,
    out: str | os.PathLike,
    hop: float | None = None,
    layers: str | int | None = None,
    frames: bool = False,
    batch_size: int = 16,
    progress: bool = True,
) -> dict[str, int]:
    """Embed one audio file, or every clip of a folder, a manifest (.jsonl) or a store, into
    ``out`` (.npz).

    ``names`` are paths relative to the folder (or as in the manifest / store; the file's
    name for one file). With
    ``frames``, ``frames`` (all tracks concatenated, shape (total_frames, channels)),
    ``frame_times`` (seconds) and ``frame_offsets`` (track i is rows offsets[i]:offsets[i+1])
    are added (with ``layers="all"`` also ``frames_layer_K``: layer K's frames averaged in
    time onto those rows), and ``encoder``, which weights made them (``Model.fingerprint``),
    for a model loaded from a checkpoint. Bad files are reported and skipped.

    Returns:
        ``{"embedded": n, "skipped": m}``.

    Raises:
        MusicSSLError: before any file is read, for a ``hop`` under one sample, a layer the
            encoder lacks, a ``batch_size`` under 1, or an ``out`` that is a folder or a file
            other than embeddings.
    """
    if isinstance(model, (str, os.PathLike)):
        raise MusicSSLError(f"model must be a loaded model, not the path {os.fspath(model)!r}: "
                            "musicssl.load(PATH) loads it")  # fmt: skip
    model.check_options(hop=hop, layers=layers, batch_size=batch_size, frames=frames)
    window = model.window_samples / model.sample_rate
    if hop is not None and hop > window:
        print(f"note: hop {hop:g} s is longer than the encoder's window ({window:.2f} s): "
              f"{hop - window:.2f} s after each window is not embedded", file=sys.stderr,
              flush=True)  # fmt: skip
    _check_out(Path(out))
    items = list(_items(Path(source), model.sample_rate))
    arrays, skipped = embed_items(
        model,
        items,
        hop=hop,
        layers=layers,
        frames_for=None if not frames else {name for name, _ in items},
        batch_size=batch_size,
        progress=progress,
    )
    if not len(arrays["names"]):
        if len(skipped) == 1:  # one file: its own reason
            raise MusicSSLError(f"nothing could be embedded: {skipped[0]}")
        if not skipped:
            raise MusicSSLError(f"{source}: no audio in it to embed")
        raise MusicSSLError(
            f"{source}: nothing could be embedded ({len(skipped)} bad files; the first: "
            f"{skipped[0]})"
        )
    # Which weights made them (empty for a model built without a checkpoint); it also marks
    # the file as one ``embed`` wrote and may replace.
    arrays["encoder"] = np.array(model.fingerprint or "")
    if model.checkpoint is not None:  # what evaluate checks the held-out files against
        arrays["checkpoint"] = np.array(str(checkpoint_folder(model.checkpoint).resolve()))
    if isinstance(model.encoder, HuggingFaceModel):  # whose random weights evaluate sets beside
        arrays["model"] = np.array(PREFIX + str(Path(model.encoder.path).resolve()))
    save_npz(Path(out), arrays)
    for line in skipped:
        print(f"skipped {line}")
    return {"embedded": len(arrays["names"]), "skipped": len(skipped)}


def file_items(
    root: str | os.PathLike, names: Iterable[str], *, sr: int
) -> list[tuple[str, Callable[[], Iterator[np.ndarray]]]]:
    """(name, blocks factory) for audio files named relative to ``root``, streamed at ``sr``."""
    folder = Path(root)
    return [(name, partial(audio.stream, folder / name, sr=sr)) for name in names]


def embed_items(
    model: Any,
    items: Sequence[tuple[str, Callable[[], Iterable[np.ndarray]]]],
    *,
    hop: float | None = None,
    layers: str | int | None = None,
    frames_for: Container[str] | None = None,
    batch_size: int = 16,
    progress: bool = True,
) -> tuple[dict[str, np.ndarray], list[str]]:
    """Embed named signals, each given as a factory of its blocks (see ``file_items``).

    ``model`` is a ``Model`` or anything with its ``embed_stream`` and ``layer_indices``
    (the baselines). Frame tracks are kept only for the names in ``frames_for``.

    Returns:
        The arrays of an embeddings ``.npz`` (``names``, ``emb``, ``layer_K``, and
        ``frame_names``, ``frames``, ``frame_times``, ``frame_offsets`` when frames were
        asked for; ``frames_layer_K``, rows as ``frames``, with both), and one "name:
        reason" line per file that could not be embedded.
    """
    names, clips, skipped = [], [], []
    per_layer: list[list[np.ndarray]] = []
    frame_names, tracks, times, offsets = [], [], [], [0]
    layer_tracks: list[list[np.ndarray]] = []  # per layer, with every layer and frames
    with decoder_notes() as notes:  # a decoder's notes would break the bar apart
        for name, blocks in progress_bar(items, unit="file", desc="embed",
                                         disable=not progress, file=notes.console):  # fmt: skip
            with_frames = frames_for is not None and name in frames_for
            try:
                result = model.embed_stream(
                    blocks(), hop=hop, layers=layers, frames=with_frames, batch_size=batch_size
                )
            except AudioError as error:
                skipped.append(f"{name}: {error.reason}")
                continue
            except MusicSSLError as error:
                skipped.append(f"{name}: {error}")
                continue
            names.append(name)
            clips.append(result.clip)
            if result.layers is not None:
                if not per_layer:
                    per_layer = [[] for _ in result.layers]
                for bucket, vector in zip(per_layer, result.layers):
                    bucket.append(vector)
            if with_frames:
                frame_names.append(name)
                tracks.append(result.frames)
                times.append(result.times)
                offsets.append(offsets[-1] + len(result.frames))
                for index, track in enumerate(result.layer_frames or []):
                    if index == len(layer_tracks):
                        layer_tracks.append([])
                    layer_tracks[index].append(track)
    if notes.lines:
        print(f"decoders printed {counted(len(notes.lines), 'note')} (the files they could "
              f"not read are named below), e.g. {notes.lines[0]!r}", file=sys.stderr)  # fmt: skip
    arrays: dict[str, np.ndarray] = {
        "names": np.array(names, dtype=str),
        "emb": np.stack(clips) if clips else np.zeros((0, 0), np.float32),
    }
    for index, bucket in zip(model.layer_indices(layers), per_layer):
        arrays[f"layer_{index}"] = np.stack(bucket)
    if frames_for is not None:
        arrays["frame_names"] = np.array(frame_names, dtype=str)
        arrays["frames"] = np.concatenate(tracks) if tracks else np.zeros((0, 0), np.float32)
        arrays["frame_times"] = np.concatenate(times) if times else np.zeros(0)
        arrays["frame_offsets"] = np.asarray(offsets, dtype=np.int64)
        for index, kept in zip(model.layer_indices(layers), layer_tracks):
            arrays[f"frames_layer_{index}"] = np.concatenate(kept)
    return arrays, skipped


def _items(source: Path, sr: int):
    """(name, blocks factory) per clip of a folder, manifest or store."""
    if (source / "store.json").is_file():
        store = SampleStore(source)
        if store.sr != sr:
            raise MusicSSLError(f"{source}: store at {store.sr} Hz, the encoder needs {sr} Hz")
        for index, row in enumerate(store.rows):
            yield row["path"], (lambda index=index: iter([store.clip(index)]))
    elif source.is_dir():
        for path in sorted(find_audio(source)):
            name = path.relative_to(source).as_posix()
            yield name, (lambda path=path: audio.stream(path, sr=sr))
    elif source.suffix == ".jsonl":
        rows = read_manifest(source)
        refuse_report(source, rows)
        for row in rows:
            yield row["path"], (lambda row=row: audio.stream(row["abspath"], sr=sr))
    elif source.is_file() and audio.is_audio_path(source):
        yield source.name, (lambda: audio.stream(source, sr=sr))
    else:
        raise MusicSSLError(
            f"{source}: expected an audio file, a folder of audio, a manifest (.jsonl) or a store"
        )


def save_npz(path: Path, arrays: dict[str, np.ndarray]) -> None:
    """Write an ``.npz`` whole or not at all (``musicssl.files.atomic_path``)."""
    with atomic_path(path) as temporary, open(temporary, "wb") as handle:
        # To a handle: numpy adds no ".npz" to the temporary name.
        np.savez(handle, **arrays)  # type: ignore[arg-type]


def _check_out(out: Path) -> None:
    """Refuse an ``out`` that is a folder, a symbolic link, or a file that is not an
    ``.npz`` of ``musicssl embed``."""
    if out.is_symlink():
        # Writing replaces the path whole, so the user's link itself would be replaced.
        target = "a missing file" if not out.exists() else "another path"
        raise MusicSSLError(
            f"{out}: is a symbolic link (to {target}); --out names a plain .npz file to write"
        )
    if out.is_dir():
        raise MusicSSLError(f"{out}: is a folder; --out names the .npz file to write")
    if out.exists() and not _is_embeddings(out):
        raise MusicSSLError(
            f"{out}: exists and is not one musicssl embed wrote; choose another --out"
        )


# What ``embed`` writes: an .npz holding anything else was not written by it.
_OURS = re.compile(
    r"(names|emb|encoder|checkpoint|model|layer_\d+|frame_names|frames|frames_layer_\d+"
    r"|frame_times|frame_offsets)\.npy"
)


def _is_embeddings(path: Path) -> bool:
    """Whether ``path`` is an ``.npz`` as ``embed`` writes it: ``names``, ``emb``, its
    ``encoder`` mark, and nothing but its other arrays (another system's embeddings, which
    have no mark, and a user's .npz with more in it are not replaced)."""
    try:
        with zipfile.ZipFile(path) as archive:
            members = set(archive.namelist())
    except (OSError, zipfile.BadZipFile):
        return False
    return {"names.npy", "emb.npy", "encoder.npy"} <= members and all(map(_OURS.fullmatch, members))
