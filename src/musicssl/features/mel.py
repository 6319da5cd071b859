"""The log-mel front end: ``torch.stft`` and a mel filterbank built here (librosa's, in torch).

Time is the last axis: ``(..., num_samples) -> (..., n_mels, num_frames)``.
"""

from __future__ import annotations

import math
from typing import Literal

import torch
from torch import Tensor, nn

from musicssl.errors import MusicSSLError

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


def check_audio(x: Tensor, owner: str) -> None:
    if not isinstance(x, Tensor):
        raise MusicSSLError(f"{owner}: expected a torch tensor of audio, got "
                            f"{type(x).__name__} (torch.from_numpy makes one)")  # fmt: skip
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
        check_audio(x, "LogMel")
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
