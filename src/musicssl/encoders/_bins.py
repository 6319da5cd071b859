"""Parts shared by the equivariant encoders: convolutions along a log-frequency axis.

A shift of the input along a log-spaced axis (CQT bins, log-tempo bins) is a change of pitch
or tempo by a known ratio. Convolutions along that axis commute with such shifts, so a stack
of them followed by a wide convolution to one output per bin (a Toeplitz layer: the same
weights at every bin) gives a distribution over bins that moves with the input. The
convolutions are "valid" (no padding): an output never sees the ends of its input, which
a network would otherwise learn to use as a fixed landmark, against the equivariance.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from musicssl.errors import MusicSSLError


def receptive_radius(*, depth: int, kernel_size: int, output_kernel: int) -> int:
    """Input bins either side of an output bin that ``bin_conv_stack`` reads: the output has
    ``2 * radius`` bins fewer than its input, output bin ``j`` centred on input bin
    ``j + radius``."""
    return kernel_size // 2 + 2 * (depth - 1) + output_kernel // 2


def bin_conv_stack(
    *, channels: int, depth: int, kernel_size: int, output_kernel: int
) -> tuple[nn.Sequential, nn.Conv1d]:
    """Conv1d layers over bins: (N, 1, num_bins) -> features (N, channels, num_bins), and the
    layer from those to logits (N, 1, num_bins).

    The first layer has ``kernel_size`` taps, the next ``depth - 1`` have 5, each followed
    by a leaky ReLU; the last maps ``channels`` to one logit per bin with ``output_kernel``
    taps (odd, so that the output stays centred on its input). No padding: the output is
    ``2 * receptive_radius(...)`` bins shorter. No biases: an input that is zero away from
    its content (``relative_db``) gives zero there.
    """
    if channels < 1 or depth < 1:
        raise MusicSSLError(f"need channels >= 1 and depth >= 1, got {channels}, {depth}")
    for name, size in (("kernel_size", kernel_size), ("output_kernel", output_kernel)):
        if size < 1 or size % 2 == 0:
            raise MusicSSLError(f"{name} must be a positive odd number, got {size}")
    layers: list[nn.Module] = [
        nn.Conv1d(1, channels, kernel_size, bias=False),
        nn.LeakyReLU(0.1),
    ]
    for _ in range(depth - 1):
        layers += [nn.Conv1d(channels, channels, 5, bias=False), nn.LeakyReLU(0.1)]
    logits = nn.Conv1d(channels, 1, output_kernel, bias=False)
    return nn.Sequential(*layers), logits


def relative_db(x: Tensor, *, dims: tuple[int, ...], range_db: float = 80.0) -> Tensor:
    """Decibels relative to their maximum over ``dims``, mapped to [0, 1]: 1 at the maximum,
    0 at ``range_db`` below it and lower.

    Independent of the recording level, and zero where nothing sounds, whatever the bin: a
    normalisation that commutes with shifts (a learned per-bin scale would not).
    """
    peak = x.amax(dim=dims, keepdim=True)
    return (1.0 + (x - peak) / range_db).clamp_min(0.0)


def local_expectation(
    p: Tensor, *, radius: int, peak: Tensor | None = None
) -> tuple[Tensor, Tensor]:
    """The mean bin of ``p`` within ``radius`` bins of its peak, and the mass there.

    A weighted mean near the argmax (as PESTO reads its output) is finer than the argmax and,
    unlike the mean over all bins, is not pulled towards the middle by a stray far peak.

    Args:
        p: Distributions over bins. Shape: (..., num_bins).
        radius: Bins either side of the peak.
        peak: The bin to centre on (default: the argmax). Shape: (...,), integers.

    Returns:
        ``(bin, mass)``: fractional bin index and probability mass around the peak.
        Shape: (...,) each.
    """
    num_bins = p.shape[-1]
    peak = p.argmax(dim=-1) if peak is None else peak
    offsets = torch.arange(-radius, radius + 1, device=p.device)
    index = peak[..., None] + offsets  # (..., 2r + 1)
    inside = (index >= 0) & (index < num_bins)
    weights = p.gather(-1, index.clamp(0, num_bins - 1)) * inside
    mass = weights.sum(-1)
    centre = (weights * index.to(p.dtype)).sum(-1) / mass.clamp_min(1e-12)
    return centre, mass


def lowest_octave_peak(p: Tensor, *, bins_per_octave: int, radius: int, min_ratio: float) -> Tensor:
    """The argmax of ``p``, moved down an octave as long as the octave below holds mass.

    A harmonic sound's pitch distribution can peak on its second harmonic (a weak
    fundamental: bassoon, oboe, viola) while keeping some mass on the fundamental; there is
    none below the fundamental. So the peak moves to the largest bin within ``radius`` of one
    octave below whenever the mass there is at least ``min_ratio`` times the mass around
    the current peak, and again from there.

    Args:
        p: Distributions over log-frequency bins. Shape: (..., num_bins).
        bins_per_octave: Bins per octave of ``p``.
        radius: Bins either side of a peak counted in its mass.
        min_ratio: Mass ratio (lower octave over peak) that moves the peak down.

    Returns:
        Peak bins. Shape: (...,), int64.
    """
    num_bins = p.shape[-1]
    offsets = torch.arange(-radius, radius + 1, device=p.device)
    peak = p.argmax(dim=-1)
    for _ in range(num_bins // bins_per_octave):
        here = p.gather(-1, (peak[..., None] + offsets).clamp(0, num_bins - 1)).sum(-1)
        index = peak[..., None] - bins_per_octave + offsets  # (..., 2r + 1)
        below = p.gather(-1, index.clamp(0, num_bins - 1)) * (index >= 0)
        lower = index.gather(-1, below.argmax(dim=-1, keepdim=True)).squeeze(-1)
        move = (index[..., 0] >= 0) & (below.sum(-1) >= min_ratio * here)
        if not bool(move.any()):
            break
        peak = torch.where(move, lower, peak)
    return peak
