"""CLAP: audio and text towers trained to agree on paired clips and captions, against negatives.

Elizalde, Deshmukh, Al Ismail & Wang 2023, "CLAP: Learning Audio Concepts from Natural Language
Supervision"; Wu, Chen, Zhang, Hui, Berg-Kirkpatrick & Dubnov 2023, "Large-Scale Contrastive
Language-Audio Pretraining with Feature Fusion and Keyword-to-Caption Augmentation" (LAION-
CLAP). The loss and the learnt temperature are CLIP's (Radford et al. 2021).
"""

from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from musicssl.encoders import Encoder
from musicssl.encoders.heads import projection_head
from musicssl.losses import clip_loss
from musicssl.methods.base import Method
from musicssl.text import TextEncoder, build_text_encoder


class CLAP(Method):
    """One training step of CLAP on a batch of clips and their captions.

    Args:
        encoder: the audio tower. Output Shape: (batch_size, embedding_dim).
        text_encoder: the text tower. Output Shape: (batch_size, text_encoder.embedding_dim).
        audio_projection: MLP from the audio embedding to the joint space.
        text_projection: MLP from the text embedding to the joint space.
        temperature: initial softmax temperature (CLIP: 0.07).
        max_logit_scale: the largest ``1 / temperature`` (CLIP clamps it at 100).
        learn_temperature: learn ``log(1 / temperature)`` with the rest.
    """

    num_views = 1
    uses_text = True

    def __init__(
        self,
        encoder: Encoder,
        text_encoder: TextEncoder,
        audio_projection: nn.Module,
        text_projection: nn.Module,
        *,
        temperature: float = 0.07,
        max_logit_scale: float = 100.0,
        learn_temperature: bool = True,
    ) -> None:
        super().__init__()
        self.encoder = encoder
        self.text_encoder = text_encoder
        self.audio_projection = audio_projection
        self.text_projection = text_projection
        # CLIP learns the log of the inverse temperature: steps act on its scale, not its value.
        self.logit_scale = nn.Parameter(
            torch.tensor(math.log(1.0 / temperature)), requires_grad=learn_temperature
        )
        self.max_log_scale = math.log(max_logit_scale)

    def forward(self, x: Tensor, *, texts: list[str]) -> dict[str, Tensor]:
        """Loss of one batch. x Shape: (batch_size, ...) encoder input; one caption per clip."""
        z_audio = self.audio_projection(self.encoder(x))
        z_text = self.text_projection(self.text_encoder(texts))
        temperature = torch.exp(-self.logit_scale.clamp(max=self.max_log_scale))
        loss = clip_loss(z_audio, z_text, temperature=temperature)
        return {"loss": loss, "temperature": temperature.detach()}

    @torch.no_grad()
    def after_optimizer_step(self, step: int, total_steps: int) -> dict[str, float]:
        """Clamp the learnt scale to [1, ``max_logit_scale``], as CLIP does after each step."""
        self.logit_scale.clamp_(0.0, self.max_log_scale)
        return {"temperature": math.exp(-float(self.logit_scale))}

    def embed_text(self, texts: list[str]) -> Tensor:
        """Captions in the joint space, L2-normalised. Shape: (len(texts), projection_dim)."""
        return F.normalize(self.text_projection(self.text_encoder(texts)), dim=-1)

    def project_audio(self, embeddings: Tensor) -> Tensor:
        """Audio embeddings (the encoder's) in the joint space, L2-normalised.

        Shape: (batch_size, embedding_dim) -> (batch_size, projection_dim).
        """
        return F.normalize(self.audio_projection(embeddings), dim=-1)


def towers(
    encoder: Encoder,
    *,
    text_encoder: str,
    text_options: dict[str, Any] | None,
    hidden_dim: int,
    projection_dim: int,
) -> tuple[TextEncoder, nn.Module, nn.Module]:
    """The text tower and the two projections into a joint space (no batch norm)."""
    text = build_text_encoder(text_encoder, **(text_options or {}))
    audio_projection = projection_head(
        encoder.embedding_dim, hidden_dim, projection_dim, batch_norm=False
    )
    text_projection = projection_head(
        text.embedding_dim, hidden_dim, projection_dim, batch_norm=False
    )
    return text, audio_projection, text_projection


def clap(
    encoder: Encoder,
    *,
    text_encoder: str = "scratch",
    text_options: dict[str, Any] | None = None,
    hidden_dim: int = 512,
    projection_dim: int = 512,
    temperature: float = 0.07,
    learn_temperature: bool = True,
) -> CLAP:
    """CLAP with 2-layer projections to a 512-d joint space (as Elizalde et al.).

    Args:
        text_encoder: a name of ``musicssl.text.TEXT_ENCODERS`` (``scratch``: a small
            transformer with its own tokenizer; ``huggingface``: a local model folder).
        text_options: that text encoder's options, e.g. ``{path: models/bert}``.
    """
    text, audio_projection, text_projection = towers(
        encoder,
        text_encoder=text_encoder,
        text_options=text_options,
        hidden_dim=hidden_dim,
        projection_dim=projection_dim,
    )
    return CLAP(
        encoder,
        text,
        audio_projection,
        text_projection,
        temperature=temperature,
        learn_temperature=learn_temperature,
    )
