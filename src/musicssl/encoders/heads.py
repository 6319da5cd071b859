"""MLP heads put on top of an encoder by SSL methods (projectors, predictors, expanders)."""

from __future__ import annotations

from torch import nn

from musicssl.errors import MusicSSLError

__all__ = ["predictor", "projection_head"]


def projection_head(
    in_dim: int,
    hidden_dim: int,
    out_dim: int,
    *,
    num_layers: int = 2,
    batch_norm: bool = True,
) -> nn.Sequential:
    """An MLP: ``num_layers - 1`` blocks of linear [+ batch norm] + ReLU, then a linear layer.

    The SimCLR/CLMR projector is ``num_layers=2`` (CLMR without batch norm), BYOL's projector
    and predictor are ``num_layers=2`` with batch norm, and the VICReg / Barlow Twins expander
    is ``num_layers=3``. The output layer has no batch norm and no activation.

    Args:
        in_dim: Input size (the encoder's ``embedding_dim``).
        hidden_dim: Size of the hidden layers.
        out_dim: Output size.
        num_layers: Linear layers, at least 1 (1 is a linear map).
        batch_norm: Batch norm after each hidden linear layer (which then has no bias).

    Returns:
        A module mapping (batch_size, in_dim) to (batch_size, out_dim).
    """
    if num_layers < 1 or min(in_dim, hidden_dim, out_dim) < 1:
        raise MusicSSLError(
            f"projection_head: need num_layers >= 1 and positive sizes, got num_layers="
            f"{num_layers}, in_dim={in_dim}, hidden_dim={hidden_dim}, out_dim={out_dim}"
        )
    layers: list[nn.Module] = []
    width = in_dim
    for _ in range(num_layers - 1):
        layers.append(nn.Linear(width, hidden_dim, bias=not batch_norm))
        if batch_norm:
            layers.append(nn.BatchNorm1d(hidden_dim))
        layers.append(nn.ReLU())
        width = hidden_dim
    layers.append(nn.Linear(width, out_dim))
    return nn.Sequential(*layers)


predictor = projection_head
"""BYOL's predictor has the projector's architecture: ``predictor(dim, hidden_dim, dim)``."""
