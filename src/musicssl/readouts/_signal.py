"""What the key and tempo read-outs share: audible mono audio, windows, a run's branch."""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

from musicssl.encoders import Branches
from musicssl.errors import MusicSSLError
from musicssl.waveform import mono_at

# A peak at or below this level is silence (``musicssl.audio.check``'s default).
_SILENCE_DB = -90.0


def audible(waveform: np.ndarray | Tensor, sr: int, rate: int, what: str) -> np.ndarray:
    """The mono signal at ``rate``; empty or silent audio (peak at or below -90 dBFS, as
    ``musicssl.audio.check`` says) has no key or tempo to read."""
    signal = mono_at(waveform, sr, target_sr=rate)
    if len(signal) == 0:
        raise MusicSSLError(f"{what}: the audio is empty")
    if float(np.abs(signal).max()) <= 10.0 ** (_SILENCE_DB / 20.0):
        raise MusicSSLError(f"{what}: the audio is silent (peak below {_SILENCE_DB:g} dBFS)")
    return signal


def signal_windows(signal: np.ndarray, size: int, step: int) -> Tensor:
    """Windows of ``size`` samples every ``step``, the last one ending with the signal; a
    short signal is zero-padded to one window.

    Shape: (num_samples,) -> (num_windows, size).
    """
    if len(signal) < size:
        signal = np.pad(signal, (0, size - len(signal)))
    starts = list(range(0, len(signal) - size + 1, step))
    if starts[-1] + size < len(signal):
        starts.append(len(signal) - size)
    return torch.from_numpy(np.stack([signal[s : s + size] for s in starts]))


def the_branch(encoder: torch.nn.Module, kind: type) -> torch.nn.Module:
    """A combined run's one branch of ``kind``; any other encoder as it is."""
    if isinstance(encoder, Branches):
        found = [branch for branch in encoder.branches.values() if isinstance(branch, kind)]
        if len(found) == 1:
            return found[0]
    return encoder
