"""PESTO: pitch from unlabelled audio by equivariance to shifts of the CQT's bins.

Riou, Lattner, Hadjeres & Peeters 2023, "PESTO: Pitch Estimation with Self-supervised
Transposition-equivariant Objective".
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from musicssl.encoders import Encoder, PestoCNN
from musicssl.errors import MusicSSLError
from musicssl.losses import (
    expected_value_equivariance,
    invariance_cross_entropy,
    shift_cross_entropy,
)
from musicssl.methods._draws import Draws, integers
from musicssl.methods.base import Method


class PESTO(Method):
    """One training step of PESTO on single CQT frames of one crop per clip.

    For ``frames_per_clip`` frames of each crop (drawn among its sounding frames): view
    ``a`` is the model's window of the frame; view ``b`` the same window after a random
    timbre change (a smooth equaliser over the CQT's absolute frequencies and noise); view
    ``c`` another timbre change, read ``k`` bins lower, so its pitch is ``k`` bins higher
    (``|k| <= max_shift``). Losses: invariance (a, b), equivariance through the expected
    value projection (a, c, ``k``) and the shift cross-entropy (a, c, ``k``).

    Args:
        encoder: a ``PestoCNN``.
        frames_per_clip: frames drawn from each crop.
        eq_db: largest gain of each of the equaliser's three cosine terms, in dB.
        tilt_db: largest spectral slope added by the equaliser, in dB per octave (either
            sign): it changes which harmonic is loudest, so the pitch cannot follow it.
        noise_db: noise level range under the frame's peak, in dB (low, high).
        invariance_weight: weight of the invariance loss.
        equivariance_weight: weight of the equivariance loss.
        shift_entropy_weight: weight of the shift cross-entropy.
        seed: seed of the views' draws.
    """

    num_views = 1
    encoder: PestoCNN

    def __init__(
        self,
        encoder: PestoCNN,
        *,
        frames_per_clip: int = 32,
        eq_db: float = 6.0,
        tilt_db: float = 0.0,
        noise_db: tuple[float, float] = (-45.0, -20.0),
        invariance_weight: float = 1.0,
        equivariance_weight: float = 1.0,
        shift_entropy_weight: float = 1.0,
        seed: int = 0,
    ) -> None:
        super().__init__()
        self.encoder = encoder
        self.frames_per_clip = frames_per_clip
        self.eq_db = eq_db
        self.tilt_db = tilt_db
        self.noise_db = (float(noise_db[0]), float(noise_db[1]))
        self.weights = (invariance_weight, equivariance_weight, shift_entropy_weight)
        self.draws = Draws(seed)

    def forward(self, x: Tensor) -> dict[str, Tensor]:
        """Loss of one batch of crops. x Shape: (batch_size, num_samples)."""
        encoder, generator = self.encoder, self.draws.next()
        with torch.no_grad():
            frames = self.sounding_frames(encoder.spectrum(x), generator)  # (N, num_bins)
            num_frames, device = frames.shape[0], frames.device
            shift = integers(-encoder.max_shift, encoder.max_shift, num_frames, generator, device)
            view_a = encoder.window(frames, encoder.max_shift)
            view_b = encoder.window(self.change_timbre(frames, generator), encoder.max_shift)
            view_c = encoder.window(
                self.change_timbre(frames, generator), encoder.max_shift - shift
            )
        logits = encoder.frame_logits(torch.cat([view_a, view_b, view_c]))
        p_a, p_b, p_c = logits.softmax(dim=-1).chunk(3)
        invariance = invariance_cross_entropy(p_a, p_b)
        equivariance = expected_value_equivariance(
            p_a, p_c, shift, bins_per_octave=encoder.bins_per_octave
        )
        shift_entropy = shift_cross_entropy(p_a, p_c, shift)
        w_inv, w_equiv, w_shift = self.weights
        loss = w_inv * invariance + w_equiv * equivariance + w_shift * shift_entropy
        return {
            "loss": loss,
            "invariance": invariance.detach(),
            "equivariance": equivariance.detach(),
            "shift_entropy": shift_entropy.detach(),
        }

    def sounding_frames(self, spectrum: Tensor, generator: torch.Generator) -> Tensor:
        """``frames_per_clip`` frames of each clip, those within 40 dB of its peak first.

        Shape: (B, num_bins, T) -> (B * frames_per_clip, num_bins).
        """
        loudness = spectrum.amax(dim=1)  # (B, T)
        sounding = loudness > loudness.amax(dim=1, keepdim=True) - 40.0
        weights = (sounding.float() + 1e-3).cpu()
        index = torch.multinomial(weights, self.frames_per_clip, replacement=True,
                                  generator=generator).to(spectrum.device)  # fmt: skip
        frames = spectrum.gather(2, index[:, None, :].expand(-1, spectrum.shape[1], -1))
        return frames.transpose(1, 2).reshape(-1, spectrum.shape[1])

    def change_timbre(self, frames: Tensor, generator: torch.Generator) -> Tensor:
        """A random smooth equaliser and noise on CQT frames in dB; pitch is unchanged.

        The equaliser is a sum of three cosines over the CQT's bins (fixed frequencies, so it
        acts like a filter, not like a transposition). Shape: (N, num_bins) -> same.
        """
        num_frames, num_bins = frames.shape
        gains = (torch.rand(num_frames, 3, generator=generator) * 2 - 1) * self.eq_db
        phases = torch.rand(num_frames, 3, generator=generator) * 2 * math.pi
        k = torch.arange(num_bins) / num_bins
        orders = torch.arange(1, 4)[:, None]
        curves = (gains[:, :, None] * torch.cos(math.pi * orders * k + phases[:, :, None])).sum(1)
        tilts = (torch.rand(num_frames, 1, generator=generator) * 2 - 1) * self.tilt_db
        octaves = (torch.arange(num_bins) - num_bins / 2) / self.encoder.bins_per_octave
        curves = curves + tilts * octaves
        low, high = self.noise_db
        level = low + (high - low) * torch.rand(num_frames, 1, generator=generator)
        noise = torch.randn(num_frames, num_bins, generator=generator).abs()
        curves, level, noise = (t.to(frames.device) for t in (curves, level, noise))
        peak = frames.amax(dim=1, keepdim=True)
        magnitude = 10.0 ** ((frames + curves) / 20) + 10.0 ** ((peak + level) / 20) * noise
        return 20.0 * torch.log10(magnitude)


def pesto(
    encoder: Encoder,
    *,
    frames_per_clip: int = 32,
    eq_db: float = 6.0,
    tilt_db: float = 0.0,
    noise_db: tuple[float, float] = (-45.0, -20.0),
    invariance_weight: float = 1.0,
    equivariance_weight: float = 1.0,
    shift_entropy_weight: float = 1.0,
    seed: int = 0,
) -> PESTO:
    """PESTO around a ``PestoCNN`` (any other encoder is refused: it has no CQT bins)."""
    if not isinstance(encoder, PestoCNN):
        raise MusicSSLError(
            f"method pesto needs encoder pesto_cnn (a CQT window per frame), got "
            f"{type(encoder).__name__}"
        )
    if frames_per_clip < 1:
        raise MusicSSLError(f"pesto: frames_per_clip must be >= 1, got {frames_per_clip}")
    return PESTO(
        encoder,
        frames_per_clip=frames_per_clip,
        eq_db=eq_db,
        tilt_db=tilt_db,
        noise_db=tuple(noise_db),  # type: ignore[arg-type]
        invariance_weight=invariance_weight,
        equivariance_weight=equivariance_weight,
        shift_entropy_weight=shift_entropy_weight,
        seed=seed,
    )
