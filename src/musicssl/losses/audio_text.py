"""Audio-text losses: CLAP's symmetric InfoNCE and SLAP's negative-free loss."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from musicssl.errors import MusicSSLError
from musicssl.losses._shared import _check_pair, _in_float32, _world, gather_with_grad


@_in_float32
def clip_loss(
    z_audio: Tensor, z_text: Tensor, *, temperature: float | Tensor, gather: bool = True
) -> Tensor:
    """Symmetric InfoNCE between paired audio and text embeddings (CLIP's loss, CLAP's).

    Radford et al. 2021 (CLIP); Elizalde et al. 2023, "CLAP: Learning Audio Concepts from
    Natural Language Supervision"; Wu et al. 2023, "Large-Scale Contrastive Language-Audio
    Pretraining with Feature Fusion and Keyword-to-Caption Augmentation". Row ``i`` of each
    side is the positive of row ``i`` of the other; every other row of the other side is a
    negative. ``loss = (CE(audio -> text) + CE(text -> audio)) / 2``, the logits being cosine
    similarities over ``temperature``. With ``gather`` under ``torch.distributed`` the
    candidates come from all processes (with gradient) and the anchors stay local.

    Args:
        z_audio: Audio embeddings, L2-normalised inside. Shape: (batch_size, dim).
        z_text: Text embeddings of the same items. Shape: (batch_size, dim).
        temperature: > 0; a tensor when it is learnt (CLIP starts at 0.07).
        gather: Gather candidates across processes when running distributed.

    Returns:
        Mean loss over the 2 * batch_size local anchors. Shape: ().
    """
    _check_pair(z_audio, z_text, "clip_loss")
    if isinstance(temperature, Tensor):
        temperature = temperature.float()
    elif not temperature > 0:
        raise MusicSSLError(f"clip_loss: temperature must be > 0, got {temperature}")
    batch_size = z_audio.shape[0]
    z_audio = F.normalize(z_audio, dim=1)
    z_text = F.normalize(z_text, dim=1)
    rank, world_size = _world() if gather else (0, 1)
    all_audio = gather_with_grad(z_audio) if world_size > 1 else z_audio
    all_text = gather_with_grad(z_text) if world_size > 1 else z_text
    targets = torch.arange(batch_size, device=z_audio.device) + rank * batch_size
    audio_to_text = z_audio @ all_text.T / temperature  # (N, NW)
    text_to_audio = z_text @ all_audio.T / temperature  # (N, NW)
    return (F.cross_entropy(audio_to_text, targets) + F.cross_entropy(text_to_audio, targets)) / 2


@_in_float32
def slap_loss(
    q_audio: Tensor,
    q_text: Tensor,
    target_audio: Tensor,
    target_text: Tensor,
    *,
    intermodal_weight: float = 0.5,
) -> tuple[Tensor, dict[str, Tensor]]:
    """SLAP's loss: each modality's prediction regresses both modalities' EMA targets.

    Guinot, Riou, Quinton & Fazekas 2025, "SLAP: Siamese Language-Audio Pretraining Without
    Negative Samples for Music Understanding", equations for the intermodal losses
    ``L_A->T = 1 - cos(q_A, z_T)``, ``L_T->A = 1 - cos(q_T, z_A)``, the intramodal losses
    ``L_A = 1 - cos(q_A, z_A)``, ``L_T = 1 - cos(q_T, z_T)``, and
    ``L = lambda (L_A->T + L_T->A) + (1 - lambda) (L_A + L_T)``, each term averaged over
    the batch. The targets are detached here (the stop-gradient is part of the loss). No
    negatives: nothing is gathered across processes.

    Args:
        q_audio: Audio predictions of the online network. Shape: (batch_size, dim).
        q_text: Text predictions of the online network. Shape: (batch_size, dim).
        target_audio: Audio projections of the target network. Shape: (batch_size, dim).
        target_text: Text projections of the target network. Shape: (batch_size, dim).
        intermodal_weight: ``lambda`` in [0, 1] (the paper: 0.5; outside [0.2, 0.7] it
            collapsed).

    Returns:
        ``(loss, {"audio_to_text", "text_to_audio", "audio", "text"})``, all of shape ().
    """
    _check_pair(q_audio, target_text, "slap_loss")
    _check_pair(q_text, target_audio, "slap_loss")
    _check_pair(q_audio, q_text, "slap_loss")
    if not 0.0 <= intermodal_weight <= 1.0:
        raise MusicSSLError(
            f"slap_loss: intermodal_weight must be in [0, 1], got {intermodal_weight}"
        )

    def distance(q: Tensor, z: Tensor) -> Tensor:
        return (1 - F.cosine_similarity(q, z.detach(), dim=1)).mean()

    terms = {
        "audio_to_text": distance(q_audio, target_text),
        "text_to_audio": distance(q_text, target_audio),
        "audio": distance(q_audio, target_audio),
        "text": distance(q_text, target_text),
    }
    intermodal = terms["audio_to_text"] + terms["text_to_audio"]
    intramodal = terms["audio"] + terms["text"]
    loss = intermodal_weight * intermodal + (1 - intermodal_weight) * intramodal
    return loss, terms
