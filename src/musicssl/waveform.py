"""Audio given in memory (a numpy array or a tensor), read the way audio files are read."""

from __future__ import annotations

import math

import numpy as np
from torch import Tensor

from musicssl import audio
from musicssl.errors import MusicSSLError

__all__ = ["SILENCE_DB", "audible", "is_silent", "mono_at"]

# A peak at or below this level is silence (``musicssl.audio.check``'s default).
SILENCE_DB = -90.0


# Integer PCM -> float in [-1, 1), as libsndfile reads integer files: (x - offset) / scale.
_PCM_SCALES = {
    np.dtype(np.int8): (0, 2.0**7),
    np.dtype(np.int16): (0, 2.0**15),
    np.dtype(np.int32): (0, 2.0**31),
    np.dtype(np.uint8): (128, 2.0**7),
}


def mono_at(waveform: np.ndarray | Tensor, sr: int, *, target_sr: int) -> np.ndarray:
    """A signal as mono float32 at ``target_sr``, read the way audio files are read.

    Args:
        waveform: Shape: (num_samples,) or (channels, num_samples). Float, or integer PCM
            (int8, int16, int32, uint8 centred on 128), scaled to [-1, 1).
        sr: its sample rate in Hz.
        target_sr: the rate of the result in Hz.

    Returns:
        Shape: (num_samples,), float32; channels averaged (``audio.to_mono``).

    Raises:
        MusicSSLError: another shape or sample format, a non-positive ``sr`` or one outside
            ``audio.MIN_SAMPLE_RATE``-``audio.MAX_SAMPLE_RATE``, or samples that are NaN or
            infinite.
    """
    if isinstance(waveform, Tensor):
        tensor = waveform.detach().cpu()
        # numpy has no bfloat16; a float tensor of any width reads as float32.
        waveform = (tensor.float() if tensor.is_floating_point() else tensor).numpy()
    signal = np.asarray(waveform)
    if signal.dtype.byteorder not in ("=", "|"):  # PCM in the other byte order (AIFF's)
        signal = signal.astype(signal.dtype.newbyteorder("="))
    if signal.dtype in _PCM_SCALES:
        offset, scale = _PCM_SCALES[signal.dtype]
        signal = (signal.astype(np.float32) - offset) / np.float32(scale)
    elif signal.dtype.kind != "f":
        raise MusicSSLError(
            f"audio must be float or integer PCM (int8, int16, int32, uint8), got {signal.dtype}"
        )
    if signal.ndim == 2 and 0 < signal.shape[1] < signal.shape[0]:
        raise MusicSSLError(
            f"audio must have shape (channels, num_samples), got {signal.shape}: more "
            "channels than samples (transpose a (num_samples, channels) array)"
        )
    if signal.ndim not in (1, 2):
        raise MusicSSLError(
            f"audio must have shape (num_samples,) or (channels, num_samples), got {signal.shape}"
        )
    if not np.isfinite(signal).all():
        raise MusicSSLError("audio holds NaN or infinite samples")
    whole = isinstance(sr, (int, float, np.number)) and math.isfinite(sr) and sr == int(sr)
    if not whole or sr <= 0:
        raise MusicSSLError(f"audio: sr must be a positive whole number of Hz, got {sr!r}")
    if not audio.MIN_SAMPLE_RATE <= sr <= audio.MAX_SAMPLE_RATE:
        raise MusicSSLError(
            f"audio: sr={int(sr)} Hz is not a plausible sample rate "
            f"({audio.MIN_SAMPLE_RATE}-{audio.MAX_SAMPLE_RATE} Hz)"
        )
    mono = audio.to_mono(signal.astype(np.float32, copy=False))
    return audio.resample(mono, orig_sr=int(sr), target_sr=target_sr)


def is_silent(samples: np.ndarray) -> bool:
    """Whether the peak of ``samples`` is at or below ``SILENCE_DB`` (True when empty)."""
    return len(samples) == 0 or float(np.abs(samples).max()) <= 10.0 ** (SILENCE_DB / 20.0)


def audible(waveform: np.ndarray | Tensor, sr: int, rate: int, what: str) -> np.ndarray:
    """``mono_at(waveform, sr, target_sr=rate)``, refusing empty or silent audio (peak at
    or below ``SILENCE_DB``, as ``musicssl.audio.check`` says): it has no pitch, key or
    tempo to read.

    Raises:
        MusicSSLError: as ``mono_at``, or empty or silent audio (the message starts with
            ``what``).
    """
    signal = mono_at(waveform, sr, target_sr=rate)
    if len(signal) == 0:
        raise MusicSSLError(f"{what}: the audio is empty")
    if is_silent(signal):
        raise MusicSSLError(f"{what}: the audio is silent (peak below {SILENCE_DB:g} dBFS)")
    return signal
