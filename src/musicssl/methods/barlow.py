"""Barlow Twins: the cross-correlation of the two views' embeddings is driven to identity.

Zbontar, Jing, Misra, LeCun & Deny 2021, "Barlow Twins: Self-Supervised Learning via
Redundancy Reduction".
"""

from __future__ import annotations

from torch import Tensor, nn

from musicssl.encoders import Encoder
from musicssl.encoders.heads import projection_head
from musicssl.losses import barlow_twins_loss
from musicssl.methods.base import Method


class BarlowTwins(Method):
    """One training step of Barlow Twins.

    Args:
        encoder: Output Shape: (batch_size, embedding_dim).
        projector: the MLP whose outputs are correlated (discarded after training).
        lambda_offdiag: weight of the redundancy-reduction term (paper: 5e-3).
    """

    def __init__(self, encoder: Encoder, projector: nn.Module, *, lambda_offdiag: float) -> None:
        super().__init__()
        self.encoder = encoder
        self.projector = projector
        self.lambda_offdiag = lambda_offdiag

    def forward(self, x_a: Tensor, x_b: Tensor) -> dict[str, Tensor]:
        z_a = self.projector(self.encoder(x_a))
        z_b = self.projector(self.encoder(x_b))
        loss, terms = barlow_twins_loss(z_a, z_b, lambda_offdiag=self.lambda_offdiag)
        return {"loss": loss, **terms}


def barlow_twins(
    encoder: Encoder,
    *,
    hidden_dim: int = 2048,
    projection_dim: int = 2048,
    num_layers: int = 3,
    lambda_offdiag: float = 5e-3,
) -> BarlowTwins:
    """Barlow Twins with a 3-layer projector (the paper uses 8192 wide)."""
    projector = projection_head(
        encoder.embedding_dim, hidden_dim, projection_dim, num_layers=num_layers
    )
    return BarlowTwins(encoder, projector, lambda_offdiag=lambda_offdiag)
