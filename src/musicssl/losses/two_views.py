"""Two-view losses: SimCLR/CLMR's NT-Xent, BYOL, VICReg, Barlow Twins, and the EMA helpers."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from musicssl.errors import MusicSSLError
from musicssl.losses._shared import _check_pair, _in_float32, _world, gather_with_grad


@_in_float32
def nt_xent(z_a: Tensor, z_b: Tensor, *, temperature: float, gather: bool = True) -> Tensor:
    """Normalised temperature-scaled cross-entropy (NT-Xent) over the 2N views of N pairs.

    Chen et al. 2020, "A Simple Framework for Contrastive Learning of Visual Representations";
    used for music by Spijkervet & Burgoyne 2021 (CLMR). Each of the 2N embeddings is an
    anchor; its positive is the other view of the same item and its negatives are the other
    2N - 2 embeddings. With ``gather`` under ``torch.distributed`` the negatives come from
    all processes (2NW - 2 of them for world size W), while the anchors stay local.

    Args:
        z_a: Embeddings of the first views, L2-normalised inside. Shape: (batch_size, dim).
        z_b: Embeddings of the second views. Shape: (batch_size, dim).
        temperature: Softmax temperature (> 0); CLMR uses 0.5, SimCLR 0.1 to 0.5.
        gather: Gather negatives across processes when running distributed.

    Returns:
        Mean loss over the 2 * batch_size local anchors. Shape: ().
    """
    _check_pair(z_a, z_b, "nt_xent")
    if not temperature > 0:
        raise MusicSSLError(f"nt_xent: temperature must be > 0, got {temperature}")
    batch_size = z_a.shape[0]
    z_a = F.normalize(z_a, dim=1)
    z_b = F.normalize(z_b, dim=1)
    rank, world_size = _world() if gather else (0, 1)
    all_a = gather_with_grad(z_a) if world_size > 1 else z_a
    all_b = gather_with_grad(z_b) if world_size > 1 else z_b
    num_all = all_a.shape[0]  # world_size * batch_size

    anchors = torch.cat([z_a, z_b], dim=0)  # (2N, D)
    candidates = torch.cat([all_a, all_b], dim=0)  # (2NW, D)
    logits = anchors @ candidates.T / temperature  # (2N, 2NW)

    # Where this process's rows sit among the candidates: a_i at offset + i, b_i at
    # num_all + offset + i.
    local = torch.arange(batch_size, device=z_a.device) + rank * batch_size
    self_index = torch.cat([local, local + num_all])
    positive_index = torch.cat([local + num_all, local])
    # An anchor is not its own negative.
    is_self = torch.zeros_like(logits, dtype=torch.bool)
    is_self[torch.arange(2 * batch_size, device=z_a.device), self_index] = True
    logits = logits.masked_fill(is_self, float("-inf"))
    return F.cross_entropy(logits, positive_index)


@_in_float32
def byol_loss(p: Tensor, z: Tensor) -> Tensor:
    """BYOL's regression loss, ``2 - 2 cos(p, z)`` averaged over the batch.

    Grill et al. 2020, "Bootstrap Your Own Latent". The target ``z`` is detached here (the
    stop-gradient is part of the loss), so callers may pass the target network's output as
    it is. The symmetric loss of the paper is ``byol_loss(p_a, z_b) + byol_loss(p_b, z_a)``.

    Args:
        p: Predictions of the online network. Shape: (batch_size, dim).
        z: Projections of the target network. Shape: (batch_size, dim).

    Returns:
        Mean loss, in [0, 4]. Shape: ().
    """
    _check_pair(p, z, "byol_loss")
    cosine = F.cosine_similarity(p, z.detach(), dim=1)
    return (2 - 2 * cosine).mean()


def cosine_ema_momentum(
    step: int, total_steps: int, *, base: float = 0.996, final: float = 1.0
) -> float:
    """BYOL's target momentum: rises from ``base`` at step 0 to ``final`` at ``total_steps``.

    ``tau = final - (final - base) * (cos(pi * step / total_steps) + 1) / 2``; steps past the
    end stay at ``final`` (1 in the paper).

    Args:
        step: Current optimiser step, >= 0.
        total_steps: Steps of the whole run, > 0.
        base: Momentum at step 0, in [0, 1].
        final: Momentum at the end, in [base, 1].
    """
    if total_steps <= 0 or step < 0:
        raise MusicSSLError(
            f"cosine_ema_momentum: need step >= 0 and total_steps > 0, got step={step}, "
            f"total_steps={total_steps}"
        )
    if not 0.0 <= base <= final <= 1.0:
        raise MusicSSLError(
            f"cosine_ema_momentum: need 0 <= base <= final <= 1, got {base}, {final}"
        )
    progress = min(step, total_steps) / total_steps
    return final - (final - base) * (math.cos(math.pi * progress) + 1.0) / 2.0


@torch.no_grad()
def ema_update(target: nn.Module, online: nn.Module, *, momentum: float) -> None:
    """Move ``target``'s parameters towards ``online``'s: ``t = m * t + (1 - m) * o``.

    Buffers (batch-norm running statistics) are copied from ``online``: an average of
    running averages would lag twice, and integer counters cannot be averaged.

    Args:
        target: The EMA network, updated in place; same architecture as ``online``.
        online: The network trained by gradient.
        momentum: ``m`` in [0, 1]; 1 leaves ``target`` unchanged.
    """
    if not 0.0 <= momentum <= 1.0:
        raise MusicSSLError(f"ema_update: momentum must be in [0, 1], got {momentum}")
    target_params = dict(target.named_parameters())
    online_params = dict(online.named_parameters())
    target_buffers = dict(target.named_buffers())
    online_buffers = dict(online.named_buffers())
    differ = (set(target_params) ^ set(online_params)) | (set(target_buffers) ^ set(online_buffers))
    if differ:
        raise MusicSSLError(f"ema_update: target and online differ in {sorted(differ)[:5]}")
    for name, param in target_params.items():
        param.lerp_(online_params[name].detach(), 1.0 - momentum)
    for name, buffer in target_buffers.items():
        buffer.copy_(online_buffers[name])


def _off_diagonal(matrix: Tensor) -> Tensor:
    """The off-diagonal entries of a square matrix, flattened. Shape: (n * (n - 1),)."""
    n = matrix.shape[0]
    return matrix[~torch.eye(n, dtype=torch.bool, device=matrix.device)]


@_in_float32
def vicreg_loss(
    z_a: Tensor,
    z_b: Tensor,
    *,
    sim_weight: float = 25.0,
    var_weight: float = 25.0,
    cov_weight: float = 1.0,
    eps: float = 1e-4,
    gather: bool = True,
) -> tuple[Tensor, dict[str, Tensor]]:
    """Variance-Invariance-Covariance Regularisation.

    Bardes, Ponce & LeCun 2022, "VICReg: Variance-Invariance-Covariance Regularization for
    Self-Supervised Learning". With ``Z`` centred over the batch of ``n`` rows and ``d``
    dims:

    - invariance ``s = mean((z_a - z_b) ** 2)`` over batch and dims;
    - variance ``v = (h(Z_a) + h(Z_b)) / 2`` with ``h(Z) = mean_j relu(1 - sqrt(var(Z_j) + eps))``
      (unbiased variance);
    - covariance ``c = f(Z_a) + f(Z_b)`` with ``f(Z) = sum_{i != j} C_ij ** 2 / d`` and
      ``C = Z^T Z / (n - 1)``.

    The variance term averages the two views and the covariance term adds them, as the
    authors' released code does (the weights 25 / 25 / 1 were tuned that way; the paper's
    equation adds both). With ``gather`` under ``torch.distributed``, variance and
    covariance use the batch of all processes and invariance the local rows.

    Args:
        z_a: Expander outputs of the first views. Shape: (batch_size, dim), batch_size >= 2.
        z_b: Expander outputs of the second views. Shape: (batch_size, dim).
        sim_weight: Weight of the invariance term (lambda).
        var_weight: Weight of the variance term (mu).
        cov_weight: Weight of the covariance term (nu).
        eps: Added to the variance before the square root, for stability.
        gather: Gather the batch across processes when running distributed.

    Returns:
        ``(loss, {"invariance": s, "variance": v, "covariance": c})``, all of shape ().
    """
    _check_pair(z_a, z_b, "vicreg_loss", min_batch=2)
    invariance = F.mse_loss(z_a, z_b)
    if gather:
        z_a, z_b = gather_with_grad(z_a), gather_with_grad(z_b)
    variance = (_variance_term(z_a, eps) + _variance_term(z_b, eps)) / 2
    covariance = _covariance_term(z_a) + _covariance_term(z_b)
    loss = sim_weight * invariance + var_weight * variance + cov_weight * covariance
    return loss, {"invariance": invariance, "variance": variance, "covariance": covariance}


def _variance_term(z: Tensor, eps: float) -> Tensor:
    std = torch.sqrt(z.var(dim=0) + eps)  # (D,)
    return F.relu(1.0 - std).mean()


def _covariance_term(z: Tensor) -> Tensor:
    num_rows, dim = z.shape
    z = z - z.mean(dim=0)
    cov = z.T @ z / (num_rows - 1)  # (D, D)
    return _off_diagonal(cov).pow(2).sum() / dim


@_in_float32
def barlow_twins_loss(
    z_a: Tensor,
    z_b: Tensor,
    *,
    lambda_offdiag: float = 5e-3,
    eps: float = 1e-5,
    gather: bool = True,
) -> tuple[Tensor, dict[str, Tensor]]:
    """Barlow Twins: drive the cross-correlation of the two views to the identity.

    Zbontar et al. 2021, "Barlow Twins: Self-Supervised Learning via Redundancy Reduction".
    Each dim is standardised over the batch as batch norm does in training (biased variance,
    ``eps`` inside the square root); ``C = Z_a^T Z_b / n``;
    ``loss = sum_i (1 - C_ii) ** 2 + lambda_offdiag * sum_{i != j} C_ij ** 2``.
    With ``gather`` under ``torch.distributed`` the statistics and ``C`` use the batch of all
    processes, with gradient, so the gradient is not shrunk by the world size.

    Args:
        z_a: Projector outputs of the first views. Shape: (batch_size, dim), batch_size >= 2.
        z_b: Projector outputs of the second views. Shape: (batch_size, dim).
        lambda_offdiag: Weight of the redundancy (off-diagonal) term.
        eps: Added to the variance before the square root.
        gather: Gather the batch across processes when running distributed.

    Returns:
        ``(loss, {"invariance": sum_i (1 - C_ii) ** 2, "redundancy": sum_{i != j} C_ij ** 2})``,
        all of shape ().
    """
    _check_pair(z_a, z_b, "barlow_twins_loss", min_batch=2)
    if gather:
        z_a, z_b = gather_with_grad(z_a), gather_with_grad(z_b)
    num_rows = z_a.shape[0]
    cross = _standardise(z_a, eps).T @ _standardise(z_b, eps) / num_rows  # (D, D)
    invariance = (1.0 - torch.diagonal(cross)).pow(2).sum()
    redundancy = _off_diagonal(cross).pow(2).sum()
    loss = invariance + lambda_offdiag * redundancy
    return loss, {"invariance": invariance, "redundancy": redundancy}


def _standardise(z: Tensor, eps: float) -> Tensor:
    mean = z.mean(dim=0)
    var = z.var(dim=0, unbiased=False)
    return (z - mean) / torch.sqrt(var + eps)
