"""BYOL: an online network predicts a slowly moving (EMA) target network; no negatives.

Grill et al. 2020, "Bootstrap Your Own Latent: A New Approach to Self-Supervised Learning".
"""

from __future__ import annotations

import copy
from typing import Any

import torch
from torch import Tensor, nn

from musicssl.encoders import Encoder
from musicssl.encoders.heads import projection_head
from musicssl.losses import byol_loss, cosine_ema_momentum, ema_update
from musicssl.methods.base import Method


class BYOL(Method):
    """One training step of BYOL, and the target update after each optimiser step.

    Args:
        encoder: online encoder. Output Shape: (batch_size, embedding_dim).
        projector: online projection MLP.
        predictor: online prediction MLP (the asymmetry that prevents collapse).
        base_momentum: EMA momentum at step 0; rises to ``final_momentum`` on a cosine schedule.
        final_momentum: EMA momentum at the last step (1 in the paper).
        predictor_lr_scale: the predictor's learning rate relative to the rest's (a faster
            predictor tracks the target more closely, as in SimSiam and DirectPred).
    """

    def __init__(
        self,
        encoder: Encoder,
        projector: nn.Module,
        predictor: nn.Module,
        *,
        base_momentum: float,
        final_momentum: float = 1.0,
        predictor_lr_scale: float = 1.0,
    ) -> None:
        super().__init__()
        self.encoder = encoder
        self.projector = projector
        self.predictor = predictor
        self.target_encoder = copy.deepcopy(encoder).requires_grad_(False)
        self.target_projector = copy.deepcopy(projector).requires_grad_(False)
        self.base_momentum = base_momentum
        self.final_momentum = final_momentum
        self.predictor_lr_scale = predictor_lr_scale

    def parameter_groups(self) -> list[dict[str, Any]]:
        """Optimiser groups: the predictor at ``predictor_lr_scale`` times the learning rate."""
        predictor = list(self.predictor.parameters())
        chosen = {id(p) for p in predictor}
        rest = [p for p in self.parameters() if p.requires_grad and id(p) not in chosen]
        return [{"params": rest}, {"params": predictor, "lr_scale": self.predictor_lr_scale}]

    def forward(self, x_a: Tensor, x_b: Tensor) -> dict[str, Tensor]:
        """Symmetrised loss of one batch of view pairs. x_a, x_b Shape: (batch_size, ...)."""
        p_a = self.predictor(self.projector(self.encoder(x_a)))
        p_b = self.predictor(self.projector(self.encoder(x_b)))
        with torch.no_grad():
            z_a = self.target_projector(self.target_encoder(x_a))
            z_b = self.target_projector(self.target_encoder(x_b))
        loss = byol_loss(p_a, z_b) + byol_loss(p_b, z_a)
        return {"loss": loss}

    @torch.no_grad()
    def after_optimizer_step(self, step: int, total_steps: int) -> dict[str, float]:
        """Move the target towards the online network; returns the momentum used."""
        momentum = cosine_ema_momentum(
            step, total_steps, base=self.base_momentum, final=self.final_momentum
        )
        ema_update(self.target_encoder, self.encoder, momentum=momentum)
        ema_update(self.target_projector, self.projector, momentum=momentum)
        return {"momentum": momentum}


def byol(
    encoder: Encoder,
    *,
    hidden_dim: int = 4096,
    projection_dim: int = 256,
    base_momentum: float = 0.996,
    final_momentum: float = 1.0,
    predictor_lr_scale: float = 1.0,
) -> BYOL:
    """BYOL with the paper's heads: 2-layer MLPs with batch norm, 4096 hidden, 256 out."""
    projector = projection_head(encoder.embedding_dim, hidden_dim, projection_dim)
    predictor = projection_head(projection_dim, hidden_dim, projection_dim)
    return BYOL(
        encoder,
        projector,
        predictor,
        base_momentum=base_momentum,
        final_momentum=final_momentum,
        predictor_lr_scale=predictor_lr_scale,
    )
