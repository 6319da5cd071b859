"""Tempo from unlabelled audio by equivariance to time stretching.

Quinton 2022, "Equivariant Self-Supervision for Musical Tempo Estimation"; the losses are
PESTO's (Riou et al. 2023) on a distribution over log-tempo bins.
"""

from __future__ import annotations

import torch
from torch import Tensor

from musicssl.encoders import Encoder, TempoCNN
from musicssl.encoders.tempo_cnn import stretch_envelope
from musicssl.errors import MusicSSLError
from musicssl.losses import (
    expected_value_equivariance,
    invariance_cross_entropy,
    shift_cross_entropy,
)
from musicssl.methods._draws import Draws, integers
from musicssl.methods.base import Method


class TempoEquivariance(Method):
    """One training step on two crops of each clip (they share its tempo).

    The crops' onset envelopes are stretched in time by known rates ``2^(k / B)`` (``B``
    the encoder's bins per octave, ``|k| <= max_shift``): view ``a`` is crop ``a`` at rate
    ``k_a``, view ``b`` crop ``b`` at the same rate, view ``c`` crop ``b`` at rate ``k_c``.
    Losses: invariance (a, b: same tempo, other music and augmentation), equivariance
    through the expected value projection and the shift cross-entropy (a, c: tempo moved
    by ``k_c - k_a`` bins).

    Args:
        encoder: a ``TempoCNN``.
        max_shift: largest stretch in tempo bins either way.
        invariance_weight: weight of the invariance loss.
        equivariance_weight: weight of the equivariance loss.
        shift_entropy_weight: weight of the shift cross-entropy.
        seed: seed of the stretches.
    """

    encoder: TempoCNN

    def __init__(
        self,
        encoder: TempoCNN,
        *,
        max_shift: int = 8,
        invariance_weight: float = 1.0,
        equivariance_weight: float = 1.0,
        shift_entropy_weight: float = 1.0,
        seed: int = 0,
    ) -> None:
        super().__init__()
        self.encoder = encoder
        self.max_shift = max_shift
        self.weights = (invariance_weight, equivariance_weight, shift_entropy_weight)
        self.draws = Draws(seed)

    def forward(self, x_a: Tensor, x_b: Tensor) -> dict[str, Tensor]:
        """Loss of one batch of crop pairs. x_a, x_b Shape: (batch_size, num_samples)."""
        encoder, generator = self.encoder, self.draws.next()
        bins_per_octave, batch_size = encoder.bins_per_octave, len(x_a)
        with torch.no_grad():
            k_a = integers(-self.max_shift, self.max_shift, batch_size, generator, x_a.device)
            k_c = integers(-self.max_shift, self.max_shift, batch_size, generator, x_a.device)
            envelope_a, envelope_b = encoder.envelope(x_a), encoder.envelope(x_b)
            # The fastest rate reads the whole envelope; slower ones read less of it.
            num_frames = int((envelope_a.shape[-1] - 1) / 2 ** (self.max_shift / bins_per_octave))
            curves = [
                encoder.tempo_curve(
                    stretch_envelope(e, 2.0 ** (k / bins_per_octave), num_frames=num_frames)
                )  # fmt: skip
                for e, k in ((envelope_a, k_a), (envelope_b, k_a), (envelope_b, k_c))
            ]
        logits = encoder.curve_logits(torch.cat(curves))
        p_a, p_b, p_c = logits.softmax(dim=-1).chunk(3)
        shift = k_c - k_a
        invariance = invariance_cross_entropy(p_a, p_b)
        equivariance = expected_value_equivariance(p_a, p_c, shift, bins_per_octave=bins_per_octave)
        shift_entropy = shift_cross_entropy(p_a, p_c, shift)
        w_inv, w_equiv, w_shift = self.weights
        loss = w_inv * invariance + w_equiv * equivariance + w_shift * shift_entropy
        return {
            "loss": loss,
            "invariance": invariance.detach(),
            "equivariance": equivariance.detach(),
            "shift_entropy": shift_entropy.detach(),
        }


def tempo(
    encoder: Encoder,
    *,
    max_shift: int = 8,
    invariance_weight: float = 1.0,
    equivariance_weight: float = 1.0,
    shift_entropy_weight: float = 1.0,
    seed: int = 0,
) -> TempoEquivariance:
    """Tempo equivariance around a ``TempoCNN`` (any other encoder is refused)."""
    if not isinstance(encoder, TempoCNN):
        raise MusicSSLError(
            f"method tempo needs encoder tempo_cnn (log-tempo bins), got {type(encoder).__name__}"
        )
    if max_shift < 1:
        raise MusicSSLError(f"tempo: max_shift must be >= 1, got {max_shift}")
    return TempoEquivariance(
        encoder,
        max_shift=max_shift,
        invariance_weight=invariance_weight,
        equivariance_weight=equivariance_weight,
        shift_entropy_weight=shift_entropy_weight,
        seed=seed,
    )
