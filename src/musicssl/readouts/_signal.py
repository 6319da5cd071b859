"""What the key and tempo read-outs share: windows of a signal, a run's trained branch."""

from __future__ import annotations

import os
from typing import TypeVar

import numpy as np
import torch
from torch import Tensor

from musicssl import checkpoint
from musicssl.encoders import Branches, encoder_name
from musicssl.errors import MusicSSLError

Network = TypeVar("Network", bound=torch.nn.Module)


def require_seconds(
    signal: np.ndarray, rate: int, *, what: str, needs: str, seconds: float
) -> None:
    """Refuse a signal at ``rate`` shorter than ``seconds``: too short to read ``what`` from.

    Raises:
        MusicSSLError: "tempo: the audio lasts 0.2 s; a tempo needs a few beats, 2 s at least".
    """
    if len(signal) < seconds * rate:
        raise MusicSSLError(
            f"{what}: the audio lasts {len(signal) / rate:.2g} s; a {what} needs {needs}, "
            f"{seconds:g} s at least"
        )


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


def trained_branch(
    run: str | os.PathLike, kind: type[Network], *, task: str, name: str, recipe: str
) -> Network:
    """The encoder of ``run`` if it is a ``kind`` (registered as ``name``), or a combined
    run's one branch of that kind.

    Raises:
        MusicSSLError: not a checkpoint, or no such network in it (naming ``recipe``, which
            trains one).
    """
    encoder = checkpoint.load_encoder(run)
    if isinstance(encoder, Branches):
        found = [branch for branch in encoder.branches.values() if isinstance(branch, kind)]
        if len(found) == 1:
            return found[0]
    if not isinstance(encoder, kind):
        raise MusicSSLError(
            f"{run}: not a {task} run (its encoder is {encoder_name(encoder)}, not {name} or "
            f"branches with one {name}; train one with the {recipe} recipe)"
        )
    return encoder
