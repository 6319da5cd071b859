"""The interface every encoder of the zoo offers (see ``musicssl.encoders`` for its contract)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch import Tensor, nn

from musicssl.encoders._shared import resolve_layer
from musicssl.runtime import check_device
from musicssl.windowing import frame_centres

if TYPE_CHECKING:
    from typing_extensions import Self  # typing's own from Python 3.11


class Encoder(nn.Module):
    """An encoder: waveforms in, clip embeddings, frame features and every layer out.

    Subclasses set the four attributes in their constructor and define ``forward_layers``,
    ``frame_hop`` and ``config``; the clip embedding, one layer's features and the pooling
    have defaults (one layer of ``forward_layers``, the mean over frames) that an encoder with
    a cheaper path overrides.
    """

    embedding_dim: int
    sample_rate: int
    input_samples: int
    num_layers: int
    # An encoder that reads any length from this many samples sets it: a signal shorter than
    # one window is then encoded as it is, not padded with silence to ``input_samples``.
    shortest_input: int | None = None
    # Samples between window starts when no hop is asked for; None: the window's length.
    window_hop: int | None = None

    def to(self, *args: Any, **kwargs: Any) -> Self:
        """``nn.Module.to``; a device this machine lacks is refused in one line first.

        Every model that reads a trained encoder (``musicssl.load``, the key, tempo and pitch
        read-outs) moves it here, so each refuses a missing CUDA or MPS alike, where torch
        would raise an assertion or a build error.

        Raises:
            MusicSSLError: not a device, or one this machine lacks (``check_device``).
        """
        device = kwargs.get("device", args[0] if args else None)
        if isinstance(device, (str, torch.device)):  # not a dtype or a tensor
            check_device(device)
        return super().to(*args, **kwargs)

    def forward(self, x: Tensor) -> Tensor:
        """Clip embeddings. Shape: (batch_size, num_samples) -> (batch_size, embedding_dim)."""
        return self.pool(self.forward_features(x))

    def forward_features(self, x: Tensor, *, layer: int | None = None) -> Tensor:
        """Frame features after ``layer`` (None: the last). Shape: (batch, channels, frames)."""
        return self.forward_layers(x)[resolve_layer(layer, self.num_layers, type(self).__name__)]

    def forward_layers(self, x: Tensor) -> list[Tensor]:
        raise NotImplementedError

    def layer_labels(self) -> list[str]:
        """What each layer of ``forward_layers`` is, for reports: "" where the layer's number
        says it all (one stack of layers); an encoder of parts names the part of each."""
        return [""] * self.num_layers

    def pool(self, features: Tensor) -> Tensor:
        """Mean over frames. Shape: (batch, channels, frames) -> (batch, channels)."""
        return features.mean(dim=-1)

    def frame_hop(self, layer: int | None = None) -> int:
        raise NotImplementedError

    def frame_centres(
        self, num_frames: int, *, window: int, layer: int | None = None
    ) -> np.ndarray:
        """Where the ``num_frames`` frames of ``layer`` from a ``window``-sample input are
        centred, in samples from its start: ``frame_hop`` apart, their span centred in the
        window (``musicssl.windowing.frame_centres``)."""
        return frame_centres(num_frames, window=window, hop=self.frame_hop(layer))

    def config(self) -> dict[str, Any]:
        raise NotImplementedError
