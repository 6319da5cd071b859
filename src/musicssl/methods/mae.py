"""MAE: hide most spectrogram patches, encode the visible ones, reconstruct the hidden ones.

He et al. 2022, "Masked Autoencoders Are Scalable Vision Learners"; Huang et al. 2022,
"Masked Autoencoders that Listen" (Audio-MAE: the same on log-mel patches).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

from musicssl.encoders import Encoder, SpectrogramViT
from musicssl.encoders._transformer import final_norm_mover
from musicssl.encoders.patch_decoder import DECODER_DEFAULTS, PatchDecoder
from musicssl.errors import MusicSSLError
from musicssl.losses import masked_patch_mse, normalise_patches, random_patch_mask
from musicssl.methods._draws import (
    Draws,
    add_noise,
    check_detune,
    check_seed,
    check_share,
    count_under_draws,
    detune,
    snr_range,
    tuning_offsets,
)
from musicssl.methods.base import Method


class MAE(Method):
    """One training step of MAE, from one crop per clip.

    spectrogram -> patches -> random mask (``mask_ratio`` of each example's patches) -> the
    encoder on the visible tokens only -> decoder over visible latents and mask tokens ->
    MSE against the hidden patches (each normalised by its own mean and variance when
    ``normalise_targets``). With ``noise_snr_db`` the encoder reads the crop with white noise
    added at a signal-to-noise ratio drawn per example, and the hidden patches' targets stay
    those of the clean crop: the encoder must see through noise it will meet (as WavLM
    denoises speech); the visible patches' targets are set by ``visible_target``.

    Args:
        encoder: a ``SpectrogramViT`` (patchify / embed_patches / forward_tokens).
        decoder: maps visible latents back to every patch.
        mask_ratio: share of the patches hidden per example (Audio-MAE: 0.8).
        normalise_targets: per-patch normalised targets (MAE's ``norm_pix_loss``).
        noise_snr_db: (lowest, highest) signal-to-noise ratio in dB of the noise on the
            encoder's input, drawn uniformly per example; None adds none.
        noise_share: the share of examples, drawn at random, that get the noise; the
            others are read clean, as the recordings the encoder will be compared against.
        visible_weight: weight of the same error on the visible patches, added (0: the
            hidden ones only, as He et al.): the visible latents must then keep their own
            patch, not only what their neighbours need. The two errors are logged apart
            (``hidden``, ``visible``).
        visible_target: what the visible patches are reconstructed as: ``clean`` (the
            clean crop in tune, as the hidden ones), ``seen`` (the patch as the encoder
            read it, noise and tuning offset included: each latent keeps its own patch
            without having to denoise it, which asks it to measure the noise) or ``noisy``
            (with the encoder's noise but in tune: no denoising, but the latent still reads
            through the tuning offset, as the hidden patches ask).
        consistency_weight: weight of the mean squared distance between the visible latents
            of the crop as the encoder reads it (noisy, detuned) and those of the clean crop
            in tune (same patches, no gradient through the clean reading), added: the
            reconstruction alone never asks the two readings to agree, and the tokens of
            quiet octaves then follow the noise.
        detune_cents: the encoder's constant-Q input moved by a tuning offset drawn per
            example, uniform within this many cents either way (0: none); the targets stay in
            tune, so the encoder must read through a mistuned recording.
        seed: seeds the masks and the noise, with the count of steps taken.
    """

    num_views = 1
    encoder: SpectrogramViT

    def __init__(
        self,
        encoder: SpectrogramViT,
        decoder: PatchDecoder,
        *,
        mask_ratio: float,
        normalise_targets: bool = True,
        noise_snr_db: Sequence[float] | None = None,
        noise_share: float = 1.0,
        visible_weight: float = 0.0,
        visible_target: str = "clean",
        consistency_weight: float = 0.0,
        detune_cents: float = 0.0,
        seed: int = 0,
    ) -> None:
        super().__init__()
        if not 0.0 < mask_ratio < 1.0:
            raise MusicSSLError(f"mae: mask_ratio must be in (0, 1), got {mask_ratio}")
        if not visible_weight >= 0.0:
            raise MusicSSLError(f"mae: visible_weight must be >= 0, got {visible_weight}")
        if not consistency_weight >= 0.0:
            raise MusicSSLError(f"mae: consistency_weight must be >= 0, got {consistency_weight}")
        if visible_target not in ("clean", "noisy", "seen"):
            raise MusicSSLError(
                f"mae: visible_target must be clean, noisy or seen, got {visible_target!r}"
            )
        self.visible_target = visible_target
        self.encoder = encoder
        self.decoder = decoder
        self.mask_ratio, self.visible_weight = mask_ratio, visible_weight
        self.consistency_weight = consistency_weight
        if consistency_weight and noise_snr_db is None and not detune_cents:
            raise MusicSSLError(
                "mae: consistency_weight needs noise_snr_db or detune_cents: it pulls the "
                "degraded reading to the clean one"
            )
        self.detune_cents = check_detune("mae", encoder, detune_cents)
        self.normalise_targets = normalise_targets
        self.noise_snr_db = snr_range("mae", noise_snr_db)
        self.noise_share = check_share("mae", noise_share)
        self.seed = check_seed("mae", seed)
        self.draws = Draws(self.seed)  # resumes with the checkpoint
        self._register_load_state_dict_pre_hook(count_under_draws)
        self._register_load_state_dict_pre_hook(final_norm_mover("decoder.input_norm"))

    def forward(self, x: Tensor) -> dict[str, Tensor]:
        """Reconstruction loss of one batch, with its terms when it has several.

        x Shape: (batch_size, num_samples).
        """
        spec = self.encoder.spectrogram(x)  # (B, n_bins, T)
        grid = self.encoder.patch_grid(spec.shape[-1])
        keep_index, mask, heard, offsets = self._draw(x, grid[0] * grid[1])
        seen = spec if heard is None else self.encoder.spectrogram(heard)
        noisy = seen  # in tune
        if offsets is not None:
            seen = detune(seen, offsets, self.encoder.config()["bins_per_octave"])
        tokens = self.encoder.embed_patches(seen)  # (B, N, D)
        latent = self.encoder.forward_tokens(tokens, keep_index)  # (B, K, D)
        prediction = self.decoder(latent, keep_index, grid)  # (B, N, patch_size)
        target = self._targets(spec)
        hidden = masked_patch_mse(prediction, target, mask)
        out = {"loss": hidden}
        if self.visible_weight:
            if self.visible_target != "clean":
                target = self._targets(seen if self.visible_target == "seen" else noisy)
            visible = masked_patch_mse(prediction, target, ~mask)
            out = {"loss": hidden + self.visible_weight * visible,
                   "hidden": hidden.detach(), "visible": visible.detach()}  # fmt: skip
        if self.consistency_weight:
            with torch.no_grad():
                clean = self.encoder.forward_tokens(self.encoder.embed_patches(spec), keep_index)
            gap = (latent - clean).pow(2).mean()
            out["loss"] = out["loss"] + self.consistency_weight * gap
            out["consistency"] = gap.detach()
        return out

    def compile_for_training(self, mode: str | None) -> None:
        """The whole step: the encoder is reached through ``spectrogram``, ``embed_patches``
        and ``forward_tokens``, not its ``forward``; the draws stay eager (``_draw``)."""
        self.compile(mode=mode)

    @torch.compiler.disable
    def _draw(
        self, x: Tensor, num_patches: int
    ) -> tuple[Tensor, Tensor, Tensor | None, Tensor | None]:
        """This step's draws, made eagerly (a compiled step cannot build a generator): the
        mask (``random_patch_mask``), the crop with noise, and the tuning offsets (each None
        when the recipe adds none)."""
        if round(self.mask_ratio * num_patches) < 1:
            raise MusicSSLError(
                f"mae: mask_ratio={self.mask_ratio} hides none of the {num_patches} patches of "
                "a crop; raise it"
            )
        generator = self.draws.next(x.device)
        keep_index, mask = random_patch_mask(
            x.shape[0], num_patches, mask_ratio=self.mask_ratio, generator=generator,
            device=x.device,
        )  # fmt: skip
        heard = offsets = None
        if self.noise_snr_db is not None:
            heard = add_noise(x, self.noise_snr_db, generator, share=self.noise_share)
        if self.detune_cents:
            offsets = tuning_offsets(x.shape[0], self.detune_cents, generator, x.device)
        return keep_index, mask, heard, offsets

    def _targets(self, spec: Tensor) -> Tensor:
        """The patches of ``spec``, each normalised when ``normalise_targets``; no gradient."""
        patches = self.encoder.patchify(spec).detach()
        return normalise_patches(patches) if self.normalise_targets else patches


def mae(
    encoder: Encoder,
    *,
    mask_ratio: float = 0.8,
    decoder_width: int = DECODER_DEFAULTS["decoder_width"],
    decoder_depth: int = DECODER_DEFAULTS["decoder_depth"],
    decoder_heads: int = DECODER_DEFAULTS["decoder_heads"],
    normalise_targets: bool = True,
    noise_snr_db: Sequence[float] | None = None,
    noise_share: float = 1.0,
    visible_weight: float = 0.0,
    visible_target: str = "clean",
    consistency_weight: float = 0.0,
    detune_cents: float = 0.0,
    seed: int = 0,
) -> MAE:
    """MAE with a light decoder (Audio-MAE: mask ratio 0.8; here 2 blocks 128 wide)."""
    if not isinstance(encoder, SpectrogramViT):
        raise MusicSSLError(
            f"mae: the encoder must be spectrogram_vit (it masks patches), got "
            f"{type(encoder).__name__}"
        )
    patch_size = encoder.patch[0] * encoder.patch[1]
    decoder = PatchDecoder(
        encoder.embedding_dim,
        patch_size,
        width=decoder_width,
        depth=decoder_depth,
        num_heads=decoder_heads,
    )
    return MAE(
        encoder,
        decoder,
        mask_ratio=mask_ratio,
        normalise_targets=normalise_targets,
        noise_snr_db=noise_snr_db,
        noise_share=noise_share,
        visible_weight=visible_weight,
        visible_target=visible_target,
        consistency_weight=consistency_weight,
        detune_cents=detune_cents,
        seed=seed,
    )
