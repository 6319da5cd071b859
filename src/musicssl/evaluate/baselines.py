"""Baselines an encoder must beat: hand-made features and an untrained encoder.

``build_baseline(name)`` returns an object with the interface of ``musicssl.embed.Model``
(``sample_rate``, ``embed``, ``embed_stream``, ``layer_indices``) plus ``config()``, a JSON
description that names the features exactly (for the embedding cache):

- ``mfcc``: 20 MFCCs and their deltas every 10 ms (64 ms windows); the clip vector is the
  mean and the standard deviation of each over the whole file (80 numbers).
- ``logmel``: the 128-band log-mel spectrum per 10 ms frame; mean and std (256 numbers).
- ``tempogram``: an autocorrelation tempogram of the onset strength, log-spaced tempo bins;
  the mean per bin and the strongest tempo (98 numbers; ``evaluate.tempogram``).
- ``random``: an encoder with random weights (fixed seed): the architecture of a reference
  checkpoint or ``hf:FOLDER``, or the CPU-size CLMR SampleCNN. What it scores is what the
  architecture and the probe give without any training.

The features are computed as the audio streams in: memory is bounded by a block of frames, not
by the length of the file, and the frames do not depend on how the signal is cut into blocks.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Iterable, Iterator
from typing import Any

import numpy as np
import torch
from numpy.lib.stride_tricks import sliding_window_view
from torch import Tensor

from musicssl import checkpoint
from musicssl.embed import DEFAULT_READOUT, Embeddings, Model
from musicssl.encoders import Encoder, build_encoder
from musicssl.errors import MusicSSLError
from musicssl.evaluate.tempogram import TempogramBaseline
from musicssl.features import LogMel
from musicssl.huggingface import HUGGINGFACE, PREFIX, is_huggingface, load_huggingface
from musicssl.recipe import Recipe, recipe_path
from musicssl.waveform import mono_at

__all__ = [
    "BASELINES",
    "FEATURE_VERSION",
    "FeatureBaseline",
    "RandomEncoder",
    "TempogramBaseline",
    "build_baseline",
    "default_encoder",
    "dct_matrix",
]

BASELINES = ("mfcc", "logmel", "tempogram", "random")
# Bump when the features of a baseline change, so that cached embeddings are recomputed.
FEATURE_VERSION = 1

# The random-weights baseline's default architecture: the demo recipe's encoder.
_DEFAULT_RECIPE = recipe_path("simclr-key-tempo-cpu")  # the demo's (musicssl.demo)
# Frames handed to the FFT at once: bounds memory whatever the block size (2048 x 1024 floats).
_MAX_FRAMES = 2048


def build_baseline(
    name: str,
    *,
    reference: str | os.PathLike | None = None,
    device: str | torch.device = "cpu",
    readout: str = DEFAULT_READOUT,
) -> FeatureBaseline | TempogramBaseline | RandomEncoder:
    """The baseline ``name`` (one of ``BASELINES``).

    Args:
        name: "mfcc", "logmel", "tempogram" or "random".
        reference: for "random", a checkpoint folder (or run folder, or ``hf:FOLDER``) whose
            architecture to rebuild; None uses the demo recipe's encoder. Ignored by the
            other baselines.
        device: where to compute.
        readout: for "random", the layers' read-out (``musicssl.embed.Model``).

    Raises:
        MusicSSLError: unknown name, or a reference that is not a checkpoint.
    """
    if name in ("mfcc", "logmel"):
        return FeatureBaseline(name, device=device)
    if name == "tempogram":
        return TempogramBaseline(device=device)
    if name == "random":
        spec: dict[str, Any]
        if is_huggingface(reference):
            spec = {"name": HUGGINGFACE, "options": {"path": str(reference).removeprefix(PREFIX)}}
        elif reference is None:
            spec = default_encoder()
        else:
            spec = checkpoint.encoder_spec(reference)
        return RandomEncoder(spec["name"], spec["options"], device=device, readout=readout)
    raise MusicSSLError(f"unknown baseline {name!r}; valid names: {', '.join(BASELINES)}")


class FeatureBaseline:
    """Log-mel or MFCC frames, pooled to their mean and standard deviation over the file.

    Frames follow ``musicssl.features.LogMel``: Hann window of ``n_fft`` samples centred on
    every ``hop_length``-th sample, zero padding at both ends, power spectrum, slaney mel
    filters, decibels. MFCCs are the orthonormal DCT-II of the log-mel frame (so c0 is
    ``sqrt(n_mels)`` times its mean, in dB); deltas are ``(c[t+1] - c[t-1]) / 2``, the end
    frames repeated.

    Args:
        kind: "mfcc" or "logmel".
        device: where to compute.
        sample_rate: rate of the input in Hz.
        n_fft: analysis window and FFT size in samples (64 ms at 16 kHz).
        hop_length: samples between frames (10 ms at 16 kHz).
        n_mels: mel bands.
        n_mfcc: cepstral coefficients kept (c0 included).
    """

    def __init__(
        self,
        kind: str,
        *,
        device: str | torch.device = "cpu",
        sample_rate: int = 16000,
        n_fft: int = 1024,
        hop_length: int = 160,
        n_mels: int = 128,
        n_mfcc: int = 20,
    ) -> None:
        if kind not in ("mfcc", "logmel"):
            raise MusicSSLError(f"FeatureBaseline: kind must be 'mfcc' or 'logmel', got {kind!r}")
        self.kind = kind
        self.device = torch.device(device)
        self.sample_rate = sample_rate
        self.hop_length = hop_length
        self.n_mfcc = n_mfcc
        self.logmel = LogMel(sr=sample_rate, n_fft=n_fft, hop_length=hop_length, n_mels=n_mels)
        self.logmel.to(self.device)
        self.dct = dct_matrix(n_mels, n_mfcc).to(self.device)
        self.frame_dim = 2 * n_mfcc if kind == "mfcc" else n_mels
        self.embedding_dim = 2 * self.frame_dim
        self.num_layers = 1

    def config(self) -> dict[str, Any]:
        """What the features depend on, as plain JSON values."""
        settings: dict[str, Any] = {
            "baseline": self.kind,
            "version": FEATURE_VERSION,
            "sample_rate": self.sample_rate,
            "n_fft": self.logmel.n_fft,
            "hop_length": self.hop_length,
            "n_mels": self.logmel.n_mels,
            "mel_scale": "slaney",
            "amin": self.logmel.amin,
        }
        if self.kind == "mfcc":
            settings.update(n_mfcc=self.n_mfcc, deltas=True)
        return settings

    def layer_indices(self, layers: str | int | None) -> list[int]:
        """The one "layer" of a baseline: [0] for "all", 0 or -1; [] for None."""
        if layers is None:
            return []
        if layers in ("all", 0, -1, "0", "-1"):
            return [0]
        raise MusicSSLError(f"layer {layers} out of range: the {self.kind} baseline has 1")

    def embed(
        self,
        waveform: np.ndarray | Tensor,
        sr: int,
        *,
        hop: float | None = None,
        layers: str | int | None = None,
        frames: bool = False,
        batch_size: int = 16,
    ) -> Embeddings:
        """Features of one mono signal of any length and rate (resampled to ``sample_rate``).

        Args:
            waveform: Shape: (num_samples,), float.
            sr: its sample rate in Hz.
            hop, batch_size: accepted for ``Model``'s interface; frames are always 10 ms apart.
            layers: None, or "all" / 0 to also return the clip vector as the one layer.
            frames: also return the frame features and their centre times.
        """
        signal = mono_at(waveform, sr, target_sr=self.sample_rate)
        return self.embed_stream(iter([signal]), layers=layers, frames=frames)

    @torch.no_grad()
    def embed_stream(
        self,
        blocks: Iterable[np.ndarray],
        *,
        hop: float | None = None,
        layers: str | int | None = None,
        frames: bool = False,
        batch_size: int = 16,
    ) -> Embeddings:
        """Like ``embed``, over consecutive blocks of one signal already at ``sample_rate``.

        Returns:
            ``clip``: Shape: (2 * frame_dim,), the mean then the std of each feature.
            With ``frames``: ``frames`` Shape: (num_frames, frame_dim), num_frames =
            1 + num_samples // hop_length, and ``times`` (seconds) Shape: (num_frames,).
        """
        want_layers = bool(self.layer_indices(layers))
        stats = _RunningMoments()
        tracks = []
        cut = _frames(blocks, n_fft=self.logmel.n_fft, hop=self.hop_length)
        spectra = (self._log_mel(chunk) for chunk in cut)  # (num_frames, n_mels) each
        if self.kind == "mfcc":
            chunks = _with_deltas((s @ self.dct.T).cpu().numpy() for s in spectra)
        else:
            chunks = (s.cpu().numpy() for s in spectra)
        for chunk in chunks:
            stats.update(chunk)
            if frames:
                tracks.append(chunk.astype(np.float32))
        if stats.count == 0:
            raise MusicSSLError("no audio to embed (empty signal)")
        clip = np.concatenate([stats.mean, stats.std]).astype(np.float32)
        result = Embeddings(clip=clip, layers=[clip] if want_layers else None)
        if frames:
            result.frames = np.concatenate(tracks)
            result.times = np.arange(len(result.frames)) * (self.hop_length / self.sample_rate)
        return result

    def _log_mel(self, frames: np.ndarray) -> Tensor:
        """Shape: (num_frames, n_fft) samples -> (num_frames, n_mels) decibels."""
        x = torch.from_numpy(frames).to(self.device) * self.logmel.window
        spectrum = torch.fft.rfft(x, dim=-1)
        mel = spectrum.abs().square() @ self.logmel.filters.T  # power, then mel bands
        return 10.0 * torch.log10(mel.clamp_min(self.logmel.amin))


class RandomEncoder(Model):
    """A registry encoder with random weights drawn from a fixed seed, used like a checkpoint.

    Args:
        name: registry name of the encoder, or ``huggingface`` for the architecture of the
            folder ``options["path"]`` (``musicssl.huggingface``).
        options: its constructor arguments.
        seed: seed of the initialisation; the global random state is left as it was.
        device: where to run it.
    """

    def __init__(
        self,
        name: str,
        options: dict[str, Any],
        *,
        seed: int = 0,
        device: str | torch.device = "cpu",
        readout: str = DEFAULT_READOUT,
    ) -> None:
        architecture: dict[str, Any] = {"name": name, "options": dict(options)}
        if name == HUGGINGFACE:  # drawn by transformers' own initialisation
            drawn = load_huggingface(options["path"], seed=seed)
            architecture["config"] = drawn.weights  # the folder's config, hashed
            encoder: Encoder = drawn
        else:
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(seed)
                encoder = build_encoder(name, **options)
        super().__init__(encoder, device=device, readout=readout)
        self._config: dict[str, Any] = {
            "baseline": "random",
            "version": FEATURE_VERSION,
            "seed": seed,
            "encoder": architecture,
        }
        if readout != "mean":
            self._config["readout"] = readout

    def config(self) -> dict[str, Any]:
        """The encoder's name, options and seed, as plain JSON values."""
        return json.loads(json.dumps(self._config))


def dct_matrix(n_inputs: int, n_outputs: int) -> Tensor:
    """Orthonormal DCT-II as a matrix: ``coefficients = matrix @ x``.

    ``matrix[k, m] = sqrt(2 / n) * cos(pi * k * (2 m + 1) / (2 n))``, row 0 scaled by
    ``1 / sqrt(2)``, so that with ``n_outputs == n_inputs`` the matrix is orthogonal.

    Returns:
        float32. Shape: (n_outputs, n_inputs).
    """
    if not 1 <= n_outputs <= n_inputs:
        raise MusicSSLError(f"dct_matrix: need 1 <= n_outputs <= n_inputs, got {n_outputs}")
    k = torch.arange(n_outputs, dtype=torch.float64)[:, None]
    m = torch.arange(n_inputs, dtype=torch.float64)[None, :]
    matrix = torch.cos(math.pi * k * (2 * m + 1) / (2 * n_inputs)) * math.sqrt(2 / n_inputs)
    matrix[0] /= math.sqrt(2)
    return matrix.float()


def _frames(blocks: Iterable[np.ndarray], *, n_fft: int, hop: int) -> Iterator[np.ndarray]:
    """Centred analysis frames over a stream of blocks, as ``torch.stft(center=True)`` cuts them.

    Frame ``t`` holds samples ``t * hop - n_fft // 2`` to ``t * hop + n_fft // 2`` (zeros
    outside the signal); a signal of ``N`` samples gives ``1 + N // hop`` frames.

    Yields:
        Shape: (at most _MAX_FRAMES, n_fft), float32.
    """
    half = n_fft // 2
    buffer = np.zeros(half, dtype=np.float32)  # the zeros before sample 0
    total = 0
    for block in blocks:
        block = np.asarray(block, dtype=np.float32)
        if block.ndim != 1:
            raise MusicSSLError(
                f"audio blocks must be mono, shape (num_samples,); got {block.shape}"
            )
        total += len(block)
        buffer = np.concatenate([buffer, block])
        yield from _cut(buffer, n_fft=n_fft, hop=hop)
        buffer = buffer[_complete(len(buffer), n_fft=n_fft, hop=hop) * hop :]
    if total:
        yield from _cut(np.concatenate([buffer, np.zeros(half, np.float32)]), n_fft=n_fft, hop=hop)


def _complete(length: int, *, n_fft: int, hop: int) -> int:
    """Frames of ``n_fft`` every ``hop`` that fit in ``length`` samples."""
    return 0 if length < n_fft else 1 + (length - n_fft) // hop


def _cut(buffer: np.ndarray, *, n_fft: int, hop: int) -> Iterator[np.ndarray]:
    count = _complete(len(buffer), n_fft=n_fft, hop=hop)
    if count == 0:
        return
    views = sliding_window_view(buffer, n_fft)[::hop][:count]  # no copy until a chunk is cut
    for start in range(0, count, _MAX_FRAMES):
        yield views[start : start + _MAX_FRAMES].copy()


def _with_deltas(chunks: Iterable[np.ndarray]) -> Iterator[np.ndarray]:
    """Append ``(c[t+1] - c[t-1]) / 2`` to each frame of a stream of (frames, dim) chunks.

    Each frame waits for its successor; the first and last frames use themselves as the
    missing neighbour. Yields Shape: (frames, 2 * dim).
    """
    previous, held = None, None  # the frame before held, and the frame awaiting its successor
    for chunk in chunks:
        rows = chunk if held is None else np.concatenate([held, chunk])
        if len(rows) < 2:
            held = rows
            continue
        before = rows[:1] if previous is None else previous
        padded = np.concatenate([before, rows])  # padded[i + 1] == rows[i]
        deltas = (padded[2:] - padded[:-2]) / 2
        yield np.concatenate([rows[:-1], deltas], axis=1)
        previous, held = rows[-2:-1], rows[-1:]
    if held is not None:
        before = held if previous is None else previous
        yield np.concatenate([held, (held - before) / 2], axis=1)


class _RunningMoments:
    """Mean and population std per column over chunks of rows (Chan et al.'s merge)."""

    def __init__(self) -> None:
        self.count = 0
        self.mean: np.ndarray = np.zeros(0)
        self._m2: np.ndarray = np.zeros(0)

    def update(self, rows: np.ndarray) -> None:
        rows = np.asarray(rows, dtype=np.float64)
        n = len(rows)
        if n == 0:
            return
        mean = rows.mean(axis=0)
        m2 = np.square(rows - mean).sum(axis=0)
        if self.count == 0:
            self.count, self.mean, self._m2 = n, mean, m2
            return
        total = self.count + n
        delta = mean - self.mean
        self.mean = self.mean + delta * (n / total)
        self._m2 = self._m2 + m2 + np.square(delta) * (self.count * n / total)
        self.count = total

    @property
    def std(self) -> np.ndarray:
        return np.sqrt(self._m2 / self.count)


def default_encoder() -> dict[str, Any]:
    """The encoder of the demo recipe (``simclr-key-tempo-cpu``): ``{"name", "options"}``."""
    part = Recipe.load(_DEFAULT_RECIPE).encoder
    return {"name": part.name, "options": dict(part.options)}
