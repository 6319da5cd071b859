"""How far an encoder's clip embedding moves under pitch shifts and time stretches.

For each transform ``T`` of known size: the mean cosine distance between the embeddings of
a clip and of ``T`` applied to it, over the mean distance between the embeddings of two
different clips, and the invariance score ``1 - d(x, T x) / d(x, y)``: 1 when the
embedding ignores the transform, 0 when the transform moves it as far as another clip
would, below 0 when further. Pitch shifts are tape-style (the waveform resampled, so tempo
moves with pitch); time stretches keep pitch (a WSOLA pitch shift undone by a tape shift).
An encoder meant to be invariant (a tagging embedding) should score near 1; an equivariant
one (a pitch or tempo output) should not.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from musicssl.augment.pitch import tape_pitch_shift, wsola_pitch_shift
from musicssl.errors import MusicSSLError

__all__ = ["TRANSFORMS", "equivariance_probe", "equivariance_scores"]


def _tape(semitones: float) -> Callable[[Tensor, int], Tensor]:
    def apply(x: Tensor, sr: int) -> Tensor:
        ratio = torch.full((x.shape[0],), 2.0 ** (semitones / 12))
        return tape_pitch_shift(x, ratio, max_ratio=2.0 ** (abs(semitones) / 12) + 1e-6)

    return apply


def _stretch(semitones: float) -> Callable[[Tensor, int], Tensor]:
    """Tempo times ``2 ** (-semitones / 12)``, pitch kept."""

    def apply(x: Tensor, sr: int) -> Tensor:
        ratio = torch.full((x.shape[0],), 2.0 ** (semitones / 12))
        max_ratio = 2.0 ** (abs(semitones) / 12) + 1e-6
        raised = wsola_pitch_shift(x, ratio, hop=round(0.07 * sr), overlap=round(0.012 * sr),
                                   search=round(0.007 * sr), max_ratio=max_ratio)  # fmt: skip
        return tape_pitch_shift(raised, 1 / ratio, max_ratio=max_ratio)

    return apply


# Name -> transform of a batch of waveforms (batch_size, num_samples) at sr.
TRANSFORMS: dict[str, Callable[[Tensor, int], Tensor]] = {
    "pitch -2 st": _tape(-2.0),
    "pitch -1 st": _tape(-1.0),
    "pitch +1 st": _tape(1.0),
    "pitch +2 st": _tape(2.0),
    "tempo x0.94": _stretch(1.0),
    "tempo x1.06": _stretch(-1.0),
}


def equivariance_scores(
    embed: Callable[[np.ndarray], np.ndarray],
    clips: Sequence[np.ndarray],
    *,
    sr: int,
    transforms: dict[str, Callable[[Tensor, int], Tensor]] | None = None,
    length: int | None = None,
) -> dict[str, dict[str, float]]:
    """Invariance score and distances of every transform.

    Args:
        embed: a mono float32 signal at ``sr`` -> its clip embedding, shape (dim,).
        clips: two or more mono float32 signals at ``sr``, each shape (num_samples,).
        sr: their sample rate.
        transforms: name -> transform (default ``TRANSFORMS``).
        length: embed the first ``length`` samples of each clip and of each transformed
            clip (None: all of them). A clip longer than that lets a transform that shortens
            audio (a pitch raised on tape) fill the length with music, not silence.

    Returns:
        ``{name: {"invariance", "distance", "between_clips"}}``: ``1 - d(x, T x) / d(x, y)``,
        the mean ``d(x, T x)`` and the mean ``d(x, y)`` over pairs of different clips
        (cosine distances).

    Raises:
        MusicSSLError: fewer than two clips, or clips whose embeddings are all the same.
    """
    if len(clips) < 2:
        raise MusicSSLError(f"equivariance: needs at least two clips, got {len(clips)}")
    transforms = TRANSFORMS if transforms is None else transforms
    base = _unit(np.stack([embed(clip[:length]) for clip in clips]))
    similarity = base @ base.T
    between = float(1.0 - similarity[~np.eye(len(clips), dtype=bool)].mean())
    if between <= 1e-9:
        raise MusicSSLError("equivariance: every clip has the same embedding")
    scores = {}
    for name, transform in transforms.items():
        moved = []
        for clip in clips:
            with torch.no_grad():
                changed = transform(torch.from_numpy(np.ascontiguousarray(clip))[None], sr)[0]
            moved.append(embed(changed[:length].numpy().astype(np.float32)))
        distance = float(1.0 - (base * _unit(np.stack(moved))).sum(1).mean())
        scores[name] = {
            "invariance": 1.0 - distance / between,
            "distance": distance,
            "between_clips": between,
        }
    return scores


def _unit(vectors: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    return vectors / np.maximum(norms, 1e-12)


def equivariance_probe(
    model: object, corpus: str | os.PathLike, *, num_clips: int = 8
) -> dict[str, dict[str, float]] | None:
    """``equivariance_scores`` of a model's clip embeddings on the corpus's first test clips,
    each embedded over the model's window (one window per clip keeps the probe to seconds),
    read a quarter longer so that a transform has music to fill the window with.

    Args:
        model: a ``musicssl.embed.Model`` (``embed(signal, sr).clip``, ``sample_rate``,
            ``window_samples``).
        corpus: a corpus folder with ``manifest.jsonl`` (clips with a ``split``).
        num_clips: test clips used, in manifest order.

    Returns:
        The scores, or None when the corpus has fewer than two readable test clips.
    """
    from musicssl import audio
    from musicssl.errors import AudioError
    from musicssl.manifest import read_manifest

    folder = Path(corpus)
    rows = [row for row in read_manifest(folder / "manifest.jsonl") if row.get("split") == "test"]
    sr = int(model.sample_rate)  # type: ignore[attr-defined]
    window = int(model.window_samples)  # type: ignore[attr-defined]
    seconds = 1.25 * window / sr  # above the largest ratio, 2 ** (2 / 12) = 1.12
    clips: list[np.ndarray] = []
    for row in rows:
        if len(clips) == num_clips:
            break
        try:
            clips.append(audio.load(row["abspath"], sr=sr, duration=seconds))
        except AudioError:
            continue
    if len(clips) < 2:
        return None
    embed = model.embed  # type: ignore[attr-defined]
    return equivariance_scores(lambda signal: embed(signal, sr).clip, clips, sr=sr, length=window)
