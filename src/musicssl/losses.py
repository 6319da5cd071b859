"""Self-supervised losses as pure functions over tensors.

Every loss takes embeddings of two views, ``z_a`` and ``z_b`` of shape ``(batch_size, dim)``,
row ``i`` of one view pairing with row ``i`` of the other. Losses with several named terms
return ``(loss, terms)``: ``loss`` is the weighted total to back-propagate and ``terms`` maps
each term's name to its *unweighted* value, so a method can log them as they are.

Under ``torch.distributed`` (world size > 1) the batch-level losses can gather the other
processes' embeddings with gradient (``gather=True``). The per-process loss is then built so
that data-parallel training, which averages gradients over processes, gets exactly the gradient
of the single-process loss over the concatenated batch. That needs every process to hold the
same local batch size (drop the last incomplete batch).
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable
from typing import Any, TypeVar, cast

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import Tensor, nn

from musicssl.errors import MusicSSLError

__all__ = [
    "barlow_twins_loss",
    "byol_loss",
    "clip_loss",
    "codebook_usage",
    "cosine_ema_momentum",
    "ema_update",
    "expected_value_equivariance",
    "gather_with_grad",
    "invariance_cross_entropy",
    "key_cpsd_loss",
    "masked_code_cross_entropy",
    "masked_patch_mse",
    "normalise_patches",
    "nt_xent",
    "random_patch_mask",
    "random_projection_codes",
    "shift_cross_entropy",
    "slap_loss",
    "span_mask",
    "vicreg_loss",
]


_Loss = TypeVar("_Loss", bound=Callable[..., Any])


def _in_float32(loss: _Loss) -> _Loss:
    """Run ``loss`` with autocast off and half-precision tensor arguments cast to float32.

    Under bf16, logits divided by a small temperature and sums of squared correlations keep
    only two or three significant digits; the losses are cheap next to the encoder.
    """

    def upcast(value: Any) -> Any:
        if isinstance(value, Tensor) and value.dtype in (torch.float16, torch.bfloat16):
            return value.float()
        return value

    @functools.wraps(loss)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        tensors = [v for v in (*args, *kwargs.values()) if isinstance(v, Tensor)]
        device_type = tensors[0].device.type if tensors else "cpu"
        with torch.autocast(device_type=device_type, enabled=False):
            args = tuple(upcast(v) for v in args)
            kwargs = {k: upcast(v) for k, v in kwargs.items()}
            return loss(*args, **kwargs)

    return cast(_Loss, wrapper)


def _world() -> tuple[int, int]:
    """(rank, world_size) of the default process group, or (0, 1) outside one."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


class _GatherWithGrad(torch.autograd.Function):
    """``all_gather`` whose backward hands each process the gradient of its own rows.

    Every process computes its loss from all processes' rows, so the gradient of a process's
    rows is the sum over processes of their losses' gradients: all-reduce (sum) the incoming
    gradient and keep this process's slice. Data-parallel averaging then divides by the world
    size, which yields the gradient of the mean loss. Returning the local slice without the
    sum is the classic bug that shrinks gradients by ``1 / world_size``.
    """

    @staticmethod
    def forward(ctx, x: Tensor) -> Tensor:
        rank, world_size = _world()
        parts = [torch.empty_like(x) for _ in range(world_size)]
        dist.all_gather(parts, x.contiguous())
        ctx.rank = rank
        ctx.batch_size = x.shape[0]
        return torch.cat(parts, dim=0)

    @staticmethod
    def backward(ctx, grad: Tensor) -> Tensor:
        grad = grad.contiguous().clone()
        dist.all_reduce(grad, op=dist.ReduceOp.SUM)
        start = ctx.rank * ctx.batch_size
        return grad[start : start + ctx.batch_size]


def gather_with_grad(x: Tensor) -> Tensor:
    """Concatenate ``x`` from all processes along the batch axis, keeping the gradient.

    Outside ``torch.distributed`` or with a single process, returns ``x`` unchanged.

    Args:
        x: This process's rows. Shape: (batch_size, ...), the same on every process.

    Returns:
        Rows of process 0, then process 1, ... Shape: (world_size * batch_size, ...).
    """
    _, world_size = _world()
    if world_size == 1:
        return x
    return _GatherWithGrad.apply(x)


def _check_pair(z_a: Tensor, z_b: Tensor, name: str, *, min_batch: int = 1) -> None:
    if z_a.ndim != 2 or z_a.shape != z_b.shape:
        raise MusicSSLError(
            f"{name}: expected two embeddings of the same shape (batch_size, dim), "
            f"got {tuple(z_a.shape)} and {tuple(z_b.shape)}"
        )
    if z_a.shape[0] < min_batch:
        raise MusicSSLError(
            f"{name}: needs a batch of at least {min_batch} pairs, got {z_a.shape[0]}"
        )


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


# --- equivariant objectives (pitch, key, tempo) ----------------------------------------------


def _check_distributions(p_a: Tensor, p_b: Tensor, name: str) -> None:
    if p_a.ndim != 2 or p_a.shape != p_b.shape:
        raise MusicSSLError(
            f"{name}: expected two distributions of shape (batch_size, num_bins), got "
            f"{tuple(p_a.shape)} and {tuple(p_b.shape)}"
        )


def _shift_bins(p: Tensor, shift: Tensor) -> Tensor:
    """Row ``i`` of ``p`` moved up by ``shift[i]`` bins (zeros enter, mass leaves at the ends).

    Shape: (batch_size, num_bins), shift (batch_size,) integers -> (batch_size, num_bins).
    """
    num_bins = p.shape[1]
    source = torch.arange(num_bins, device=p.device) - shift.long()[:, None]  # (B, K)
    inside = (source >= 0) & (source < num_bins)
    moved = p.gather(1, source.clamp(0, num_bins - 1))
    return moved * inside


@_in_float32
def invariance_cross_entropy(p_a: Tensor, p_b: Tensor, *, eps: float = 1e-7) -> Tensor:
    """Symmetric cross-entropy between two views' distributions over the same bins.

    ``(H(p_a, p_b) + H(p_b, p_a)) / 2`` with ``H(p, q) = -sum_k p_k log q_k``, averaged over
    rows: the invariance term of PESTO (Riou et al. 2023), for views that share a pitch.

    Args:
        p_a: Distributions (rows sum to 1). Shape: (batch_size, num_bins).
        p_b: Distributions. Shape: (batch_size, num_bins).
    """
    _check_distributions(p_a, p_b, "invariance_cross_entropy")
    log_a, log_b = p_a.clamp_min(eps).log(), p_b.clamp_min(eps).log()
    return -((p_a * log_b).sum(1) + (p_b * log_a).sum(1)).mean() / 2


@_in_float32
def shift_cross_entropy(p_a: Tensor, p_b: Tensor, shift: Tensor, *, eps: float = 1e-7) -> Tensor:
    """Cross-entropy between ``p_b`` and ``p_a`` moved up by ``shift`` bins, both ways.

    View ``b`` is view ``a`` transposed up by ``shift`` bins, so ``p_b`` should be ``p_a``
    moved by as many bins (PESTO's shift cross-entropy). The mass that the move pushes out
    of range is dropped from the target.

    Args:
        p_a: Distributions of the unshifted views. Shape: (batch_size, num_bins).
        p_b: Distributions of the shifted views. Shape: (batch_size, num_bins).
        shift: Integer bins of each row's shift. Shape: (batch_size,).
    """
    _check_distributions(p_a, p_b, "shift_cross_entropy")
    up = _shift_bins(p_a, shift)
    down = _shift_bins(p_b, -shift)
    forward = -(up * p_b.clamp_min(eps).log()).sum(1)
    backward = -(down * p_a.clamp_min(eps).log()).sum(1)
    return (forward + backward).mean() / 2


@_in_float32
def expected_value_equivariance(
    p_a: Tensor, p_b: Tensor, shift: Tensor, *, bins_per_octave: int, delta: float = 0.25
) -> Tensor:
    """PESTO's equivariance loss through the projection ``phi(p) = sum_k alpha^k p_k``.

    Riou, Lattner, Hadjeres & Peeters 2023, "PESTO: Pitch Estimation with Self-supervised
    Transposition-equivariant Objective": with ``alpha = 2^(1 / bins_per_octave)``, a
    distribution moved up by ``s`` bins has its projection multiplied by ``alpha^s``, so
    ``phi(p_b) / phi(p_a)`` should equal ``alpha^shift``. The loss is the Huber loss (width
    ``delta``) of that ratio's error, symmetrised with the inverse ratio. A constant output
    cannot satisfy it, which is what keeps the distributions from collapsing.

    Args:
        p_a: Distributions. Shape: (batch_size, num_bins).
        p_b: Distributions of views moved up by ``shift`` bins. Shape: (batch_size, num_bins).
        shift: Bins of each row's shift (any real values). Shape: (batch_size,).
        bins_per_octave: Bins per doubling of the quantity the bins measure.
        delta: Width of the Huber loss's quadratic part.
    """
    _check_distributions(p_a, p_b, "expected_value_equivariance")
    if bins_per_octave < 1:
        raise MusicSSLError(
            f"expected_value_equivariance: bins_per_octave must be >= 1, got {bins_per_octave}"
        )
    # Powers relative to the middle bin keep phi near 1 whatever the number of bins.
    k = torch.arange(p_a.shape[1], device=p_a.device, dtype=p_a.dtype)
    powers = 2.0 ** ((k - (p_a.shape[1] - 1) / 2) / bins_per_octave)
    phi_a, phi_b = p_a @ powers, p_b @ powers
    target = 2.0 ** (shift.to(p_a.dtype) / bins_per_octave)
    forward = F.huber_loss(phi_b / phi_a, target, delta=delta)
    backward = F.huber_loss(phi_a / phi_b, 1 / target, delta=delta)
    return (forward + backward) / 2


# Position of each pitch class (C = 0, C# = 1, ...) on the circle of fifths (C, G, D, ...).
_FIFTHS = torch.tensor([(7 * pc) % 12 for pc in range(12)])


@_in_float32
def key_cpsd_loss(p_a: Tensor, p_b: Tensor, semitones: Tensor) -> Tensor:
    """STONE's cross-power spectral density loss on the circle of fifths.

    Kong, Meseguer-Brocal, Lostanlen, Lagrange & Hennequin 2024, "STONE: Self-supervised
    Tonality Estimator". The 12 classes are laid out on the circle of fifths and each
    distribution is summarised by its first Fourier coefficient ``Y = sum_c p_c e^(-2 pi i
    f(c) / 12)``, ``f(c)`` the class's place among the fifths. Transposing by ``k``
    semitones moves every class ``7k`` places round the circle, so ``Y_b = e^(-2 pi i 7k /
    12) Y_a``. The loss ``|1 - Y_a conj(Y_b) e^(-2 pi i 7k / 12)|^2`` is zero only for
    one-hot distributions that rotate with the transposition; a class a fifth away costs
    less than one a tritone away.

    Args:
        p_a: Distributions over 12 pitch classes (C first). Shape: (batch_size, 12).
        p_b: The same for views transposed up by ``semitones``. Shape: (batch_size, 12).
        semitones: Integer transposition of each row. Shape: (batch_size,).
    """
    _check_distributions(p_a, p_b, "key_cpsd_loss")
    if p_a.shape[1] != 12:
        raise MusicSSLError(f"key_cpsd_loss: expected 12 classes, got {p_a.shape[1]}")
    angle = 2 * math.pi * _FIFTHS.to(p_a.device, p_a.dtype) / 12
    basis = torch.polar(torch.ones_like(angle), -angle)  # (12,) complex
    y_a, y_b = p_a.to(basis.dtype) @ basis, p_b.to(basis.dtype) @ basis
    turn = 2 * math.pi * 7 * semitones.to(p_a.dtype) / 12
    expected = torch.polar(torch.ones_like(turn), -turn)
    return (1 - y_a * y_b.conj() * expected).abs().square().mean()


# ----------------------------------------------------------------------------- masked modelling


def random_patch_mask(
    batch_size: int,
    num_patches: int,
    *,
    mask_ratio: float,
    generator: torch.Generator | None = None,
    device: torch.device | str | None = None,
) -> tuple[Tensor, Tensor]:
    """MAE's per-example random masking: ``round(mask_ratio * num_patches)`` patches hidden.

    He et al. 2022, "Masked Autoencoders Are Scalable Vision Learners": each example ranks
    its patches by uniform noise and keeps the first ones; at least one patch stays visible.

    Returns:
        ``(keep_index, mask)``: the visible patches' indices in ascending order, int64,
        Shape: (batch_size, num_kept); and True where a patch is hidden,
        Shape: (batch_size, num_patches).
    """
    if not 0.0 <= mask_ratio < 1.0 or num_patches < 1:
        raise MusicSSLError(
            f"random_patch_mask: need 0 <= mask_ratio < 1 and num_patches >= 1, got "
            f"mask_ratio={mask_ratio}, num_patches={num_patches}"
        )
    num_kept = max(1, num_patches - round(mask_ratio * num_patches))
    noise = torch.rand(batch_size, num_patches, generator=generator, device=device)
    keep_index = noise.argsort(dim=1)[:, :num_kept].sort(dim=1).values
    mask = torch.ones(batch_size, num_patches, dtype=torch.bool, device=noise.device)
    mask.scatter_(1, keep_index, False)
    return keep_index, mask


def span_mask(
    batch_size: int,
    num_frames: int,
    *,
    start_probability: float,
    span: int,
    generator: torch.Generator | None = None,
    device: torch.device | str | None = None,
) -> Tensor:
    """BEST-RQ's span masking: each frame starts a hidden span of ``span`` frames.

    Chiu et al. 2022 (as wav2vec 2.0): every frame independently starts a span with
    ``start_probability``; spans may overlap, so about ``1 - (1 - p) ** span`` of the frames
    are hidden. An example that drew no span gets one at a random start, so every example
    has targets.

    Returns:
        True where a frame is hidden. Shape: (batch_size, num_frames).
    """
    if not 0.0 < start_probability <= 1.0 or span < 1 or num_frames < 1:
        raise MusicSSLError(
            f"span_mask: need 0 < start_probability <= 1, span >= 1 and num_frames >= 1, got "
            f"start_probability={start_probability}, span={span}, num_frames={num_frames}"
        )
    draws = torch.rand(batch_size, num_frames, generator=generator, device=device)
    starts = draws < start_probability
    first = draws.argmin(dim=1, keepdim=True)  # the frame to start from if none was drawn
    starts.scatter_(1, first, starts.gather(1, first) | ~starts.any(dim=1, keepdim=True))
    # A frame is hidden when a span started at it or at one of the span - 1 frames before it.
    padded = F.pad(starts[:, None].float(), (span - 1, 0))
    counts = F.max_pool1d(padded, span, stride=1)
    return counts[:, 0] > 0


def normalise_patches(patches: Tensor, *, eps: float = 1e-6) -> Tensor:
    """Each patch minus its mean, over its standard deviation (MAE's ``norm_pix_loss`` targets).

    Args:
        patches: Shape: (..., patch_size).

    Returns:
        Same shape; each patch has mean 0 and (population) variance ``var / (var + eps)``.
    """
    mean = patches.mean(dim=-1, keepdim=True)
    var = patches.var(dim=-1, keepdim=True, unbiased=False)
    return (patches - mean) / torch.sqrt(var + eps)


@_in_float32
def masked_patch_mse(prediction: Tensor, target: Tensor, mask: Tensor) -> Tensor:
    """MAE's loss: mean squared error per patch, averaged over the hidden patches only.

    Args:
        prediction: Reconstructed patches. Shape: (batch_size, num_patches, patch_size).
        target: The patches (normalised or not). Same shape.
        mask: True where a patch was hidden. Shape: (batch_size, num_patches).

    Returns:
        Shape: (); visible patches contribute nothing.
    """
    if prediction.shape != target.shape or mask.shape != prediction.shape[:2]:
        raise MusicSSLError(
            f"masked_patch_mse: prediction {tuple(prediction.shape)}, target "
            f"{tuple(target.shape)} and mask {tuple(mask.shape)} do not match"
        )
    per_patch = (prediction - target).pow(2).mean(dim=-1)  # (B, N)
    weights = mask.to(per_patch.dtype)
    return (per_patch * weights).sum() / weights.sum().clamp_min(1.0)


def random_projection_codes(frames: Tensor, projection: Tensor, codebooks: Tensor) -> Tensor:
    """BEST-RQ's targets: the nearest code of each frame's random projection, per codebook.

    Chiu et al. 2022, "Self-supervised Learning with Random-projection Quantizer for Speech
    Recognition": ``argmin_k || normalize(codebook_k) - normalize(frame @ projection) ||``,
    which for unit vectors is the code of highest cosine similarity.

    Args:
        frames: Normalised feature frames. Shape: (batch_size, num_frames, input_dim).
        projection: Frozen random projections. Shape: (num_codebooks, input_dim, code_dim).
        codebooks: Frozen random codes. Shape: (num_codebooks, codebook_size, code_dim).

    Returns:
        Code indices, int64. Shape: (batch_size, num_frames, num_codebooks).
    """
    if projection.ndim != 3 or codebooks.ndim != 3 or frames.shape[-1] != projection.shape[1]:
        raise MusicSSLError(
            f"random_projection_codes: frames {tuple(frames.shape)}, projection "
            f"{tuple(projection.shape)} and codebooks {tuple(codebooks.shape)} do not fit"
        )
    projected = torch.einsum("btf,cfd->btcd", frames.float(), projection.float())
    similarity = torch.einsum(
        "btcd,ckd->btck", F.normalize(projected, dim=-1), F.normalize(codebooks.float(), dim=-1)
    )
    return similarity.argmax(dim=-1)


@_in_float32
def masked_code_cross_entropy(logits: Tensor, codes: Tensor, mask: Tensor) -> Tensor:
    """BEST-RQ's loss: cross-entropy of the codes of hidden frames, averaged over codebooks.

    Args:
        logits: Shape: (batch_size, num_frames, num_codebooks, codebook_size).
        codes: Target code indices. Shape: (batch_size, num_frames, num_codebooks).
        mask: True where a frame was hidden. Shape: (batch_size, num_frames).

    Returns:
        Shape: (); visible frames contribute nothing.
    """
    if logits.shape[:3] != codes.shape or mask.shape != codes.shape[:2]:
        raise MusicSSLError(
            f"masked_code_cross_entropy: logits {tuple(logits.shape)}, codes "
            f"{tuple(codes.shape)} and mask {tuple(mask.shape)} do not match"
        )
    hidden_logits = logits[mask]  # (M, C, V)
    hidden_codes = codes[mask]  # (M, C)
    if hidden_codes.numel() == 0:
        return logits.sum() * 0.0
    return F.cross_entropy(hidden_logits.flatten(0, 1), hidden_codes.flatten())


@torch.no_grad()
def codebook_usage(codes: Tensor, codebook_size: int) -> tuple[Tensor, Tensor]:
    """How many codes the targets use: perplexity, and the share of codes used.

    The perplexity is ``exp`` of the entropy of the codes' histogram: ``codebook_size`` when
    every code is equally frequent, 1 when a codebook has collapsed onto one code. Both
    figures are averaged over codebooks.

    Args:
        codes: Code indices. Shape: (num_targets, num_codebooks).
        codebook_size: Codes per codebook.

    Returns:
        ``(perplexity, used_share)``, each of shape ().
    """
    if codes.ndim != 2 or codes.shape[0] == 0:
        raise MusicSSLError(
            f"codebook_usage: codes need shape (num_targets > 0, num_codebooks), got "
            f"{tuple(codes.shape)}"
        )
    offsets = torch.arange(codes.shape[1], device=codes.device) * codebook_size
    counts = torch.bincount((codes + offsets).flatten(), minlength=codes.shape[1] * codebook_size)
    probabilities = counts.view(codes.shape[1], codebook_size).float() / codes.shape[0]
    entropy = -(probabilities * probabilities.clamp_min(1e-12).log()).sum(dim=1)
    used = (counts.view(codes.shape[1], codebook_size) > 0).float().mean(dim=1)
    return entropy.exp().mean(), used.mean()
