"""BEST-RQ: predict, for hidden frames, the codes a frozen random-projection quantiser gives.

Chiu et al. 2022, "Self-supervised Learning with Random-projection Quantizer for Speech
Recognition"; for music, Won et al. 2024, "A Foundation Model for Music Informatics"
(MusicFM), and Alonso-Jimenez et al. 2025, "OMAR-RQ" (several codebooks).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from musicssl.encoders import Encoder, FrameTransformer
from musicssl.errors import MusicSSLError
from musicssl.losses import (
    codebook_usage,
    masked_code_cross_entropy,
    random_projection_codes,
    span_mask,
)
from musicssl.methods._draws import next_generator
from musicssl.methods.base import Method


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


class BestRQ(Method):
    """One training step of BEST-RQ, from one crop per clip.

    frames -> codes of the frozen quantiser (``targets``: frames standardised per dimension
    over the batch) -> spans of frames replaced by noise N(0, ``noise_std``) -> encoder ->
    one linear classifier per codebook -> cross-entropy on the hidden frames. Beside the
    loss it reports how many codes the targets use
    (``code_perplexity``, ``codes_used``), so a collapsed quantiser shows while training.

    Args:
        encoder: a ``FrameTransformer`` (frame_inputs / forward_frames).
        num_codebooks: independent quantisers, each with its own projection and head.
        codebook_size: codes per codebook (Chiu et al.: 8192; MusicFM: 4096).
        code_dim: dimension of the projection and the codes (16 in both).
        start_probability: chance that a frame starts a hidden span.
        span: frames per hidden span.
        noise_std: standard deviation of the noise hidden frames get (the paper: 0.1).
        reconstruction_weight: weight of a second target, the hidden frames themselves
            (standardised as the quantiser reads them; MSE through a linear head), as MERT's
            CQT reconstruction beside its codes (Li et al. 2024); 0: codes only.
        seed: seeds the quantiser, and the masks with the count of steps taken.
    """

    num_views = 1
    encoder: FrameTransformer
    projection: Tensor  # frozen buffers, saved with the method
    codebooks: Tensor
    draws: Tensor  # masks drawn so far (a buffer: it resumes with the checkpoint)

    def __init__(
        self,
        encoder: FrameTransformer,
        *,
        num_codebooks: int,
        codebook_size: int,
        code_dim: int,
        start_probability: float,
        span: int,
        noise_std: float = 0.1,
        reconstruction_weight: float = 0.0,
        seed: int = 0,
    ) -> None:
        super().__init__()
        if (
            min(num_codebooks, codebook_size, code_dim) < 1
            or min(noise_std, reconstruction_weight) < 0
        ):
            raise MusicSSLError(
                f"bestrq: need positive num_codebooks, codebook_size, code_dim and noise_std, "
                f"reconstruction_weight >= 0, got {num_codebooks}, {codebook_size}, {code_dim}, "
                f"{noise_std}, {reconstruction_weight}"
            )
        self.encoder = encoder
        self.num_codebooks, self.codebook_size = num_codebooks, codebook_size
        self.start_probability, self.span = start_probability, span
        self.noise_std, self.seed = noise_std, seed
        projection, codebooks = random_quantizer(
            encoder.stack * encoder.n_bins,
            num_codebooks=num_codebooks,
            codebook_size=codebook_size,
            code_dim=code_dim,
            seed=seed,
        )
        self.register_buffer("projection", projection)
        self.register_buffer("codebooks", codebooks)
        self.register_buffer("draws", torch.zeros((), dtype=torch.long))
        self.head = nn.Linear(encoder.embedding_dim, num_codebooks * codebook_size)
        self.reconstruction_weight = reconstruction_weight
        if reconstruction_weight > 0:
            self.reconstruction = nn.Linear(encoder.embedding_dim, encoder.stack * encoder.n_bins)

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
        return random_projection_codes(self.standardise(frames), self.projection, self.codebooks)

    def forward(self, x: Tensor) -> dict[str, Tensor]:
        """Masked code prediction loss and code usage of one batch. x Shape: (B, num_samples)."""
        frames = self.encoder.frame_inputs(x)  # (B, T, stack * n_bins)
        batch_size, num_frames, _ = frames.shape
        codes = self.targets(frames)  # (B, T, C)
        generator = next_generator(self.seed, self.draws, x.device)
        mask = span_mask(batch_size, num_frames, start_probability=self.start_probability,
                         span=self.span, generator=generator, device=x.device)  # fmt: skip
        noise = torch.randn(frames.shape, generator=generator, device=x.device) * self.noise_std
        hidden = torch.where(mask[..., None], noise.to(frames.dtype), frames)
        features = self.encoder.forward_frames(hidden)  # (B, T, D)
        logits = self.head(features).view(
            batch_size, num_frames, self.num_codebooks, self.codebook_size
        )
        out = {"loss": masked_code_cross_entropy(logits, codes, mask)}
        if self.reconstruction_weight > 0:
            error = self.reconstruction(features[mask]) - self.standardise(frames)[mask]
            out["reconstruction"] = error.pow(2).mean()
            out["loss"] = out["loss"] + self.reconstruction_weight * out["reconstruction"]
        out["code_perplexity"], out["codes_used"] = codebook_usage(codes[mask], self.codebook_size)
        return out


def bestrq(
    encoder: Encoder,
    *,
    num_codebooks: int = 1,
    codebook_size: int = 4096,
    code_dim: int = 16,
    start_probability: float = 0.05,
    span: int = 10,
    noise_std: float = 0.1,
    reconstruction_weight: float = 0.0,
    seed: int = 0,
) -> BestRQ:
    """BEST-RQ as MusicFM sets it (4096 codes of 16 dimensions); spans of 10 tokens (400 ms
    at the frame transformer's 40 ms tokens), about 40% of the frames hidden."""
    if not isinstance(encoder, FrameTransformer):
        raise MusicSSLError(
            f"bestrq: the encoder must be frame_transformer (it masks frames), got "
            f"{type(encoder).__name__}"
        )
    return BestRQ(
        encoder,
        num_codebooks=num_codebooks,
        codebook_size=codebook_size,
        code_dim=code_dim,
        start_probability=start_probability,
        span=span,
        noise_std=noise_std,
        reconstruction_weight=reconstruction_weight,
        seed=seed,
    )
