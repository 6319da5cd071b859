"""Helpers shared by the encoders (functions, not a base class)."""

from __future__ import annotations

from collections import deque
from collections.abc import Iterator

from torch import Tensor

from musicssl.errors import MusicSSLError


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
