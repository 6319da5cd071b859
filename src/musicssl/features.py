"""Time-frequency front ends as torch modules, so they run on the device with the encoder.

``LogMel``: plain torch, ``torch.stft`` and a mel filterbank built here. ``CQT``: a
constant-Q transform, nnAudio's octave-by-octave implementation behind our interface. Time
is the last axis: ``(..., num_samples) -> (..., num_bins, num_frames)``.
"""

from __future__ import annotations

import math
from typing import Any, Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from musicssl.errors import MusicSSLError

__all__ = ["C1_HZ", "CQT", "LogMel", "hz_to_mel", "mel_filterbank", "mel_to_hz"]

MelScale = Literal["slaney", "htk"]

# Slaney's scale (Auditory Toolbox, as librosa's default): linear below 1 kHz at 3 mels per
# 200 Hz, logarithmic above with 27 mels per factor 6.4.
_SLANEY_HZ_PER_MEL = 200.0 / 3.0
_SLANEY_BREAK_HZ = 1000.0
_SLANEY_BREAK_MEL = _SLANEY_BREAK_HZ / _SLANEY_HZ_PER_MEL  # 15
_SLANEY_LOG_STEP = math.log(6.4) / 27.0


def hz_to_mel(freq: Tensor | float, *, mel_scale: MelScale = "slaney") -> Tensor:
    """Frequency in Hz to mels.

    Args:
        freq: Frequencies in Hz, any shape; a float becomes a float64 scalar tensor.
        mel_scale: ``"slaney"`` (linear below 1 kHz, log above) or ``"htk"``
            (``2595 * log10(1 + f / 700)``).

    Returns:
        Mels, same shape as ``freq``.
    """
    freq = _as_tensor(freq)
    if mel_scale == "htk":
        return 2595.0 * torch.log10(1.0 + freq / 700.0)
    _check_scale(mel_scale)
    linear = freq / _SLANEY_HZ_PER_MEL
    log = _SLANEY_BREAK_MEL + torch.log(freq.clamp_min(_SLANEY_BREAK_HZ) / _SLANEY_BREAK_HZ) / (
        _SLANEY_LOG_STEP
    )
    return torch.where(freq >= _SLANEY_BREAK_HZ, log, linear)


def mel_to_hz(mel: Tensor | float, *, mel_scale: MelScale = "slaney") -> Tensor:
    """Mels to frequency in Hz; the inverse of :func:`hz_to_mel`. Same shape as ``mel``."""
    mel = _as_tensor(mel)
    if mel_scale == "htk":
        return 700.0 * (10.0 ** (mel / 2595.0) - 1.0)
    _check_scale(mel_scale)
    linear = mel * _SLANEY_HZ_PER_MEL
    log = _SLANEY_BREAK_HZ * torch.exp(_SLANEY_LOG_STEP * (mel - _SLANEY_BREAK_MEL))
    return torch.where(mel >= _SLANEY_BREAK_MEL, log, linear)


def _as_tensor(value: Tensor | float) -> Tensor:
    return value if isinstance(value, Tensor) else torch.tensor(float(value), dtype=torch.float64)


def _check_audio(x: Tensor, owner: str) -> None:
    if x.ndim < 1 or x.shape[-1] < 1 or not x.is_floating_point():
        raise MusicSSLError(
            f"{owner}: expected floating-point audio of shape (..., num_samples), got "
            f"{tuple(x.shape)} {x.dtype}"
        )


def _check_scale(mel_scale: str) -> None:
    if mel_scale not in ("slaney", "htk"):
        raise MusicSSLError(f"mel_scale must be 'slaney' or 'htk', got {mel_scale!r}")


def mel_filterbank(
    *,
    sr: int,
    n_fft: int,
    n_mels: int,
    f_min: float = 0.0,
    f_max: float | None = None,
    mel_scale: MelScale = "slaney",
    norm: Literal["slaney"] | None = "slaney",
) -> Tensor:
    """Triangular mel filters over the bins of a one-sided FFT.

    Band ``m`` rises from the ``m``-th to the ``m+1``-th of ``n_mels + 2`` points equally
    spaced in mels between ``f_min`` and ``f_max``, and falls to the ``m+2``-th. With
    ``norm="slaney"`` each triangle is scaled by ``2 / (upper - lower)`` so that it has unit
    area in Hz (equal energy per band), as librosa does by default.

    Args:
        sr: Sample rate in Hz.
        n_fft: FFT size; the filters cover its ``n_fft // 2 + 1`` bins.
        n_mels: Number of bands.
        f_min: Lowest frequency in Hz.
        f_max: Highest frequency in Hz; ``sr / 2`` when None.
        mel_scale: ``"slaney"`` or ``"htk"``.
        norm: ``"slaney"`` for unit-area triangles, None for unit-height ones.

    Returns:
        Filter weights, float32. Shape: (n_mels, n_fft // 2 + 1).
    """
    f_max = sr / 2 if f_max is None else f_max
    if not 0.0 <= f_min < f_max <= sr / 2:
        raise MusicSSLError(
            f"mel filterbank: need 0 <= f_min < f_max <= sr / 2, got f_min={f_min}, "
            f"f_max={f_max}, sr={sr}"
        )
    if n_mels < 1 or n_fft < 2:
        raise MusicSSLError(f"mel filterbank: need n_mels >= 1, n_fft >= 2; got {n_mels}, {n_fft}")
    if norm not in ("slaney", None):
        raise MusicSSLError(f"mel filterbank: norm must be 'slaney' or None, got {norm!r}")
    # float64 so that the edges of narrow low bands do not move with rounding.
    bin_hz = torch.linspace(0.0, sr / 2, n_fft // 2 + 1, dtype=torch.float64)
    mel_edges = torch.linspace(
        hz_to_mel(f_min, mel_scale=mel_scale).item(),
        hz_to_mel(f_max, mel_scale=mel_scale).item(),
        n_mels + 2,
        dtype=torch.float64,
    )
    hz_edges = mel_to_hz(mel_edges, mel_scale=mel_scale)
    lower, centre, upper = hz_edges[:-2, None], hz_edges[1:-1, None], hz_edges[2:, None]
    rising = (bin_hz - lower) / (centre - lower)  # (n_mels, n_bins)
    falling = (upper - bin_hz) / (upper - centre)
    weights = torch.minimum(rising, falling).clamp_min(0.0)
    if norm == "slaney":
        weights = weights * (2.0 / (upper - lower))
    return weights.float()


class LogMel(nn.Module):
    """Log-mel spectrogram in dB: ``10 * log10(max(mel power, amin))``.

    Hann-windowed STFT (``win_length = n_fft``, frames centred, zero padded), power
    spectrum, mel filterbank, decibels. Computed in float32 with autocast off: the dB of
    bf16 power would be coarse, and this costs little next to the encoder.

    Args:
        sr: Sample rate of the input in Hz.
        n_fft: FFT size in samples.
        hop_length: Hop between frames in samples.
        n_mels: Number of mel bands.
        f_min: Lowest frequency in Hz.
        f_max: Highest frequency in Hz; ``sr / 2`` when None.
        mel_scale: ``"slaney"`` or ``"htk"``.
        norm: ``"slaney"`` (unit-area filters) or None.
        amin: Floor of the mel power before the logarithm.
    """

    filters: Tensor  # (n_mels, n_fft // 2 + 1)
    window: Tensor  # (n_fft,)

    def __init__(
        self,
        *,
        sr: int,
        n_fft: int = 1024,
        hop_length: int = 256,
        n_mels: int = 128,
        f_min: float = 0.0,
        f_max: float | None = None,
        mel_scale: MelScale = "slaney",
        norm: Literal["slaney"] | None = "slaney",
        amin: float = 1e-10,
    ) -> None:
        super().__init__()
        if hop_length < 1:
            raise MusicSSLError(f"LogMel: hop_length must be >= 1, got {hop_length}")
        self.sr = sr
        self.n_fft = n_fft
        self.hop_length = hop_length
        self.n_mels = n_mels
        self.amin = amin
        filters = mel_filterbank(
            sr=sr,
            n_fft=n_fft,
            n_mels=n_mels,
            f_min=f_min,
            f_max=f_max,
            mel_scale=mel_scale,
            norm=norm,
        )
        # Not persistent: both follow from the arguments, so checkpoints need not carry them.
        self.register_buffer("filters", filters, persistent=False)
        self.register_buffer("window", torch.hann_window(n_fft), persistent=False)

    def num_frames(self, num_samples: int) -> int:
        """Frames produced for an input of ``num_samples`` samples (centred frames)."""
        return 1 + num_samples // self.hop_length

    def forward(self, x: Tensor) -> Tensor:
        """Log-mel spectrogram of ``x``.

        Args:
            x: Waveforms at ``sr``. Shape: (..., num_samples).

        Returns:
            Decibels. Shape: (..., n_mels, num_frames), num_frames = 1 + num_samples // hop.
        """
        _check_audio(x, "LogMel")
        leading = x.shape[:-1]
        with torch.autocast(device_type=x.device.type, enabled=False):
            flat = x.reshape(-1, x.shape[-1]).float()  # (B, N)
            spectrum = torch.stft(
                flat,
                n_fft=self.n_fft,
                hop_length=self.hop_length,
                window=self.window,
                center=True,
                pad_mode="constant",
                return_complex=True,
            )  # (B, n_fft // 2 + 1, T)
            power = spectrum.real.square() + spectrum.imag.square()
            mel = self.filters @ power  # (B, n_mels, T)
            db = 10.0 * torch.log10(mel.clamp_min(self.amin))
        return db.reshape(*leading, self.n_mels, db.shape[-1])

    def extra_repr(self) -> str:
        return (
            f"sr={self.sr}, n_fft={self.n_fft}, hop_length={self.hop_length}, n_mels={self.n_mels}"
        )


# C1 (MIDI 24), the lowest C of a piano's lowest full octave, as librosa's cqt starts.
C1_HZ = 440.0 * 2.0 ** ((24 - 69) / 12)
# Equivalent noise bandwidth of the Hann window, in bins: a filter's band reaches half of
# this beyond its centre, in units of its bandwidth f / Q.
_HANN_BANDWIDTH = 1.5


class CQT(nn.Module):
    """Constant-Q transform: magnitude or decibels, bins geometrically spaced in frequency.

    Bin ``k`` is centred on ``fmin * 2 ** (k / bins_per_octave)`` and analysed with a
    Hann-windowed complex sinusoid of ``Q = 1 / (2 ** (1 / bins_per_octave) - 1)`` periods
    (Brown 1991, "Calculation of a constant Q spectral transform"). Computed octave by
    octave (Schoerkhuber & Klapuri 2010, "Constant-Q transform toolbox for music
    processing"): one octave's kernels on the signal, then the signal low-passed and halved
    in rate for the octave below, so every kernel stays short. The kernels and the
    low-pass filter are those of ``nnAudio.features.CQT2010v2`` (Cheuk et al. 2020,
    "nnAudio: an on-the-fly GPU audio to spectrogram conversion toolbox using 1D
    convolutional neural networks"), scaled as librosa's ``cqt`` (each bin times the square
    root of its filter length). Its magnitudes are within 3% (relative Frobenius error) of
    ``librosa.cqt`` on tones, noise and music.

    This module adds: the low-pass filter applied through the FFT (the same values as
    nnAudio's forward pass, about 4 times as fast on a CPU: bench_frontends.py), any leading
    axes, float32 with autocast off (as ``LogMel``), checks that name the bad argument,
    frames centred with zero padding (``1 + num_samples // hop_length`` of them), and
    kernels kept out of checkpoints (they follow from the arguments).

    Args:
        sr: Sample rate of the input in Hz.
        hop_length: Hop between frames in samples; a multiple of ``2 ** (num_octaves - 1)``,
            as each octave down halves it.
        fmin: Centre of the lowest bin in Hz (default C1, 32.70 Hz).
        n_bins: Number of bins.
        bins_per_octave: Bins per octave (36: three per semitone).
        db: Decibels ``20 * log10(max(magnitude, amin))`` if True, else magnitudes.
        amin: Floor of the magnitude before the logarithm (1e-5: -100 dB, the floor of
            ``LogMel``'s default).
    """

    kernels: Tensor  # (2 * bins per octave, 1, kernel_size): real parts, then imaginary
    lowpass: Tensor  # (1, 1, taps): the half-band filter before each halving of the rate
    scale: Tensor  # (n_bins, 1)

    def __init__(
        self,
        *,
        sr: int,
        hop_length: int = 256,
        fmin: float = C1_HZ,
        n_bins: int = 252,
        bins_per_octave: int = 36,
        db: bool = True,
        amin: float = 1e-5,
    ) -> None:
        super().__init__()
        if n_bins < 1 or bins_per_octave < 1 or fmin <= 0 or sr <= 0:
            raise MusicSSLError(
                f"CQT: need sr > 0, fmin > 0, n_bins >= 1, bins_per_octave >= 1; got sr={sr}, "
                f"fmin={fmin}, n_bins={n_bins}, bins_per_octave={bins_per_octave}"
            )
        num_octaves = math.ceil(n_bins / bins_per_octave)
        if hop_length < 1 or hop_length % 2 ** (num_octaves - 1):
            raise MusicSSLError(
                f"CQT: hop_length must be a positive multiple of 2^(num_octaves - 1) = "
                f"{2 ** (num_octaves - 1)} for {n_bins} bins in {num_octaves} octaves, got "
                f"{hop_length}"
            )
        fmax = fmin * 2.0 ** ((n_bins - 1) / bins_per_octave)
        band_edge = fmax * (1.0 + 0.5 * _HANN_BANDWIDTH * (2.0 ** (1 / bins_per_octave) - 1.0))
        if band_edge > sr / 2:
            raise MusicSSLError(
                f"CQT: the top bin ({fmax:.0f} Hz, band up to {band_edge:.0f} Hz) passes "
                f"sr / 2 = {sr / 2:g} Hz; lower fmin or n_bins"
            )
        self.sr = sr
        self.hop_length = hop_length
        self.fmin = fmin
        self.n_bins = n_bins
        self.bins_per_octave = bins_per_octave
        self.db = db
        self.amin = amin
        transform = nnaudio_cqt(
            sr=sr, hop_length=hop_length, fmin=fmin, n_bins=n_bins, bins_per_octave=bins_per_octave
        )
        self.num_octaves = int(transform.n_octaves)
        self.kernel_size = int(transform.n_fft)
        # Not persistent: all follow from the arguments, so checkpoints need not carry them.
        kernels = torch.cat([transform.cqt_kernels_real, transform.cqt_kernels_imag])
        self.register_buffer("kernels", kernels.float(), persistent=False)
        self.register_buffer("lowpass", transform.lowpass_filter.float(), persistent=False)
        # librosa's scale: each bin times the square root of its filter length.
        scale = transform.lenghts.sqrt()[:, None]  # nnAudio's spelling
        self.register_buffer("scale", scale.float(), persistent=False)

    def frequencies(self) -> Tensor:
        """Centre frequency of each bin in Hz, float64. Shape: (n_bins,)."""
        k = torch.arange(self.n_bins, dtype=torch.float64)
        return self.fmin * 2.0 ** (k / self.bins_per_octave)

    def num_frames(self, num_samples: int) -> int:
        """Frames produced for an input of ``num_samples`` samples (centred frames)."""
        return 1 + num_samples // self.hop_length

    def forward(self, x: Tensor) -> Tensor:
        """Constant-Q spectrogram of ``x``.

        Args:
            x: Waveforms at ``sr``. Shape: (..., num_samples).

        Returns:
            Decibels (or magnitudes if ``db=False``), float32.
            Shape: (..., n_bins, num_frames), num_frames = 1 + num_samples // hop_length.
        """
        _check_audio(x, "CQT")
        leading, num_samples = x.shape[:-1], x.shape[-1]
        with torch.autocast(device_type=x.device.type, enabled=False):
            flat = x.reshape(-1, 1, num_samples).float()  # (B, 1, N)
            # Under a hop of samples, halving the rate octave by octave leaves nothing:
            # silence after the signal, and only its frames kept.
            flat = F.pad(flat, (0, max(0, self.hop_length - num_samples)))
            magnitude = self._magnitude(flat)[..., : 1 + num_samples // self.hop_length]
            out = 20.0 * torch.log10(magnitude.clamp_min(self.amin)) if self.db else magnitude
        return out.reshape(*leading, self.n_bins, out.shape[-1])

    def _magnitude(self, x: Tensor) -> Tensor:
        """nnAudio's ``CQT2010v2`` forward pass, its low-pass filter applied by FFT.

        Shape: (B, 1, num_samples) -> (B, n_bins, num_frames). The same arithmetic as its
        own forward, but halving the rate by an FFT convolution: oneDNN's strided conv1d of
        one channel took 85% of the transform on a CPU (1.4 s of 1.7 s for 16 x 10 s).
        """
        half_kernel = self.kernel_size // 2
        hop = self.hop_length
        octaves = []
        for octave in range(self.num_octaves):
            if octave:
                x = _halve(x, self.lowpass)
                hop //= 2
            padded = F.pad(x, (half_kernel, half_kernel))
            octaves.append(F.conv1d(padded, self.kernels, stride=hop))  # (B, 2 * per octave, T)
        # (B, octaves, real and imaginary, bins per octave, T), lowest octave first
        parts = torch.stack(octaves[::-1], dim=1).unflatten(2, (2, -1))
        real = parts[:, :, 0].flatten(1, 2)[:, -self.n_bins :] * self.scale  # (B, n_bins, T)
        imag = parts[:, :, 1].flatten(1, 2)[:, -self.n_bins :] * self.scale
        return torch.sqrt(real.square() + imag.square())

    def extra_repr(self) -> str:
        return (
            f"sr={self.sr}, hop_length={self.hop_length}, fmin={self.fmin:.2f}, "
            f"n_bins={self.n_bins}, bins_per_octave={self.bins_per_octave}, db={self.db}"
        )


def _halve(x: Tensor, lowpass: Tensor) -> Tensor:
    """``conv1d(x, lowpass, stride=2, padding=(taps - 1) // 2)``, computed through the FFT.

    Args:
        x: Shape: (B, 1, N).
        lowpass: An even number of taps. Shape: (1, 1, taps).

    Returns:
        Shape: (B, 1, (N + 2 * ((taps - 1) // 2) - taps) // 2 + 1).
    """
    taps = lowpass.shape[-1]
    padded = F.pad(x, ((taps - 1) // 2, (taps - 1) // 2))
    size = padded.shape[-1]
    n_fft = 1 << (size - 1).bit_length()
    spectrum = torch.fft.rfft(padded, n_fft) * torch.fft.rfft(lowpass, n_fft).conj()
    correlation = torch.fft.irfft(spectrum, n_fft)  # correlation[m] = sum_k x[m + k] h[k]
    return correlation[..., : size - taps + 1 : 2]


def nnaudio_cqt(*, sr: int, hop_length: int, fmin: float, n_bins: int, bins_per_octave: int) -> Any:
    """nnAudio's ``CQT2010v2`` as ``CQT`` uses it: zero padding, no early downsampling.

    Its early downsampling (the input's rate halved before the top octave, where the top bin
    allows) leaves every magnitude ``sqrt(factor)`` too large (1.41 times librosa's at
    44.1 kHz with 84 bins from C1), and can leave a hop that the octaves below cannot halve
    exactly; without it the top octave runs at the input's rate.
    """
    from nnAudio.features import CQT2010v2  # imported here: scipy.signal takes a second

    transform = CQT2010v2(
        sr=sr,
        hop_length=hop_length,
        fmin=fmin,
        n_bins=n_bins,
        bins_per_octave=bins_per_octave,
        pad_mode="constant",
        earlydownsample=False,
        verbose=False,
    )
    return transform
