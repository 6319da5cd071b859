"""SimCLR / CLMR: two augmented crops of one track attract, the other tracks repel.

Chen et al. 2020, "A Simple Framework for Contrastive Learning of Visual Representations";
Spijkervet & Burgoyne 2021, "Contrastive Learning of Musical Representations" (CLMR: SimCLR on
raw waveforms with a SampleCNN encoder and music augmentations).
"""

from __future__ import annotations

from torch import Tensor, nn

from musicssl.encoders import Encoder
from musicssl.encoders.heads import projection_head
from musicssl.losses import nt_xent
from musicssl.methods.base import Method


class SimCLR(Method):
    """One training step of SimCLR.

    Args:
        encoder: maps a batch of views to clip embeddings, Shape: (batch_size, embedding_dim).
        projector: the MLP head on which the loss is computed (discarded after training).
        temperature: NT-Xent temperature (CLMR: 0.5).
    """

    def __init__(self, encoder: Encoder, projector: nn.Module, *, temperature: float) -> None:
        super().__init__()
        self.encoder = encoder
        self.projector = projector
        self.temperature = temperature

    def forward(self, x_a: Tensor, x_b: Tensor) -> dict[str, Tensor]:
        """Loss of one batch of view pairs. x_a, x_b Shape: (batch_size, ...) encoder input."""
        z_a = self.projector(self.encoder(x_a))
        z_b = self.projector(self.encoder(x_b))
        return {"loss": nt_xent(z_a, z_b, temperature=self.temperature)}


def simclr(
    encoder: Encoder,
    *,
    hidden_dim: int = 512,
    projection_dim: int = 128,
    temperature: float = 0.5,
) -> SimCLR:
    """SimCLR with CLMR's defaults: a 2-layer projector to 128 dims, temperature 0.5."""
    projector = projection_head(encoder.embedding_dim, hidden_dim, projection_dim, batch_norm=False)
    return SimCLR(encoder, projector, temperature=temperature)
