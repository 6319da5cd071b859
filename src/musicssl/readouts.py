"""Key and tempo of audio from STONE and tempo runs, calibrated on synthetic audio.

As with pitch (``musicssl.pitch``), the networks know key and tempo only up to a constant
shift of their outputs; cadences and click tracks made here in code fix it when a run is
loaded. No label of any data set is read.

- ``load_key(run).key(waveform, sr)``: a key in mir_eval's spelling, ``"F# minor"``.
- ``load_tempo(run).tempo(waveform, sr)``: beats per minute.
"""

from __future__ import annotations

import itertools
import math
import os

import numpy as np
import torch
from torch import Tensor

from musicssl import checkpoint
from musicssl.embed import mono_at
from musicssl.encoders import KeyCNN, TempoCNN, encoder_name
from musicssl.encoders._bins import local_expectation
from musicssl.errors import MusicSSLError
from musicssl.pitch import harmonic_tone

__all__ = [
    "KeyModel",
    "TempoModel",
    "cadence",
    "click_track",
    "key_name",
    "load_key",
    "load_tempo",
]

PITCH_CLASSES = ("C", "C#", "D", "Eb", "E", "F", "F#", "G", "Ab", "A", "Bb", "B")
MODES = ("major", "minor")
# Chords of a cadence I-IV-V-I (i-iv-V-i in minor, with the raised leading tone), as
# semitones above the tonic: bass, then the three upper voices.
_CADENCES = {
    "major": ((0, 12, 16, 19), (5, 12, 17, 21), (7, 11, 14, 19), (0, 12, 16, 19)),
    "minor": ((0, 12, 15, 19), (5, 12, 17, 20), (7, 11, 14, 19), (0, 12, 15, 19)),
}


def key_name(tonic: int, mode: str) -> str:
    """``"F# minor"`` for pitch class 6 and ``"minor"`` (the spelling mir_eval reads)."""
    return f"{PITCH_CLASSES[tonic % 12]} {mode}"


def cadence(
    tonic: int, mode: str, *, sr: int, chord_seconds: float = 0.5, repeats: int = 2
) -> np.ndarray:
    """A cadence I-IV-V-I in ``tonic`` (pitch class, C = 0) and ``mode``, played ``repeats``
    times with harmonic tones, its bass in the octave from C3.

    Returns:
        Shape: (num_samples,), float32.
    """
    if mode not in _CADENCES:
        raise MusicSSLError(f"cadence: mode must be 'major' or 'minor', got {mode!r}")
    chords = []
    for chord in _CADENCES[mode]:
        notes = [48 + tonic % 12 + step for step in chord]
        tones = [
            harmonic_tone(440.0 * 2.0 ** ((n - 69) / 12), sr=sr, seconds=chord_seconds, slope=1.5)
            for n in notes
        ]
        chords.append(np.sum(tones, axis=0) / len(tones))
    return np.tile(np.concatenate(chords), repeats).astype(np.float32)


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


def _windows(signal: np.ndarray, size: int, step: int) -> Tensor:
    """Windows of ``size`` samples every ``step``; a short signal is zero-padded to one window.

    Shape: (num_samples,) -> (num_windows, size).
    """
    if len(signal) < size:
        signal = np.pad(signal, (0, size - len(signal)))
    starts = range(0, len(signal) - size + 1, step)
    return torch.from_numpy(np.stack([signal[s : s + size] for s in starts]))


class KeyModel:
    """A trained ``KeyCNN`` with its calibration; ``key(waveform, sr)`` names the key.

    The calibration picks which output channel is major and, per channel, which class is
    the tonic, as the choice that names the most synthetic cadences (12 tonics x 2 modes)
    right (ties: the higher mean log-probability of the right keys).
    """

    def __init__(self, encoder: KeyCNN, *, device: str | torch.device = "cpu") -> None:
        self.encoder = encoder.eval().to(device)
        self.device = torch.device(device)
        self.sample_rate = encoder.sample_rate
        self.channel_of = {"major": 0, "minor": 1}
        self.shift = {"major": 0, "minor": 0}
        self._calibrate()

    @torch.no_grad()
    def logits(self, signal: np.ndarray, *, batch_size: int = 16) -> Tensor:
        """Mean key logits over windows of the training crop (a shorter signal is one
        window). Shape: (num_samples,) -> (24,)."""
        size = min(self.encoder.input_samples, max(len(signal), self.encoder.min_samples))
        return self._mean_logits(_windows(signal, size, size), batch_size=batch_size)

    @torch.no_grad()
    def _mean_logits(self, windows: Tensor, *, batch_size: int = 16) -> Tensor:
        parts = [
            self.encoder(windows[i : i + batch_size].to(self.device)).cpu()
            for i in range(0, len(windows), batch_size)
        ]
        return torch.cat(parts).mean(0)

    def scores(self, logits: Tensor) -> Tensor:
        """Log-probability of each key under the calibration. Shape: (24,) -> (2, 12):
        row 0 major, row 1 minor; column = tonic pitch class."""
        log_probs = logits.log_softmax(-1).reshape(2, 12)
        rows = []
        for mode in MODES:
            channel = log_probs[self.channel_of[mode]]
            rows.append(channel.roll(self.shift[mode]))
        return torch.stack(rows)

    def key(self, waveform: np.ndarray | Tensor, sr: int) -> str:
        """The key of a signal, e.g. ``"Bb major"``.

        Raises:
            MusicSSLError: bad audio (see ``musicssl.embed.mono_at``).
        """
        signal = mono_at(waveform, sr, target_sr=self.sample_rate)
        if len(signal) == 0:
            raise MusicSSLError("key: the audio is empty")
        best = int(self.scores(self.logits(signal)).argmax())
        return key_name(best % 12, MODES[best // 12])

    def _calibrate(self) -> None:
        keys = [(tonic, mode) for mode in MODES for tonic in range(12)]
        log_probs = (
            torch.stack([self.logits(cadence(t, m, sr=self.sample_rate)) for t, m in keys])
            .log_softmax(-1)
            .reshape(-1, 2, 12)
        )  # (E, channel, class)
        truth = torch.tensor([MODES.index(m) * 12 + t for t, m in keys])  # (E,)
        # rolled[e, c, s, t]: channel c's log-probability of tonic t with a shift of s.
        rolled = torch.stack([log_probs.roll(shift, dims=2) for shift in range(12)], dim=2)
        best: tuple[int, float] | None = None
        for swap in (0, 1):
            major = rolled[:, swap, :, None, :].expand(-1, 12, 12, 12)  # (E, s_maj, s_min, 12)
            minor = rolled[:, 1 - swap, None, :, :].expand(-1, 12, 12, 12)
            scores = torch.cat([major, minor], dim=-1)  # (E, s_maj, s_min, 24)
            right = (scores.argmax(-1) == truth[:, None, None]).sum(0)  # (s_maj, s_min)
            total = scores.gather(-1, truth[:, None, None, None].expand(-1, 12, 12, 1))
            total = total.squeeze(-1).sum(0)
            for major_shift, minor_shift in itertools.product(range(12), range(12)):
                score = (
                    int(right[major_shift, minor_shift]),
                    float(total[major_shift, minor_shift]),
                )
                if best is None or score > best:
                    best = score
                    self.channel_of = {"major": swap, "minor": 1 - swap}
                    self.shift = {"major": major_shift, "minor": minor_shift}
        self.calibration_accuracy = (best[0] if best else 0) / len(keys)


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
        windows = _windows(signal, size, size // 2)
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
            MusicSSLError: bad audio (see ``musicssl.embed.mono_at``).
        """
        signal = mono_at(waveform, sr, target_sr=self.sample_rate)
        if len(signal) == 0:
            raise MusicSSLError("tempo: the audio is empty")
        read = self._read_bin(signal) + self.offset
        return self._lowest * 2.0 ** (read / self.encoder.bins_per_octave)


def load_key(run: str | os.PathLike, *, device: str | torch.device = "cpu") -> KeyModel:
    """The calibrated key model of a run (or checkpoint) trained with ``stone``.

    Raises:
        MusicSSLError: not a checkpoint, or its encoder is not a ``key_cnn``.
    """
    encoder = checkpoint.load_encoder(run)
    if not isinstance(encoder, KeyCNN):
        raise MusicSSLError(
            f"{run}: not a key run (its encoder is {encoder_name(encoder)}, not key_cnn; "
            "train one with the key-cpu recipe)"
        )
    return KeyModel(encoder, device=device)


def load_tempo(
    run: str | os.PathLike,
    *,
    device: str | torch.device = "cpu",
    prior_bpm: float | None = 120.0,
    prior_octaves: float = 1.0,
) -> TempoModel:
    """The calibrated tempo model of a run (or checkpoint) trained with ``tempo``; the prior
    as in ``TempoModel``.

    Raises:
        MusicSSLError: not a checkpoint, or its encoder is not a ``tempo_cnn``.
    """
    encoder = checkpoint.load_encoder(run)
    if not isinstance(encoder, TempoCNN):
        raise MusicSSLError(
            f"{run}: not a tempo run (its encoder is {encoder_name(encoder)}, not tempo_cnn; "
            "train one with the tempo-cpu recipe)"
        )
    return TempoModel(encoder, device=device, prior_bpm=prior_bpm, prior_octaves=prior_octaves)
