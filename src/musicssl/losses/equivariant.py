"""Equivariance losses: PESTO's pitch terms and STONE's key loss on the circle of fifths."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor

from musicssl.errors import MusicSSLError
from musicssl.losses._shared import _in_float32


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
