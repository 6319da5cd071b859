"""VICReg: invariance between views, variance kept up and covariance driven down per batch.

Bardes, Ponce & LeCun 2022, "VICReg: Variance-Invariance-Covariance Regularization for
Self-Supervised Learning".
"""

from __future__ import annotations

from torch import Tensor, nn

from musicssl.encoders import Encoder
from musicssl.encoders.heads import projection_head
from musicssl.losses import vicreg_loss
from musicssl.methods.base import Method


class VICReg(Method):
    """One training step of VICReg.

    Args:
        encoder: Output Shape: (batch_size, embedding_dim).
        expander: the MLP whose outputs are regularised (discarded after training).
        sim_weight, var_weight, cov_weight: weights of the three terms (paper: 25, 25, 1).
    """

    def __init__(
        self,
        encoder: Encoder,
        expander: nn.Module,
        *,
        sim_weight: float,
        var_weight: float,
        cov_weight: float,
    ) -> None:
        super().__init__()
        self.encoder = encoder
        self.expander = expander
        self.sim_weight, self.var_weight, self.cov_weight = sim_weight, var_weight, cov_weight

    def forward(self, x_a: Tensor, x_b: Tensor) -> dict[str, Tensor]:
        z_a = self.expander(self.encoder(x_a))
        z_b = self.expander(self.encoder(x_b))
        loss, terms = vicreg_loss(
            z_a,
            z_b,
            sim_weight=self.sim_weight,
            var_weight=self.var_weight,
            cov_weight=self.cov_weight,
        )
        return {"loss": loss, **terms}


def vicreg(
    encoder: Encoder,
    *,
    hidden_dim: int = 2048,
    projection_dim: int = 2048,
    num_layers: int = 3,
    sim_weight: float = 25.0,
    var_weight: float = 25.0,
    cov_weight: float = 1.0,
) -> VICReg:
    """VICReg with a 3-layer expander (the paper uses 8192 wide; 2048 fits small batches)."""
    expander = projection_head(
        encoder.embedding_dim, hidden_dim, projection_dim, num_layers=num_layers
    )
    return VICReg(
        encoder, expander, sim_weight=sim_weight, var_weight=var_weight, cov_weight=cov_weight
    )
