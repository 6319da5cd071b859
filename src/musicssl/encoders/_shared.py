"""Helpers shared by the encoders (functions, not a base class)."""

from __future__ import annotations

from collections import deque
from collections.abc import Iterator
from typing import Any

from torch import Tensor, nn

from musicssl.errors import MusicSSLError
from musicssl.features import C1_HZ, CQT, LogMel


def resolve_layer(layer: int | None, num_layers: int, owner: str) -> int:
    """Index of a feature layer in ``range(num_layers)``; None is the last, negatives count back.

    Raises:
        MusicSSLError: ``layer`` is outside ``[-num_layers, num_layers)``.
    """
    if layer is None:
        return num_layers - 1
    if not -num_layers <= layer < num_layers:
        raise MusicSSLError(
            f"{owner}: layer must be in [-{num_layers}, {num_layers - 1}], got {layer}"
        )
    return layer % num_layers


def check_waveforms(x: Tensor, owner: str) -> None:
    """Raise unless ``x`` is a float batch of mono waveforms, shape (batch_size, num_samples)."""
    if not isinstance(x, Tensor):
        raise MusicSSLError(f"{owner}: expected a torch tensor of waveforms, got "
                            f"{type(x).__name__} (torch.from_numpy makes one)")  # fmt: skip
    if x.ndim != 2 or not x.is_floating_point():
        raise MusicSSLError(
            f"{owner}: expected float waveforms of shape (batch_size, num_samples), got "
            f"{tuple(x.shape)} {x.dtype}"
        )


def last(outputs: Iterator[Tensor]) -> Tensor:
    """The final item of ``outputs``; each earlier one is dropped as soon as the next arrives.

    Unpacking (``*_, h = outputs``) would hold every layer's features in memory at once.
    """
    return deque(outputs, maxlen=1)[0]


def frontend_config(
    *,
    frontend: str,
    sample_rate: int,
    n_fft: int,
    hop_length: int,
    n_bins: int,
    f_min: float | None,
    f_max: float | None,
    bins_per_octave: int,
) -> dict[str, Any]:
    """A spectrogram encoder's front-end arguments as plain JSON/YAML values: what it saves
    in its config and what ``spectrogram_frontend`` builds the front end from."""
    return {
        "frontend": str(frontend),
        "sample_rate": int(sample_rate),
        "n_fft": int(n_fft),
        "hop_length": int(hop_length),
        "n_bins": int(n_bins),
        "f_min": None if f_min is None else float(f_min),
        "f_max": None if f_max is None else float(f_max),
        "bins_per_octave": int(bins_per_octave),
    }


def spectrogram_frontend(owner: str, spectrum: dict[str, Any]) -> nn.Module:
    """A log-mel or constant-Q front end in decibels: (B, num_samples) -> (B, n_bins, T).

    Args:
        owner: The encoder, for messages.
        spectrum: ``frontend_config``'s values. ``frontend`` is ``"mel"`` (``LogMel``:
            ``n_fft``, ``f_min`` default 0, ``f_max``) or ``"cqt"`` (``CQT``: ``f_min`` is the
            lowest bin's centre, default C1; ``bins_per_octave``).

    Raises:
        MusicSSLError: an unknown ``frontend``, or arguments the front end refuses.
    """
    frontend, f_min = spectrum["frontend"], spectrum["f_min"]
    if frontend == "mel":
        return LogMel(
            sr=spectrum["sample_rate"],
            n_fft=spectrum["n_fft"],
            hop_length=spectrum["hop_length"],
            n_mels=spectrum["n_bins"],
            f_min=0.0 if f_min is None else f_min,
            f_max=spectrum["f_max"],
        )
    if frontend == "cqt":
        return CQT(
            sr=spectrum["sample_rate"],
            hop_length=spectrum["hop_length"],
            fmin=C1_HZ if f_min is None else f_min,
            n_bins=spectrum["n_bins"],
            bins_per_octave=spectrum["bins_per_octave"],
        )
    raise MusicSSLError(f"{owner}: frontend must be 'mel' or 'cqt', got {frontend!r}")
