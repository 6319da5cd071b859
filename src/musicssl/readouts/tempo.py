"""Tempo of audio from a tempo run, calibrated on click tracks, read under a tempo prior."""

from __future__ import annotations

import math
import os

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


class TempoModel:
    """A trained ``TempoCNN`` with its calibration; ``tempo(waveform, sr)`` gives BPM.

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
    def _read_bin(self, signal: np.ndarray, *, batch_size: int = 16) -> float:
        """Peak of the mean distribution over half-overlapping windows, times the prior."""
        size = self.encoder.input_samples
        windows = signal_windows(signal, size, size // 2)
        probs = torch.cat(
            [
                self.encoder(windows[i : i + batch_size].to(self.device)).cpu()
                for i in range(0, len(windows), batch_size)
            ]
        ).mean(0)
        weighted = probs.double() * self.log_prior.exp()
        centre, _ = local_expectation(weighted, radius=2)
        return float(centre)

    def tempo(self, waveform: np.ndarray | Tensor, sr: int) -> float:
        """Tempo of a signal in beats per minute.

        Raises:
            MusicSSLError: bad audio (see ``musicssl.waveform.mono_at``), empty, silent, or
                shorter than ``MIN_SECONDS``.
        """
        signal = audible(waveform, sr, self.sample_rate, "tempo")
        require_seconds(signal, self.sample_rate, what="tempo", needs="a few beats",
                        seconds=MIN_SECONDS)  # fmt: skip
        read = self._read_bin(signal) + self.offset
        return self._lowest * 2.0 ** (read / self.encoder.bins_per_octave)


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
