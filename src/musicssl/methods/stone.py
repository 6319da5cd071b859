"""STONE: key from unlabelled audio by equivariance to transposition.

Kong, Meseguer-Brocal, Lostanlen, Lagrange & Hennequin 2024, "STONE: Self-supervised
Tonality Estimator"; two output channels for the mode, as in their S-KEY follow-up.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from musicssl.encoders import Encoder, KeyCNN
from musicssl.encoders.heads import projection_head
from musicssl.errors import MusicSSLError
from musicssl.losses import invariance_cross_entropy, key_cpsd_loss, nt_xent
from musicssl.methods._draws import Draws, integers
from musicssl.methods.base import Method


class STONE(Method):
    """One training step of STONE on two crops of each clip (they share its key).

    Crop ``b`` is transposed by ``k`` semitones (its CQT read ``k`` semitones lower,
    ``|k| <= max_shift_semitones``). The 24 outputs of each crop (two channels of 12
    classes) are a softmax over the mean of its frame logits. Losses: the cross-power
    spectral density loss on the circle of fifths between the two crops' 12-class sums
    (the outputs must turn by ``k``); agreement of the two crops' channel masses (both have
    the same mode); and a balance term (the batch's mean channel mass near one half each),
    without which one channel would take every clip. With ``contrast_weight`` above zero,
    the pitch-class layer learns too: crop ``a``'s classes, turned by ``k``, and crop ``b``'s
    pass a projector into NT-Xent (each clip's pair attracts, the batch's other clips repel),
    so that the layer keeps what tells one clip's harmony from another's rather than only
    the 24 logits' summary of it.

    Args:
        encoder: a ``KeyCNN``.
        temperature: the softmax's temperature. The loss has a saddle at uniform outputs
            (both Fourier coefficients zero), where a freshly initialised network starts; a
            low temperature starts it away from there.
        mode_temperature: the temperature of the softmax the mode terms read. At the low
            tonality temperature the channel masses saturate, and the balance term's gradient
            vanishes once one channel holds every clip (measured: all clips in one channel
            by step 300 at 0.1); a softer softmax keeps it alive.
        mode_weight: weight of the channel agreement.
        balance_weight: weight of the balance term (KL of the batch mean to uniform).
        projector: the MLP head of the pitch-class contrast, or None for no contrast.
        contrast_weight: weight of the pitch-class contrast.
        contrast_temperature: its NT-Xent temperature.
        seed: seed of the transpositions.
    """

    encoder: KeyCNN

    def __init__(
        self,
        encoder: KeyCNN,
        *,
        temperature: float = 0.1,
        mode_temperature: float = 1.0,
        mode_weight: float = 1.0,
        balance_weight: float = 1.0,
        projector: nn.Module | None = None,
        contrast_weight: float = 0.0,
        contrast_temperature: float = 0.2,
        seed: int = 0,
    ) -> None:
        super().__init__()
        self.encoder = encoder
        self.temperature = temperature
        self.mode_temperature = mode_temperature
        self.mode_weight = mode_weight
        self.balance_weight = balance_weight
        self.projector = projector
        self.contrast_weight = contrast_weight
        self.contrast_temperature = contrast_temperature
        self.draws = Draws(seed)

    def forward(self, x_a: Tensor, x_b: Tensor) -> dict[str, Tensor]:
        """Loss of one batch of crop pairs. x_a, x_b Shape: (batch_size, num_samples)."""
        encoder, generator = self.encoder, self.draws.next()
        limit = encoder.max_shift // encoder.bins_per_semitone
        with torch.no_grad():
            semitones = integers(-limit, limit, len(x_a), generator, x_a.device)
            view_a = encoder.window(encoder.spectrum(x_a), encoder.max_shift)
            offset_b = encoder.max_shift - semitones * encoder.bins_per_semitone
            view_b = encoder.window(encoder.spectrum(x_b), offset_b)
        classes, logits = encoder.classes_and_logits(torch.cat([view_a, view_b]))
        logits = logits.mean(-1)
        p_a, p_b = (logits / self.temperature).softmax(-1).reshape(-1, 2, 12).chunk(2)
        tonality = key_cpsd_loss(p_a.sum(1), p_b.sum(1), semitones)
        soft = (logits / self.mode_temperature).softmax(-1).reshape(-1, 2, 12)
        mode_a, mode_b = soft.sum(2).chunk(2)  # (B, 2) each
        mode = invariance_cross_entropy(mode_a, mode_b)
        mean_mode = torch.cat([mode_a, mode_b]).mean(0)
        balance = (mean_mode * (mean_mode.clamp_min(1e-7) * 2).log()).sum()
        loss = tonality + self.mode_weight * mode + self.balance_weight * balance
        values = {"cpsd": tonality.detach(), "mode": mode.detach(), "balance": balance.detach()}
        if self.projector is not None:
            classes_a, classes_b = classes.mean(-1).chunk(2)  # (B, 12 C) each
            turned_a = turn_classes(classes_a, semitones).flatten(1)
            contrast = nt_xent(
                self.projector(turned_a),
                self.projector(classes_b),
                temperature=self.contrast_temperature,
            )
            loss = loss + self.contrast_weight * contrast
            values["contrast"] = contrast.detach()
        return {"loss": loss, **values}


def turn_classes(classes: Tensor, semitones: Tensor) -> Tensor:
    """Pitch classes of each clip as its transposition up by ``semitones`` would sound them.

    Class ``c`` moves to ``c + k`` (mod 12) in every channel.
    Shape: (B, 12 * C) channel-major, (B,) -> (B, C, 12).
    """
    per_channel = classes.reshape(len(classes), -1, 12)
    source = (torch.arange(12, device=classes.device) - semitones[:, None]) % 12  # (B, 12)
    return per_channel.gather(2, source[:, None, :].expand_as(per_channel))


def stone(
    encoder: Encoder,
    *,
    temperature: float = 0.1,
    mode_temperature: float = 1.0,
    mode_weight: float = 1.0,
    balance_weight: float = 1.0,
    contrast_weight: float = 0.0,
    contrast_temperature: float = 0.2,
    seed: int = 0,
) -> STONE:
    """STONE around a ``KeyCNN`` (any other encoder is refused: it has no CQT bins); with
    ``contrast_weight`` above zero, the pitch-class contrast through a 2-layer projector to
    128 dimensions."""
    if not isinstance(encoder, KeyCNN):
        raise MusicSSLError(
            f"method stone needs encoder key_cnn (a CQT with pitch-class outputs), got "
            f"{type(encoder).__name__}"
        )
    if temperature <= 0 or mode_temperature <= 0:
        raise MusicSSLError(
            f"stone: temperatures must be > 0, got {temperature} and {mode_temperature}"
        )
    if contrast_weight < 0 or contrast_temperature <= 0:
        raise MusicSSLError(
            f"stone: need contrast_weight >= 0 and contrast_temperature > 0, got "
            f"{contrast_weight} and {contrast_temperature}"
        )
    width = 12 * encoder.config()["channels"]
    projector = projection_head(width, 256, 128, batch_norm=False) if contrast_weight > 0 else None
    return STONE(
        encoder,
        temperature=temperature,
        mode_temperature=mode_temperature,
        mode_weight=mode_weight,
        balance_weight=balance_weight,
        projector=projector,
        contrast_weight=contrast_weight,
        contrast_temperature=contrast_temperature,
        seed=seed,
    )
