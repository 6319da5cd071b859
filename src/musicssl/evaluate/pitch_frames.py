"""The frame-level inputs of a pitch task: each voiced f0 value paired with the frame over it.

A pitch task's example holds an f0 track (Hz, 0 where unvoiced, one value per ``Task.f0_hop``
seconds); the embedder gives each clip a matrix of frame features and their centre times.
``voiced_frames`` pairs each voiced f0 value with the frame whose centre is nearest it, and
caps how many the probe trains and selects on. The rows are the reference's, on its own grid
(as ``mir_eval.melody`` scores an estimate on the reference's times), so every system is
scored on the same test rows whatever its frame rate: an encoder of coarse frames answers for
every f0 value its frames span, a change of note inside one included.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from musicssl.errors import MusicSSLError
from musicssl.evaluate.task import PROBE_SPLITS, Task, check_names

# Frame-level tasks have far more rows than clips; the probe sees at most this many voiced
# frames of train (and of valid, for model selection), drawn without replacement with seed 0.
# Test frames are all kept.
MAX_FRAMES = 6000


@dataclass
class VoicedFrames:
    """The voiced f0 values of a pitch task with their frames' features, per split.

    ``f0[split]`` has shape (num_values,), in Hz, all positive. ``x[split]`` has shape
    (num_values, dim), float32, one row per value, for train and valid; for test it holds
    each frame once, and ``test_rows`` (num_values,) names the frame of each test value (a
    long frame answers for many values: its features are not copied for each). ``resample(rng)``
    draws the test values of one bootstrap resample.
    """

    x: dict[str, np.ndarray]
    f0: dict[str, np.ndarray]
    notes: list[str]
    split_sizes: dict[str, int]
    resample: Callable[[np.random.Generator], np.ndarray]
    test_rows: np.ndarray


def voiced_frames(
    task: Task, frames: Mapping[str, tuple[np.ndarray, np.ndarray]] | None
) -> VoicedFrames:
    """The voiced f0 values of every clip of a pitch task, each with the frame nearest it.

    An f0 value further from every frame centre than the track's median frame spacing (a
    track that stops short of the clip) has no frame, and is left out. Train and valid keep at
    most ``MAX_FRAMES`` rows each (a seeded random subset, said in ``notes``); test keeps all
    of them, and is resampled by clip.

    Args:
        task: a pitch task; each example's target is its f0 track.
        frames: per name, (features of shape (num_frames, dim), frame centre times in seconds
            of shape (num_frames,)).

    Raises:
        MusicSSLError: no frames given, a missing or malformed clip, NaN in an f0 track, a
            split without voiced f0 values.
    """
    if frames is None:
        raise MusicSSLError(f"task {task.name}: a pitch task needs frame embeddings (frames=)")
    check_names(task, list(frames), source="frame embeddings")
    hop = float(task.f0_hop or 0.0)
    dim = None
    x, f0, rows, available = {}, {}, {}, {}
    test_clip: np.ndarray = np.zeros(0, dtype=np.int64)  # the test clip of each test value
    for split in PROBE_SPLITS:
        tracks, rows_f0, rows_frame, rows_clip, first = [], [], [], [], 0
        for number, example in enumerate(task.split(split)):
            features, times = _frame_track(frames, example.name)
            dim = check_features(features, what=f"frame embeddings: {example.name}", dim=dim)
            reference = np.asarray(example.target, dtype=np.float64).reshape(-1)
            if not np.isfinite(reference).all():
                raise MusicSSLError(f"task {task.name}: {example.name}: f0 contains NaN")
            voiced = np.flatnonzero(reference > 0)
            frame, covered = nearest_frames(times, voiced * hop)
            tracks.append(features)
            rows_frame.append(first + frame[covered])  # into this split's frames
            rows_f0.append(reference[voiced[covered]])
            rows_clip.append(np.full(int(covered.sum()), number))
            first += len(features)
        x[split] = np.concatenate(tracks).astype(np.float32)
        rows[split], f0[split] = np.concatenate(rows_frame), np.concatenate(rows_f0)
        if split == "test":
            test_clip = np.concatenate(rows_clip)
        available[split] = len(f0[split])
        if available[split] == 0:
            raise MusicSSLError(f"task {task.name}: no voiced f0 values in the {split} split")
    notes = []
    for split in ("train", "valid"):  # one row per value, at most MAX_FRAMES of them
        if available[split] > MAX_FRAMES:
            keep = np.sort(
                np.random.default_rng(0).choice(available[split], MAX_FRAMES, replace=False)
            )
            rows[split], f0[split] = rows[split][keep], f0[split][keep]
            notes.append(
                f"{split}: the probe used {MAX_FRAMES} of {available[split]} voiced f0 values "
                "(a seeded random subset)"
            )
        x[split] = x[split][rows[split]]

    num_test_clips = len(task.split("test"))
    frames_of_clip = [np.flatnonzero(test_clip == c) for c in range(num_test_clips)]

    def resample(rng: np.random.Generator) -> np.ndarray:
        # Frames of one clip are not independent: resample clips, keep their frames.
        picked = rng.integers(0, num_test_clips, num_test_clips)
        return np.concatenate([frames_of_clip[c] for c in picked])

    sizes = {s: len(task.split(s)) for s in PROBE_SPLITS}
    sizes.update({f"frames_{s}": len(f0[s]) for s in PROBE_SPLITS})
    return VoicedFrames(x, f0, notes, sizes, resample, test_rows=rows["test"])


def nearest_frames(times: np.ndarray, points: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The index of the frame centred nearest each point (seconds), and whether it is within
    the track's median frame spacing of it (a track of one frame covers every point).

    Shapes: times (num_frames,), points (num_points,) -> (num_points,) each.
    """
    if len(times) == 0:
        return np.zeros(len(points), dtype=np.int64), np.zeros(len(points), dtype=bool)
    order = np.argsort(times, kind="stable")
    ordered = times[order]
    after = np.minimum(np.searchsorted(ordered, points), len(ordered) - 1)
    before = np.maximum(after - 1, 0)
    # A point halfway between two frames is the later one's (a frame spans [c - h/2, c + h/2)).
    later = np.abs(ordered[after] - points) <= np.abs(ordered[before] - points) + 1e-9
    pick = np.where(later, after, before)
    spacing = float(np.median(np.diff(ordered))) if len(ordered) > 1 else np.inf
    return order[pick], np.abs(ordered[pick] - points) <= spacing + 1e-9


def check_features(array: np.ndarray, *, what: str, dim: int | None) -> int:
    """Check a clip vector or a frame matrix: finite numbers, last axis ``dim`` (any if None).

    Returns the size of the last axis; ``what`` names the array in the error.
    """
    if array.ndim == 0 or (dim is not None and array.shape[-1] != dim):
        raise MusicSSLError(f"{what}: shape {array.shape}, expected last axis {dim}")
    if not np.issubdtype(array.dtype, np.number) or not np.isfinite(array).all():
        raise MusicSSLError(f"{what}: contains NaN, infinity or non-numbers")
    return array.shape[-1]


def _frame_track(frames: Mapping[str, Any], name: str) -> tuple[np.ndarray, np.ndarray]:
    try:
        features, times = frames[name]
    except (TypeError, ValueError):
        raise MusicSSLError(f"frame embeddings: {name} must be a pair (features, times)") from None
    features, times = np.asarray(features), np.asarray(times, dtype=np.float64)
    if features.ndim != 2 or times.shape != (len(features),):
        raise MusicSSLError(
            f"frame embeddings: {name}: features {features.shape} and times {times.shape} "
            "must be (num_frames, dim) and (num_frames,)"
        )
    if not np.isfinite(times).all():
        raise MusicSSLError(f"frame embeddings: {name}: frame times contain NaN")
    return features, times
