"""Masked-prediction losses and masks: MAE's normalised-patch MSE, BEST-RQ's codes."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from musicssl.errors import MusicSSLError
from musicssl.losses._shared import _in_float32


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


def random_quantizer(
    input_dim: int, *, num_codebooks: int, codebook_size: int, code_dim: int, seed: int
) -> tuple[Tensor, Tensor]:
    """The frozen projection (Xavier-uniform) and l2-normalised Gaussian codebooks of BEST-RQ.

    Returns:
        ``(projection, codebooks)``. Shape: (num_codebooks, input_dim, code_dim) and
        (num_codebooks, codebook_size, code_dim).
    """
    generator = torch.Generator().manual_seed(seed)
    bound = (6.0 / (input_dim + code_dim)) ** 0.5
    projection = torch.rand(num_codebooks, input_dim, code_dim, generator=generator)
    projection = (2 * projection - 1) * bound
    codebooks = torch.randn(num_codebooks, codebook_size, code_dim, generator=generator)
    return projection, nn.functional.normalize(codebooks, dim=-1)


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

    Every frame's cross-entropy is computed and the visible ones weigh nothing, so the shapes
    do not depend on the mask (a compiled step is built once).

    Args:
        logits: Shape: (batch_size, num_frames, num_codebooks, codebook_size).
        codes: Target code indices. Shape: (batch_size, num_frames, num_codebooks).
        mask: True where a frame was hidden. Shape: (batch_size, num_frames).

    Returns:
        Shape: (); visible frames contribute nothing, and 0 when no frame is hidden.
    """
    if logits.shape[:3] != codes.shape or mask.shape != codes.shape[:2]:
        raise MusicSSLError(
            f"masked_code_cross_entropy: logits {tuple(logits.shape)}, codes "
            f"{tuple(codes.shape)} and mask {tuple(mask.shape)} do not match"
        )
    per_code = F.cross_entropy(logits.flatten(0, 2), codes.flatten(), reduction="none")
    per_frame = per_code.view(codes.shape).mean(dim=-1)  # (B, T)
    weights = mask.to(per_frame.dtype)
    return (per_frame * weights).sum() / weights.sum().clamp_min(1.0)


@torch.no_grad()
def codebook_usage(
    codes: Tensor, codebook_size: int, counted: Tensor | None = None
) -> tuple[Tensor, Tensor]:
    """How many codes the targets use: perplexity, and the share of codes used.

    The perplexity is ``exp`` of the entropy of the codes' histogram: ``codebook_size`` when
    every code is equally frequent, 1 when a codebook has collapsed onto one code. Both
    figures are averaged over codebooks.

    Args:
        codes: Code indices. Shape: (num_targets, num_codebooks).
        codebook_size: Codes per codebook.
        counted: True for the targets to count (e.g. the hidden frames'), all when None; a
            mask rather than a selection keeps the shapes fixed. Shape: (num_targets,).

    Returns:
        ``(perplexity, used_share)``, each of shape ().
    """
    if codes.ndim != 2 or codes.shape[0] == 0:
        raise MusicSSLError(
            f"codebook_usage: codes need shape (num_targets > 0, num_codebooks), got "
            f"{tuple(codes.shape)}"
        )
    num_codebooks = codes.shape[1]
    weights = torch.ones(codes.shape[0], device=codes.device)
    if counted is not None:
        weights = counted.to(weights.dtype)
    offsets = torch.arange(num_codebooks, device=codes.device) * codebook_size
    counts = torch.zeros(num_codebooks * codebook_size, device=codes.device)
    counts.index_add_(0, (codes + offsets).flatten(), weights[:, None].expand_as(codes).flatten())
    counts = counts.view(num_codebooks, codebook_size)
    probabilities = counts / weights.sum().clamp_min(1.0)
    entropy = -(probabilities * probabilities.clamp_min(1e-12).log()).sum(dim=1)
    used = (counts > 0).float().mean(dim=1)
    return entropy.exp().mean(), used.mean()
