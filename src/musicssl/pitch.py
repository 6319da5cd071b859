"""Pitch of monophonic audio from a PESTO run: f0 and confidence per frame.

``load(run)`` rebuilds a run's ``PestoCNN`` and calibrates it: the network only knows pitch
up to a constant shift of its output bins (its training saw relative shifts, never absolute
pitch), so harmonic tones of known pitch, made here in code, fix that shift. No label of
any data set is read. ``PitchModel.pitch(waveform, sr)`` then gives a ``PitchTrack``.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from musicssl import checkpoint
from musicssl.encoders import PestoCNN, encoder_name
from musicssl.encoders._bins import local_expectation, lowest_octave_peak
from musicssl.errors import MusicSSLError
from musicssl.features import CQT
from musicssl.files import write_text
from musicssl.waveform import SILENCE_DB, audible

__all__ = ["PitchModel", "PitchTrack", "calibrate_pitch", "harmonic_tone", "load", "write_csv"]

# Calibration tones: MIDI notes from E2 to E6 every 5 semitones (A4 = 69 is not among them),
# with two spectral slopes, so that no one timbre sets the shift.
CALIBRATION_NOTES = tuple(range(40, 89, 5))
CALIBRATION_SLOPES = (1.0, 2.0)
# Share of the peak's mass one octave below that makes the read-out take the lower octave:
# chosen on the validation split's melodies (1e-5 to 1e-3 score alike there).
OCTAVE_RATIO = 1e-4


def harmonic_tone(
    f0: float, *, sr: int, seconds: float = 1.0, num_harmonics: int = 10, slope: float = 1.0
) -> np.ndarray:
    """A steady harmonic tone: harmonics ``h`` of ``f0`` at amplitude ``h ** -slope``.

    Harmonics at or above ``sr / 2`` are left out; peak amplitude 0.5; 10 ms fades.

    Returns:
        Shape: (round(seconds * sr),), float32.
    """
    t = np.arange(round(seconds * sr)) / sr
    tone = np.zeros_like(t)
    for h in range(1, num_harmonics + 1):
        if h * f0 < sr / 2:
            tone += h**-slope * np.sin(2 * np.pi * h * f0 * t + 0.7 * h)
    fade = np.minimum(1.0, np.minimum(t, t[-1] - t) / 0.01)
    tone *= fade
    return (0.5 * tone / max(1e-9, float(np.abs(tone).max()))).astype(np.float32)


@dataclass
class PitchTrack:
    """Frame-wise pitch of a signal.

    Attributes:
        times: centre of each frame in seconds. Shape: (num_frames,).
        f0: fundamental frequency in Hz; 0 for a silent frame (unvoiced, as ``mir_eval``
            reads it). Shape: (num_frames,).
        confidence: probability mass within a semitone of the distribution's peak (before
            any move down an octave), in [0, 1]; 0 for a silent frame. Shape: (num_frames,).
    """

    times: np.ndarray
    f0: np.ndarray
    confidence: np.ndarray


class PitchModel:
    """A trained ``PestoCNN`` with its calibration; ``pitch(waveform, sr)`` reads pitch.

    Args:
        encoder: the trained encoder.
        device: where to run it.
        hop_length: CQT hop of the read-out in samples (default: the encoder's); the network
            reads frames one by one, so any hop that the CQT accepts works.
        octave_ratio: the read pitch moves down an octave while the octave below holds at
            least this share of the peak's mass (``lowest_octave_peak``); None: the peak.
            The default was chosen on the built-in corpus's validation clips.
    """

    def __init__(
        self,
        encoder: PestoCNN,
        *,
        device: str | torch.device = "cpu",
        hop_length: int | None = None,
        octave_ratio: float | None = OCTAVE_RATIO,
    ) -> None:
        if octave_ratio is not None and octave_ratio <= 0:
            raise MusicSSLError(f"pitch: octave_ratio must be > 0, got {octave_ratio}")
        self.octave_ratio = octave_ratio
        self.encoder = encoder.eval().to(device)
        self.device = torch.device(device)
        self.sample_rate = encoder.sample_rate
        if hop_length is not None and (
            isinstance(hop_length, bool) or not isinstance(hop_length, (int, np.integer))
        ):
            raise MusicSSLError(
                f"pitch: hop_length must be a whole number of samples, got {hop_length!r}"
            )
        self.hop_length = encoder.hop_length if hop_length is None else int(hop_length)
        self.cqt = CQT(
            sr=encoder.sample_rate,
            hop_length=self.hop_length,
            fmin=encoder.cqt.fmin,
            n_bins=encoder.num_bins,
            bins_per_octave=encoder.bins_per_octave,
        ).to(device)
        self.offset = 0.0
        self.offset = calibrate_pitch(self)

    @torch.no_grad()
    def distributions(self, signal: np.ndarray, *, batch_frames: int = 8192) -> Tensor:
        """Pitch distribution of each frame of a mono signal at ``sample_rate``.

        Shape: (num_samples,) -> (num_frames, output_bins), on the CPU.
        """
        x = torch.from_numpy(np.ascontiguousarray(signal, dtype=np.float32)).to(self.device)
        spectrum = self.cqt(x[None])[0].T  # (T, num_bins)
        frames = self.encoder.window(spectrum, self.encoder.max_shift)
        parts = [
            self.encoder.frame_logits(frames[i : i + batch_frames]).softmax(-1).cpu()
            for i in range(0, len(frames), batch_frames)
        ]
        return torch.cat(parts)

    def pitch(self, waveform: np.ndarray | Tensor, sr: int) -> PitchTrack:
        """f0 and confidence of each frame (one per ``hop_length`` samples at the model's rate).

        Args:
            waveform: Shape: (num_samples,) or (channels, num_samples); float or integer PCM.
            sr: its sample rate in Hz.

        Raises:
            MusicSSLError: bad audio (see ``musicssl.waveform.mono_at``), empty or silent.
        """
        signal = audible(waveform, sr, self.sample_rate, "pitch")
        probs = self.distributions(signal).double()
        _, mass = local_expectation(probs, radius=self.encoder.bins_per_semitone)
        f0 = self.bin_to_hz(self.read_bins(probs) + self.offset)
        confidence = mass.float().numpy()
        silent = silent_frames(signal, self.hop_length, len(f0))
        f0[silent], confidence[silent] = 0.0, 0.0
        times = np.arange(len(f0)) * self.hop_length / self.sample_rate
        return PitchTrack(times=times, f0=f0, confidence=confidence)

    def read_bins(self, probs: Tensor) -> Tensor:
        """Fractional output bin of each distribution: the mean within a semitone of its
        peak, moved down octaves as ``octave_ratio`` says. Shape: (N, output_bins) -> (N,)."""
        radius = self.encoder.bins_per_semitone
        peak = None
        if self.octave_ratio is not None:
            peak = lowest_octave_peak(probs, bins_per_octave=self.encoder.bins_per_octave,
                                      radius=radius, min_ratio=self.octave_ratio)  # fmt: skip
        return local_expectation(probs, radius=radius, peak=peak)[0]

    def bin_to_hz(self, bins: Tensor) -> np.ndarray:
        """Frequency in Hz of fractional output bins. Shape kept."""
        bins_per_octave = self.encoder.bins_per_octave
        lowest = self.encoder.cqt.fmin * 2.0 ** (self.encoder.output_offset / bins_per_octave)
        return (lowest * 2.0 ** (bins.double() / bins_per_octave)).numpy()


def silent_frames(signal: np.ndarray, hop_length: int, num_frames: int) -> np.ndarray:
    """Which frames are silent: those whose ``hop_length`` samples around their centre
    (frame ``t`` centred on sample ``t * hop_length``, as the CQT centres them) peak at or
    below ``SILENCE_DB``. Shape: (num_frames,), bool."""
    half = hop_length // 2
    padded = np.pad(np.abs(signal), (half, num_frames * hop_length))
    peaks = padded[: num_frames * hop_length].reshape(num_frames, hop_length).max(axis=1)
    return peaks <= 10.0 ** (SILENCE_DB / 20.0)


def calibrate_pitch(model: PitchModel) -> float:
    """The shift, in bins, from the model's output to the true pitch, on synthetic tones.

    Median over tones and frames of (true bin - read bin), for harmonic tones of
    ``CALIBRATION_NOTES`` with ``CALIBRATION_SLOPES``; added to every read bin afterwards.
    """
    encoder, sr = model.encoder, model.sample_rate
    errors = []
    for note in CALIBRATION_NOTES:
        f0 = 440.0 * 2.0 ** ((note - 69) / 12)
        lowest = encoder.cqt.fmin * 2.0 ** (encoder.output_offset / encoder.bins_per_octave)
        true_bin = encoder.bins_per_octave * math.log2(f0 / lowest)
        for slope in CALIBRATION_SLOPES:
            probs = model.distributions(harmonic_tone(f0, sr=sr, slope=slope))
            errors.append(true_bin - model.read_bins(probs[5:-5].double()))
    return float(torch.cat(errors).median())


def load(
    run: str | os.PathLike,
    *,
    device: str | torch.device = "cpu",
    hop_length: int | None = None,
    octave_ratio: float | None = OCTAVE_RATIO,
) -> PitchModel:
    """The calibrated pitch model of a run (or checkpoint) trained with ``pesto``; the
    options as in ``PitchModel``.

    Raises:
        MusicSSLError: not a checkpoint, or its encoder is not a ``pesto_cnn``.
    """
    encoder = checkpoint.load_encoder(run)
    if not isinstance(encoder, PestoCNN):
        raise MusicSSLError(
            f"{run}: not a pitch run (its encoder is {encoder_name(encoder)}, not pesto_cnn; "
            "train one with the pesto-cpu recipe)"
        )
    return PitchModel(encoder, device=device, hop_length=hop_length, octave_ratio=octave_ratio)


_CSV_HEADER = "time,f0,confidence"


def csv_name(audio: Path, below: Path | None) -> Path:
    """Where an audio file's CSV goes in a folder of CSVs: its name with ``.csv`` added
    (``a.wav.csv``: ``a.wav`` and ``a.flac`` stay apart), in the subfolder the file has
    below the folder it was found in (``below``), or at the top for a file given alone."""
    relative = audio.relative_to(below) if below is not None else Path(audio.name)
    return relative.with_name(relative.name + ".csv")


def write_csv(path: str | os.PathLike, track: PitchTrack) -> Path:
    """``time,f0,confidence`` per frame (seconds, Hz, [0, 1]), written whole.

    Raises:
        MusicSSLError: ``path`` is a folder, a link or a special file, or a file that is
            not a pitch CSV (what this did not write is never replaced).
    """
    check_csv_out(Path(path))
    lines = [_CSV_HEADER]
    lines += [
        f"{t:.4f},{f:.3f},{c:.4f}"
        for t, f, c in zip(track.times, track.f0, track.confidence, strict=True)
    ]
    return write_text(path, "\n".join(lines) + "\n")


def check_csv_out(out: Path) -> None:
    """Refuse an ``out`` that ``write_csv`` must not replace (see there)."""
    if out.is_symlink():
        raise MusicSSLError(f"{out}: is a symbolic link; --out names a plain .csv file to write")
    if out.is_dir():
        raise MusicSSLError(f"{out}: is a folder; --out names the .csv file to write")
    if not out.exists():
        return
    if not out.is_file():
        raise MusicSSLError(f"{out}: is not a regular file; choose another --out")
    try:
        with out.open("rb") as handle:
            first = handle.readline(len(_CSV_HEADER) + 2)
    except OSError as error:
        raise MusicSSLError(
            f"{out}: cannot be read ({error.strerror}); choose another --out"
        ) from None
    if first.rstrip(b"\r\n") != _CSV_HEADER.encode():
        raise MusicSSLError(f"{out}: exists and is not a pitch CSV; choose another --out")
