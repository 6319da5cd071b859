"""Tempo of audio from a tempo run, calibrated on click tracks, read under a tempo prior."""

from __future__ import annotations

import math
import os
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from musicssl.encoders import TempoCNN
from musicssl.encoders._bins import local_expectation
from musicssl.errors import MusicSSLError
from musicssl.readouts._signal import require_seconds, signal_windows, trained_branch
from musicssl.waveform import audible

# The shortest audio a tempo is read from: two beats at 60 beats per minute.
MIN_SECONDS = 2.0


def click_track(bpm: float, *, sr: int, seconds: float = 8.0) -> np.ndarray:
    """Clicks on every beat at ``bpm``, the first of each four louder (decaying noise bursts
    of 30 ms from a fixed seed).

    Returns:
        Shape: (round(seconds * sr),), float32.
    """
    out = np.zeros(round(seconds * sr), dtype=np.float32)
    rng = np.random.default_rng(0)
    length = round(0.03 * sr)
    burst = rng.standard_normal(length) * np.exp(-np.arange(length) / (0.005 * sr))
    for beat, start in enumerate(np.arange(0.0, seconds, 60.0 / bpm)):
        begin = round(start * sr)
        piece = burst[: len(out) - begin] * (1.0 if beat % 4 == 0 else 0.5)
        out[begin : begin + len(piece)] += piece
    return 0.5 * out / max(1e-9, float(np.abs(out).max()))


# Confidence of a tempo: the share of the tempo distribution within this many bins of the
# tempo read (one bin of 24 to the octave: 3%); see ``TempoReading``.
CONFIDENCE_BINS = 1


@dataclass(frozen=True)
class TempoReading:
    """A tempo and how sure of it the network is.

    Attributes:
        bpm: beats per minute.
        confidence: the share of the network's tempo distribution (mean over windows, before
            the prior) within ``CONFIDENCE_BINS`` bins of ``bpm``, 0 to 1. A ``tempo-cpu``
            run reads 0.85 on average on the built-in corpus's test clips (317 of 324 above
            0.2), 0.15 at most on white and pink noise and steady sines, and 0.04 to 0.41 on
            steady chords (``bench/results/equivariant_cpu.md``): below about 0.2 the audio
            has no beat to speak of, though a low value is no proof of that.
    """

    bpm: float
    confidence: float


class TempoModel:
    """A trained ``TempoCNN`` with its calibration; ``tempo(waveform, sr)`` gives BPM and
    ``read(waveform, sr)`` its confidence beside it.

    The calibration is the median shift, in tempo bins, between the read tempo and the true
    one over click tracks from 60 to 180 BPM. The read-out then weights the distribution by
    a log-normal prior over tempo before taking its peak, as ``librosa.feature.tempo`` does:
    the network tells the metrical levels apart only up to a factor of two or four (beats,
    eighths, sixteenths all repeat), and the prior prefers the level a listener would tap.

    Args:
        encoder: the trained encoder.
        device: where to run it.
        prior_bpm: centre of the prior in BPM (librosa's ``start_bpm``); None: no prior.
        prior_octaves: its standard deviation in octaves of tempo (librosa's ``std_bpm``).
    """

    def __init__(
        self,
        encoder: TempoCNN,
        *,
        device: str | torch.device = "cpu",
        prior_bpm: float | None = 120.0,
        prior_octaves: float = 1.0,
    ) -> None:
        if prior_bpm is not None and (prior_bpm <= 0 or prior_octaves <= 0):
            raise MusicSSLError(
                f"tempo: prior_bpm and prior_octaves must be > 0, got {prior_bpm}, {prior_octaves}"
            )
        self.encoder = encoder.eval().to(device)
        self.device = torch.device(device)
        self.sample_rate = encoder.sample_rate
        self._lowest = float(encoder.output_bpm[0])
        self.offset = 0.0
        self.log_prior = torch.zeros(encoder.output_bins, dtype=torch.float64)
        errors = []
        for bpm in range(60, 181, 10):
            read = self._read_bin(click_track(float(bpm), sr=self.sample_rate))
            true = self.encoder.bins_per_octave * math.log2(bpm / self._lowest)
            errors.append(true - read)
        self.offset = float(np.median(errors))
        if prior_bpm is not None:
            bins = torch.arange(encoder.output_bins, dtype=torch.float64) + self.offset
            octaves = bins / encoder.bins_per_octave - math.log2(prior_bpm / self._lowest)
            self.log_prior = -0.5 * (octaves / prior_octaves) ** 2

    @torch.no_grad()
    def _distribution(self, signal: np.ndarray, *, batch_size: int = 16) -> Tensor:
        """The mean tempo distribution over half-overlapping windows. Shape: (bins,)."""
        size = self.encoder.input_samples
        windows = signal_windows(signal, size, size // 2)
        probs = torch.cat(
            [
                self.encoder(windows[i : i + batch_size].to(self.device)).cpu()
                for i in range(0, len(windows), batch_size)
            ]
        )
        return probs.double().mean(0)

    def _read_bin(self, signal: np.ndarray) -> float:
        """Peak of the mean distribution, times the prior (uncalibrated bins)."""
        return self._peak(self._distribution(signal))

    def _peak(self, probs: Tensor) -> float:
        centre, _ = local_expectation(probs * self.log_prior.exp(), radius=2)
        return float(centre)

    def read(self, waveform: np.ndarray | Tensor, sr: int) -> TempoReading:
        """Tempo of a signal in beats per minute, and the network's confidence in it.

        Raises:
            MusicSSLError: bad audio (see ``musicssl.waveform.mono_at``), empty, silent, or
                shorter than ``MIN_SECONDS``.
        """
        signal = audible(waveform, sr, self.sample_rate, "tempo")
        require_seconds(signal, self.sample_rate, what="tempo", needs="a few beats",
                        seconds=MIN_SECONDS)  # fmt: skip
        probs = self._distribution(signal)
        peak = self._peak(probs)
        near = round(peak)
        confidence = float(probs[max(0, near - CONFIDENCE_BINS) : near + CONFIDENCE_BINS + 1].sum())
        bpm = self._lowest * 2.0 ** ((peak + self.offset) / self.encoder.bins_per_octave)
        return TempoReading(bpm, min(1.0, confidence))

    def tempo(self, waveform: np.ndarray | Tensor, sr: int) -> float:
        """Tempo of a signal in beats per minute (``read`` without the confidence).

        Raises:
            MusicSSLError: as ``read``.
        """
        return self.read(waveform, sr).bpm


def load_tempo(
    run: str | os.PathLike,
    *,
    device: str | torch.device = "cpu",
    prior_bpm: float | None = 120.0,
    prior_octaves: float = 1.0,
) -> TempoModel:
    """The calibrated tempo model of a run (or checkpoint) trained with ``tempo``: a
    ``tempo_cnn`` run, or a ``branches`` run with one ``tempo_cnn`` branch (the demo's
    recipe); the prior as in ``TempoModel``.

    Raises:
        MusicSSLError: not a checkpoint, or no ``tempo_cnn`` in it.
    """
    encoder = trained_branch(run, TempoCNN, task="tempo", name="tempo_cnn", recipe="tempo-cpu")
    return TempoModel(encoder, device=device, prior_bpm=prior_bpm, prior_octaves=prior_octaves)
