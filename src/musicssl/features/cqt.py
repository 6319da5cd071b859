"""The constant-Q front end: nnAudio's octave-by-octave transform behind our interface.

Time is the last axis: ``(..., num_samples) -> (..., n_bins, num_frames)``.
"""

from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from musicssl.errors import MusicSSLError
from musicssl.features.mel import check_audio

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
                f"sr / 2 = {sr / 2:g} Hz; lower f_min or n_bins"
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
        check_audio(x, "CQT")
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
