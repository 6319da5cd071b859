"""BEST-RQ: predict, for hidden frames, the codes a frozen random-projection quantiser gives.

Chiu et al. 2022, "Self-supervised Learning with Random-projection Quantizer for Speech
Recognition"; for music, Won et al. 2024, "A Foundation Model for Music Informatics"
(MusicFM), and Alonso-Jimenez et al. 2025, "OMAR-RQ" (several codebooks).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn

from musicssl.encoders import Encoder, FrameTransformer, SpectrogramViT
from musicssl.encoders._transformer import Block, final_norm_mover
from musicssl.errors import MusicSSLError
from musicssl.losses import (
    codebook_usage,
    masked_code_cross_entropy,
    masked_patch_mse,
    normalise_patches,
    random_projection_codes,
    random_quantizer,
    span_mask,
)
from musicssl.methods._draws import (
    Draws,
    add_noise,
    check_seed,
    check_share,
    count_under_draws,
    snr_range,
)
from musicssl.methods.base import Method


def input_size(encoder: FrameTransformer | SpectrogramViT) -> int:
    """Size of what the quantiser reads: a stack of frames, or a ViT patch."""
    if isinstance(encoder, SpectrogramViT):
        return encoder.patch[0] * encoder.patch[1]
    return encoder.stack * encoder.n_bins


def _check_ranges(
    *,
    num_codebooks: int,
    codebook_size: int,
    code_dim: int,
    noise_std: float,
    start_probability: float,
    span: int,
    head_depth: int,
    reconstruct_weight: float,
) -> None:
    """Refuse an option out of its range, naming it; and a mask that hides nearly every frame."""
    for key, value, holds, rule in (
        ("num_codebooks", num_codebooks, num_codebooks >= 1, ">= 1"),
        ("codebook_size", codebook_size, codebook_size >= 2, ">= 2 (one code is no target)"),
        ("code_dim", code_dim, code_dim >= 1, ">= 1"),
        ("noise_std", noise_std, noise_std >= 0, ">= 0"),
        ("start_probability", start_probability, 0 < start_probability <= 1, "in (0, 1]"),
        ("span", span, span >= 1, ">= 1"),
        ("head_depth", head_depth, head_depth >= 0, ">= 0"),
        ("reconstruct_weight", reconstruct_weight, reconstruct_weight >= 0, ">= 0"),
    ):
        if not holds:
            raise MusicSSLError(f"bestrq: {key} must be {rule}, got {value}")
    if (share := 1.0 - (1.0 - start_probability) ** span) > 0.9:
        raise MusicSSLError(
            f"bestrq: start_probability={start_probability} with span={span} hides about "
            f"{share:.0%} of the frames, leaving the encoder almost nothing to read; lower "
            "either (MusicFM's 0.05 and 10 hide about 40%)"
        )


class BestRQ(Method):
    """One training step of BEST-RQ, from one crop per clip.

    frames -> codes of the frozen quantiser (``targets``: frames standardised per dimension
    over the batch) -> spans of frames replaced by noise N(0, ``noise_std``) -> encoder ->
    one linear classifier per codebook -> cross-entropy on the hidden frames. With
    ``noise_snr_db`` the visible frames are those of the crop with white noise added (the
    codes stay those of the clean crop), as in MAE. With a
    ``SpectrogramViT`` the tokens are its patches: each patch has its code, and a hidden
    time column is hidden in every frequency row (the frame, cut into patches), or each
    row's spans are drawn apart (``mask_by``). Beside the loss it reports how many codes the
    targets use
    (``code_perplexity``, ``codes_used``), so a collapsed quantiser shows while training.
    The defaults are MusicFM's: 4096 codes of 16 dimensions, spans of 10 tokens (400 ms at
    the frame transformer's 40 ms tokens), about 40% of the frames hidden.

    Args:
        encoder: a ``FrameTransformer`` (frame_inputs / forward_frames) or a
            ``SpectrogramViT`` (patchify / embed_patch_vectors / forward_tokens).
        num_codebooks: independent quantisers, each with its own projection and head.
        codebook_size: codes per codebook (Chiu et al.: 8192; MusicFM: 4096).
        code_dim: dimension of the projection and the codes (16 in both).
        start_probability: chance that a frame (a time column of patches) starts a hidden span.
        span: frames (time columns) per hidden span.
        noise_std: standard deviation of the noise hidden frames get (the paper: 0.1).
        noise_snr_db: (lowest, highest) signal-to-noise ratio in dB of white noise on what
            the encoder sees, drawn per example; None adds none.
        noise_share: the share of examples, drawn at random, that get that noise (the
            others are seen clean).
        head_depth: transformer blocks between the encoder and the classifiers, used in
            training only (0: the paper's linear classifiers); as MAE's decoder, they take
            the code prediction off the encoder's last blocks.
        reconstruct_weight: weight of a second target, added: every token's own input
            (clean for the hidden tokens, as ``reconstruct_target`` says for the seen ones;
            normalised by its mean and variance, as MAE's targets), regressed through
            a linear layer beside the classifiers with mean squared error, hidden tokens and
            seen ones alike (MERT reconstructs the constant-Q frames beside its codes; MAE's
            seen patches kept the note under each frame). 0: none. The two terms are
            logged apart (``codes``, the cross-entropy of the codes; ``reconstruction``).
        reconstruct_target: what the seen tokens are regressed to: ``clean`` (the clean crop,
            as the hidden ones) or ``seen`` (the token as the encoder read it, its noise
            included, so that keeping it does not ask the encoder to measure the noise).
        code_input: what the quantiser reads: ``batch``, each token dimension standardised
            over the batch (the paper's); ``token``, each token first standardised by its own
            mean and deviation (as MAE's targets), so that a code names the shape within a
            token (which bins sound, against the rest) and not its loudness.
        mask_by: how the ViT's patches are hidden: ``column``, every frequency row of a
            hidden time column (a hidden frame, cut into patches), or ``row``, the spans of
            each frequency row drawn apart, so that the other octaves of a hidden patch's
            column are seen (as MAE hides patches one by one). The frame transformer's one
            row is hidden the same either way.
        seed: seeds the quantiser, and the masks with the count of steps taken.
    """

    num_views = 1
    encoder: FrameTransformer | SpectrogramViT
    projection: Tensor  # frozen buffers, saved with the method
    codebooks: Tensor

    def __init__(
        self,
        encoder: Encoder,
        *,
        num_codebooks: int = 1,
        codebook_size: int = 4096,
        code_dim: int = 16,
        start_probability: float = 0.05,
        span: int = 10,
        noise_std: float = 0.1,
        noise_snr_db: Sequence[float] | None = None,
        noise_share: float = 1.0,
        head_depth: int = 0,
        reconstruct_weight: float = 0.0,
        reconstruct_target: str = "clean",
        code_input: str = "batch",
        mask_by: str = "column",
        seed: int = 0,
    ) -> None:
        super().__init__()
        if not isinstance(encoder, FrameTransformer | SpectrogramViT):
            raise MusicSSLError(
                f"bestrq: the encoder must be frame_transformer or spectrogram_vit (it masks "
                f"frames or patches), got {type(encoder).__name__}"
            )
        _check_ranges(num_codebooks=num_codebooks, codebook_size=codebook_size,
                      code_dim=code_dim, noise_std=noise_std,
                      start_probability=start_probability, span=span, head_depth=head_depth,
                      reconstruct_weight=reconstruct_weight)  # fmt: skip
        self.encoder = encoder
        self.num_codebooks, self.codebook_size = num_codebooks, codebook_size
        self.start_probability, self.span = start_probability, span
        self.noise_std, self.seed = noise_std, check_seed("bestrq", seed)
        self.noise_snr_db = snr_range("bestrq", noise_snr_db)
        self.noise_share = check_share("bestrq", noise_share)
        for key, value, choices in (
            ("reconstruct_target", reconstruct_target, ("clean", "seen")),
            ("code_input", code_input, ("batch", "token")),
            ("mask_by", mask_by, ("column", "row")),
        ):
            if value not in choices:
                raise MusicSSLError(f"bestrq: {key} must be {' or '.join(choices)}, got {value!r}")
        self.reconstruct_weight, self.reconstruct_target = reconstruct_weight, reconstruct_target
        self.code_input, self.mask_by = code_input, mask_by
        projection, codebooks = random_quantizer(
            input_size(encoder),
            num_codebooks=num_codebooks,
            codebook_size=codebook_size,
            code_dim=code_dim,
            seed=seed,
        )
        self.register_buffer("projection", projection)
        self.register_buffer("codebooks", codebooks)
        self.draws = Draws(self.seed)  # resumes with the checkpoint
        self._register_load_state_dict_pre_hook(count_under_draws)
        width = encoder.embedding_dim
        # The encoder's tokens come as its last block leaves them (its read-out keeps them so).
        self.norm = nn.LayerNorm(width)
        self._register_load_state_dict_pre_hook(final_norm_mover("norm"))
        blocks = [Block(width, encoder.config()["num_heads"]) for _ in range(head_depth)]
        # Empty (the identity) without blocks: a linear run's weights keep their names.
        self.head_blocks = nn.Sequential(*blocks, *([nn.LayerNorm(width)] if blocks else []))
        self.head = nn.Linear(width, num_codebooks * codebook_size)
        if reconstruct_weight:
            self.reconstruct = nn.Linear(width, input_size(encoder))

    @torch.no_grad()
    def standardise(self, frames: Tensor) -> Tensor:
        """Frames standardised per dimension over the given frames (a batch).

        Chiu et al. normalise the quantiser's input per dimension; over a batch, so that the
        spectral tilt every clip shares does not pick the codes. Shape kept: (B, T, F).
        """
        mean = frames.mean(dim=(0, 1))
        std = frames.std(dim=(0, 1), unbiased=False).clamp_min(1e-5)
        return (frames - mean) / std

    @torch.no_grad()
    def targets(self, frames: Tensor) -> Tensor:
        """The frozen quantiser's codes of ``frames``, standardised per dimension first.

        Args:
            frames: e.g. ``encoder.frame_inputs(x)``. Shape: (B, T, stack * n_bins).

        Returns:
            int64 codes. Shape: (B, T, num_codebooks).
        """
        if self.code_input == "token":
            frames = normalise_patches(frames)
        return random_projection_codes(self.standardise(frames), self.projection, self.codebooks)

    def forward(self, x: Tensor) -> dict[str, Tensor]:
        """Masked code prediction loss and code usage of one batch. x Shape: (B, num_samples)."""
        inputs, grid = self.tokens(x)  # (B, T, F): frames, or patches on a (rows, cols) grid
        codes = self.targets(inputs)  # (B, T, C)
        mask, heard, noise = self._draw(x, inputs.shape, grid)  # mask: (B, T)
        seen = inputs if heard is None else self.tokens(heard)[0]
        hidden = torch.where(mask[..., None], noise.to(inputs.dtype), seen)
        features = self.head_blocks(self._encode(hidden, grid))  # (B, T, D)
        loss = self._code_loss(features, codes, mask)
        out = {"loss": loss}
        if self.reconstruct_weight:
            every = torch.ones_like(mask)
            target = inputs
            if self.reconstruct_target == "seen":
                target = torch.where(mask[..., None], inputs, seen)
            error = masked_patch_mse(self.reconstruct(features), normalise_patches(target), every)
            out["loss"] = loss + self.reconstruct_weight * error
            out["codes"] = loss.detach()
            out["reconstruction"] = error.detach()
        out["code_perplexity"], out["codes_used"] = codebook_usage(
            codes.flatten(0, 1), self.codebook_size, mask.flatten()
        )
        return out

    def tokens(self, x: Tensor) -> tuple[Tensor, tuple[int, int]]:
        """What the quantiser reads and the mask hides: the frame transformer's frames (a
        grid of one row), or the ViT's patches on their (rows, columns) grid, hidden by time
        columns or row by row (``mask_by``).

        Shape: (B, num_samples) -> (B, num_tokens, token size), (rows, columns).
        """
        if isinstance(self.encoder, SpectrogramViT):
            spec = self.encoder.spectrogram(x)
            return self.encoder.patchify(spec), self.encoder.patch_grid(spec.shape[-1])
        frames = self.encoder.frame_inputs(x)
        return frames, (1, frames.shape[1])

    def compile_for_training(self, mode: str | None) -> None:
        """The whole step: the encoder is reached through ``tokens`` and ``_encode``, not its
        ``forward``; the draws stay eager (``_draw``)."""
        self.compile(mode=mode)

    @torch.compiler.disable
    def _draw(
        self, x: Tensor, token_shape: torch.Size, grid: tuple[int, int]
    ) -> tuple[Tensor, Tensor | None, Tensor]:
        """This step's draws, made eagerly (a compiled step cannot build a generator): the
        hidden tokens (``span_mask`` over the time columns, every row of a column alike or
        each row apart, as ``mask_by`` says), the crop with noise (None when the recipe adds
        none), and the noise that replaces hidden tokens."""
        generator = self.draws.next(x.device)
        rows, columns = grid
        drawn = rows if self.mask_by == "row" else 1
        mask = span_mask(x.shape[0] * drawn, columns, start_probability=self.start_probability,
                         span=self.span, generator=generator, device=x.device)  # fmt: skip
        mask = mask.view(x.shape[0], drawn, columns).expand(-1, rows, -1).flatten(1)
        heard = None
        if self.noise_snr_db is not None:
            heard = add_noise(x, self.noise_snr_db, generator, share=self.noise_share)
        noise = torch.randn(token_shape, generator=generator, device=x.device) * self.noise_std
        return mask, heard, noise

    def _code_loss(self, features: Tensor, codes: Tensor, mask: Tensor) -> Tensor:
        """Cross-entropy of the hidden tokens' codes (``masked_code_cross_entropy``).

        Run eagerly, the classifiers read the hidden tokens only (about 40%: a quarter of a
        CPU step is theirs). A compiled step, whose shapes cannot follow the mask, classifies
        every token and weighs the visible ones zero: the same loss.
        """
        if not torch.compiler.is_compiling():
            features, codes, mask = features[mask][None], codes[mask][None], mask[mask][None]
        logits = self.head(features).unflatten(-1, (self.num_codebooks, self.codebook_size))
        return masked_code_cross_entropy(logits, codes, mask)

    def _encode(self, hidden: Tensor, grid: tuple[int, int]) -> Tensor:
        if isinstance(self.encoder, SpectrogramViT):
            tokens = self.encoder.embed_patch_vectors(hidden, grid)
            return self.norm(self.encoder.forward_tokens(tokens))
        return self.norm(self.encoder.forward_frames(hidden))
