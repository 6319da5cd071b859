"""Transformer parts shared by the token encoders: sin-cos positions and a pre-norm block.

Functions and small modules, not a base class. Blocks are pre-norm (``x + f(norm(x))``), as
ViT (Dosovitskiy et al. 2021, "An Image is Worth 16x16 Words: Transformers for Image
Recognition at Scale") and its audio descendants; attention is torch's
``scaled_dot_product_attention``, which picks a fused kernel where one exists.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from musicssl.errors import MusicSSLError


def sincos_1d(positions: Tensor, dim: int) -> Tensor:
    """Fixed sinusoidal encodings of (possibly fractional) positions (Vaswani et al. 2017).

    Channel ``2i`` is ``sin(p / 10000^(2i/dim))`` and ``2i + 1`` its cosine.

    Args:
        positions: Positions. Shape: (num_positions,).
        dim: Channels; even.

    Returns:
        float32. Shape: (num_positions, dim).
    """
    if dim % 2:
        raise MusicSSLError(f"sin-cos positions need an even width, got {dim}")
    rates = torch.exp(
        -math.log(10000.0)
        * torch.arange(0, dim, 2, dtype=torch.float64, device=positions.device)
        / dim
    )  # (dim / 2,)
    angles = positions.double()[:, None] * rates  # (N, dim / 2)
    return torch.stack([angles.sin(), angles.cos()], dim=-1).flatten(1).float()


def sincos_2d(
    num_rows: int, num_cols: int, dim: int, *, device: torch.device | None = None
) -> Tensor:
    """Fixed 2-D sin-cos encodings of a grid, as MAE (He et al. 2022) and Audio-MAE use.

    The first ``dim / 2`` channels encode the row, the rest the column; token ``r * num_cols
    + c`` is grid cell (r, c), the row-major order of ``patchify``.

    Args:
        num_rows: Rows of the grid (frequency patches).
        num_cols: Columns of the grid (time patches).
        dim: Channels; a multiple of 4.

    Returns:
        float32. Shape: (num_rows * num_cols, dim).
    """
    if dim % 4:
        raise MusicSSLError(f"2-D sin-cos positions need a width divisible by 4, got {dim}")
    rows = sincos_1d(torch.arange(num_rows, device=device), dim // 2)  # (R, dim / 2)
    cols = sincos_1d(torch.arange(num_cols, device=device), dim // 2)  # (C, dim / 2)
    grid = torch.cat(
        [
            rows[:, None, :].expand(num_rows, num_cols, dim // 2),
            cols[None, :, :].expand(num_rows, num_cols, dim // 2),
        ],
        dim=-1,
    )  # (R, C, dim)
    return grid.reshape(num_rows * num_cols, dim)


class Attention(nn.Module):
    """Multi-head self-attention over tokens. Shape: (B, N, D) -> (B, N, D)."""

    def __init__(self, dim: int, num_heads: int) -> None:
        super().__init__()
        self.num_heads = num_heads
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: Tensor) -> Tensor:
        batch_size, num_tokens, dim = x.shape
        qkv = self.qkv(x).reshape(batch_size, num_tokens, 3, self.num_heads, dim // self.num_heads)
        q, k, v = qkv.permute(2, 0, 3, 1, 4)  # each (B, H, N, D / H)
        out = F.scaled_dot_product_attention(q, k, v)  # (B, H, N, D / H)
        return self.proj(out.transpose(1, 2).reshape(batch_size, num_tokens, dim))


class ConvModule(nn.Module):
    """Conformer's convolution module (Gulati et al. 2020), with layer norm for batch norm.

    Pointwise conv to twice the width, GLU, depthwise conv over time, layer norm, SiLU,
    pointwise conv. Layer norm keeps each example independent of its batch (Conformer has
    batch norm). Shape: (B, T, D) -> (B, T, D).
    """

    def __init__(self, dim: int, kernel_size: int) -> None:
        super().__init__()
        if kernel_size < 1 or kernel_size % 2 == 0:
            raise MusicSSLError(f"conv module: kernel size must be odd and >= 1, got {kernel_size}")
        self.pointwise_in = nn.Linear(dim, 2 * dim)
        self.depthwise = nn.Conv1d(dim, dim, kernel_size, padding=kernel_size // 2, groups=dim)
        self.norm = nn.LayerNorm(dim)
        self.pointwise_out = nn.Linear(dim, dim)

    def forward(self, x: Tensor) -> Tensor:
        h = F.glu(self.pointwise_in(x), dim=-1)  # (B, T, D)
        h = self.depthwise(h.transpose(1, 2)).transpose(1, 2)  # (B, T, D)
        return self.pointwise_out(F.silu(self.norm(h)))


class Block(nn.Module):
    """Pre-norm transformer block: attention, optional Conformer conv module, MLP.

    ``x + attn(norm(x))``, then ``x + conv(norm(x))`` if ``conv_kernel`` is set, then
    ``x + mlp(norm(x))``. Shape: (B, N, D) -> (B, N, D).

    Args:
        dim: Token width.
        num_heads: Attention heads; divides ``dim``.
        mlp_ratio: Hidden width of the MLP as a multiple of ``dim``.
        conv_kernel: Kernel of the depthwise conv module over tokens in order; 0 for none.
    """

    def __init__(self, dim: int, num_heads: int, *, mlp_ratio: float = 4.0, conv_kernel: int = 0):
        super().__init__()
        self.attn_norm = nn.LayerNorm(dim)
        self.attn = Attention(dim, num_heads)
        self.conv_norm = nn.LayerNorm(dim) if conv_kernel else None
        self.conv = ConvModule(dim, conv_kernel) if conv_kernel else None
        hidden = int(dim * mlp_ratio)
        self.mlp_norm = nn.LayerNorm(dim)
        self.mlp = nn.Sequential(nn.Linear(dim, hidden), nn.GELU(), nn.Linear(hidden, dim))

    def forward(self, x: Tensor) -> Tensor:
        x = x + self.attn(self.attn_norm(x))
        if self.conv is not None and self.conv_norm is not None:
            x = x + self.conv(self.conv_norm(x))
        return x + self.mlp(self.mlp_norm(x))


# A spectrogram flatter than this (dB) is not magnified by ``standardise_clip``.
MIN_CLIP_STD_DB = 1.0


def standardise_clip(spec: Tensor) -> Tensor:
    """Each example's spectrogram minus its own mean, over its own standard deviation (dB).

    One mean and one deviation per example, over every bin and frame: a gain change moves
    the decibels of a clip by a constant, so it leaves the result unchanged, and the spectral
    shape (the tilt across bins, which bands hold the energy) stays. Nothing is learnt or
    estimated from other clips, so an encoder with random weights and a trained one read the
    same input, in training and in evaluation alike. Per-bin running statistics instead
    (batch norm) scale every band to unit variance, which lifts the near-silent high bands
    to the level of the music and makes a clip's vector follow added noise.

    Args:
        spec: Decibels. Shape: (batch_size, n_bins, num_frames).

    Returns:
        Same shape; each example has mean 0 and standard deviation 1 (less for a spectrogram
        flatter than ``MIN_CLIP_STD_DB``).
    """
    mean = spec.mean(dim=(-2, -1), keepdim=True)
    std = spec.std(dim=(-2, -1), keepdim=True, unbiased=False)
    return (spec - mean) / std.clamp_min(MIN_CLIP_STD_DB)


def check_width(owner: str, width: int, depth: int, num_heads: int, multiple: int) -> None:
    """Raise unless ``width`` splits into ``num_heads`` heads and is a multiple of ``multiple``."""
    if depth < 1 or num_heads < 1 or width < 1 or width % num_heads or width % multiple:
        raise MusicSSLError(
            f"{owner}: need depth >= 1 and a width divisible by num_heads and by {multiple}; "
            f"got width={width}, depth={depth}, num_heads={num_heads}"
        )


def init_weights(module: nn.Module) -> None:
    """Truncated-normal linear weights (std 0.02), zero biases, unit layer norms (as ViT/MAE)."""
    for m in module.modules():
        if isinstance(m, nn.Linear):
            nn.init.trunc_normal_(m.weight, std=0.02)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.LayerNorm):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)


def final_norm_mover(to: str) -> Callable[..., None]:
    """A load-state hook for a pretraining method: it renames, in place, an older encoder's
    final-norm weights (``encoder.norm.*``, from when the zoo's transformers ended in one) to
    the head's norm that holds it now (``{to}.*``). Called as ``hook(state_dict, prefix, ...)``."""

    def move(state: dict[str, Tensor], prefix: str, *_: Any) -> None:
        for name in ("weight", "bias"):
            if f"{prefix}encoder.norm.{name}" in state:
                state[f"{prefix}{to}.{name}"] = state.pop(f"{prefix}encoder.norm.{name}")

    return move


def without_final_norm(state: dict[str, Tensor], prefix: str, *_: Any) -> None:
    """Load-state hook of the zoo's transformers: an older checkpoint's final norm, which the
    encoders lost to their pretraining heads, is left out."""
    for name in ("weight", "bias"):
        state.pop(f"{prefix}norm.{name}", None)
