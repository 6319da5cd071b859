"""What every text encoder offers a method: strings in, one vector per string out."""

from __future__ import annotations

from typing import Any

from torch import Tensor, nn


class TextEncoder(nn.Module):
    """Maps a batch of strings to vectors; tokenises inside.

    Attributes:
        embedding_dim: size of each output vector.
    """

    embedding_dim: int

    def forward(self, texts: list[str]) -> Tensor:  # pragma: no cover - interface
        """Shape: (len(texts), embedding_dim), on the device of the encoder's weights."""
        raise NotImplementedError

    def config(self) -> dict[str, Any]:
        """The factory options that rebuild this encoder (the weights aside)."""
        raise NotImplementedError


def device_of(module: nn.Module) -> Any:
    """The device of a module's first parameter (where token ids must go)."""
    return next(module.parameters()).device
