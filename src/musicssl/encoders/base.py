"""The interface every encoder of the zoo offers (see ``musicssl.encoders`` for its contract)."""

from __future__ import annotations

from typing import Any

from torch import Tensor, nn


class Encoder(nn.Module):
    """An encoder: waveforms in, clip embeddings, frame features and every layer out.

    Subclasses set the four attributes in their constructor and define the methods.
    """

    embedding_dim: int
    sample_rate: int
    input_samples: int
    num_layers: int

    def forward_features(self, x: Tensor, *, layer: int | None = None) -> Tensor:
        raise NotImplementedError

    def forward_layers(self, x: Tensor) -> list[Tensor]:
        raise NotImplementedError

    def pool(self, features: Tensor) -> Tensor:
        raise NotImplementedError

    def frame_hop(self, layer: int | None = None) -> int:
        raise NotImplementedError

    def config(self) -> dict[str, Any]:
        raise NotImplementedError
