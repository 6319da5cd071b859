"""Spectrogram ViT: a vision transformer over patches of a log-mel (or CQT) spectrogram.

The interface masked-spectrogram modelling (MAE) builds on, beside the ``Encoder`` one::

    spec = encoder.spectrogram(x)          # (B, n_bins, T): standardised dB, T whole patches
    patches = encoder.patchify(spec)       # (B, N, patch_bins * patch_frames), the targets
    grid = encoder.patch_grid(spec.shape[-1])  # (freq patches, time patches); N = product
    tokens = encoder.embed_patches(spec)   # (B, N, width): projected patches + positions
    latent = encoder.forward_tokens(tokens, keep_index)  # (B, K, width), keep_index (B, K)
    spec == encoder.unpatchify(patches, grid)

Token ``n`` is patch (row, column) = ``divmod(n, time patches)``: frequency-major, the
order of the spectrogram's own axes. ``forward_tokens`` runs the blocks on the tokens at
``keep_index`` only (all tokens when None), so an MAE encoder sees the visible patches alone;
the positions travel inside the tokens. The encoder ends in its last block: a pretraining
head that wants normalised tokens holds the norm (MAE's decoder, BEST-RQ's head).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from musicssl.encoders._shared import (
    check_waveforms,
    frontend_config,
    last,
    resolve_layer,
    spectrogram_frontend,
)
from musicssl.encoders._transformer import (
    Block,
    check_width,
    init_weights,
    sincos_2d,
    standardise_clip,
    without_final_norm,
)
from musicssl.encoders.base import Encoder
from musicssl.errors import MusicSSLError

__all__ = ["SpectrogramViT"]


class SpectrogramViT(Encoder):
    """A ViT over spectrogram patches, pooled by the mean over tokens.

    Dosovitskiy et al. 2021, "An Image is Worth 16x16 Words: Transformers for Image
    Recognition at Scale"; on spectrograms as Gong et al. 2021, "AST: Audio Spectrogram
    Transformer", and for masked pretraining Huang et al. 2022, "Masked Autoencoders that
    Listen" (Audio-MAE: fixed 2-D sin-cos positions, no class token needed). Yonay et al.
    2025, "Myna: Masking-Based Contrastive Learning of Musical Representations", use
    vertical patches that span every mel band: ``patch=(n_bins, 2)``.

    Spectrogram (dB) -> each example standardised by its own mean and deviation
    (``standardise_clip``: gain-invariant, nothing learnt) -> non-overlapping patches,
    frames past the last whole patch dropped -> linear projection + 2-D sin-cos positions
    -> ``depth`` pre-norm blocks. Layer ``k`` is block ``k``'s output. There is no final
    norm: a ViT's usually feeds its pretraining head, and the read-out leaves it out (as
    Audio-MAE's linear probe does), since normalising every token to one scale before the
    clip mean cost the masked recipes degraded-copy search (bench/results/masked_cpu.md,
    "The final norm"); so the pretraining heads hold it. Frame features average the tokens
    of each time column: (B, width, time patches).

    Args:
        width: Token width (a multiple of 4 and of ``num_heads``); the embedding size.
        depth: Transformer blocks.
        num_heads: Attention heads.
        mlp_ratio: MLP hidden width as a multiple of ``width``.
        patch: (bins, frames) per patch; ``bins`` divides ``n_bins``.
        frontend: ``"mel"`` or ``"cqt"``.
        sample_rate: Sample rate of the input in Hz.
        n_fft: FFT size of the mel front end.
        hop_length: Hop of the front end in samples (10 ms at 16 kHz, as AST).
        n_bins: Mel bands or CQT bins.
        f_min: Lowest mel frequency (default 0 Hz) or lowest CQT bin (default C1).
        f_max: Highest mel frequency (default ``sample_rate / 2``).
        bins_per_octave: CQT bins per octave.
        input_samples: Training crop in samples (59049 = 3.69 s at 16 kHz); any input of at
            least ``min_samples`` (one patch of frames) is accepted.
    """

    def __init__(
        self,
        *,
        width: int = 192,
        depth: int = 4,
        num_heads: int = 3,
        mlp_ratio: float = 4.0,
        patch: tuple[int, int] = (16, 16),
        frontend: str = "mel",
        sample_rate: int = 16000,
        n_fft: int = 400,
        hop_length: int = 160,
        n_bins: int = 128,
        f_min: float | None = None,
        f_max: float | None = None,
        bins_per_octave: int = 12,
        input_samples: int = 59049,
    ) -> None:
        super().__init__()
        check_width("SpectrogramViT", width, depth, num_heads, 4)
        patch_bins, patch_frames = (int(p) for p in patch)
        if patch_bins < 1 or patch_frames < 1 or n_bins % patch_bins:
            raise MusicSSLError(
                f"SpectrogramViT: patch=({patch_bins}, {patch_frames}) needs positive sizes with "
                f"the bins dividing n_bins={n_bins}"
            )
        self.min_samples = hop_length * (patch_frames - 1)
        if input_samples < max(self.min_samples, 1):
            raise MusicSSLError(
                f"SpectrogramViT: input_samples={input_samples} is below the minimum "
                f"{self.min_samples} (= hop_length * (patch frames - 1))"
            )
        spectrum = frontend_config(
            frontend=frontend,
            sample_rate=sample_rate,
            n_fft=n_fft,
            hop_length=hop_length,
            n_bins=n_bins,
            f_min=f_min,
            f_max=f_max,
            bins_per_octave=bins_per_octave,
        )
        self._config: dict[str, Any] = {
            "width": int(width),
            "depth": int(depth),
            "num_heads": int(num_heads),
            "mlp_ratio": float(mlp_ratio),
            "patch": [patch_bins, patch_frames],
            **spectrum,
            "input_samples": int(input_samples),
        }
        self.embedding_dim = int(width)
        self.sample_rate = int(sample_rate)
        self.input_samples = int(input_samples)
        self.num_layers = int(depth)
        self.hop_length = int(hop_length)
        self.n_bins = int(n_bins)
        self.patch = (patch_bins, patch_frames)

        self.frontend = spectrogram_frontend("SpectrogramViT", spectrum)
        self.patch_embed = nn.Linear(patch_bins * patch_frames, width)
        self.blocks = nn.ModuleList(
            Block(width, num_heads, mlp_ratio=mlp_ratio) for _ in range(depth)
        )
        init_weights(self)
        self._register_load_state_dict_pre_hook(without_final_norm)

    def config(self) -> dict[str, Any]:
        """Constructor arguments, as plain JSON/YAML values: ``SpectrogramViT(**config())``."""
        return dict(self._config, patch=list(self.patch))

    def frame_hop(self, layer: int | None = None) -> int:
        """Input samples between consecutive frames (time patches); the same for every layer."""
        resolve_layer(layer, self.num_layers, "SpectrogramViT")
        return self.hop_length * self.patch[1]

    def frame_centres(
        self, num_frames: int, *, window: int, layer: int | None = None
    ) -> np.ndarray:
        """The centre of the spectrogram frames each time patch reads: patch ``i`` reads
        frames ``[i n, i n + n)`` (``n = patch[1]``), frame ``j`` centred on sample
        ``j * hop_length``."""
        n = self.patch[1]
        return (np.arange(num_frames) * n + (n - 1) / 2) * self.hop_length

    def patch_grid(self, num_frames: int) -> tuple[int, int]:
        """(frequency patches, time patches) of a spectrogram with ``num_frames`` frames."""
        return self.n_bins // self.patch[0], num_frames // self.patch[1]

    def spectrogram(self, x: Tensor) -> Tensor:
        """Standardised spectrogram, cut to whole patches in time.

        Args:
            x: Waveforms. Shape: (batch_size, num_samples), num_samples >= min_samples.

        Returns:
            Shape: (batch_size, n_bins, time_patches * patch_frames).
        """
        check_waveforms(x, "SpectrogramViT")
        if x.shape[-1] < self.min_samples:
            raise MusicSSLError(
                f"SpectrogramViT(hop_length={self.hop_length}, patch={self.patch}) needs at "
                f"least {self.min_samples} samples, got input of shape {tuple(x.shape)}"
            )
        spec = standardise_clip(self.frontend(x))  # (B, n_bins, T)
        _, time_patches = self.patch_grid(spec.shape[-1])
        return spec[..., : time_patches * self.patch[1]]

    def patchify(self, spec: Tensor) -> Tensor:
        """Non-overlapping patches, frequency-major.

        Args:
            spec: Shape: (batch_size, n_bins, num_frames); frames past the last whole patch
                are dropped.

        Returns:
            Shape: (batch_size, num_patches, patch_bins * patch_frames); each patch flattened
            bins-major.
        """
        rows, cols = self.patch_grid(spec.shape[-1])
        patch_bins, patch_frames = self.patch
        spec = spec[..., : cols * patch_frames]
        grid = spec.reshape(spec.shape[0], rows, patch_bins, cols, patch_frames)
        # (B, rows, cols, patch_bins, patch_frames)
        return grid.permute(0, 1, 3, 2, 4).reshape(spec.shape[0], rows * cols, -1)

    def unpatchify(self, patches: Tensor, grid: tuple[int, int]) -> Tensor:
        """The inverse of ``patchify``. Shape: (B, rows * cols, patch size) -> (B, n_bins, T)."""
        rows, cols = grid
        patch_bins, patch_frames = self.patch
        blocks = patches.reshape(patches.shape[0], rows, cols, patch_bins, patch_frames)
        return blocks.permute(0, 1, 3, 2, 4).reshape(
            patches.shape[0], rows * patch_bins, cols * patch_frames
        )

    def embed_patches(self, spec: Tensor) -> Tensor:
        """Tokens: projected patches plus their 2-D sin-cos positions.

        Args:
            spec: Shape: (batch_size, n_bins, num_frames), e.g. ``spectrogram(x)``.

        Returns:
            Shape: (batch_size, num_patches, width).
        """
        return self.embed_patch_vectors(self.patchify(spec), self.patch_grid(spec.shape[-1]))

    def embed_patch_vectors(self, patches: Tensor, grid: tuple[int, int]) -> Tensor:
        """Tokens of given patches (e.g. some replaced by noise): projection plus positions.

        Shape: (batch_size, rows * cols, patch size) -> (batch_size, rows * cols, width).
        """
        positions = sincos_2d(*grid, self.embedding_dim, device=patches.device)
        return self.patch_embed(patches) + positions.to(patches.dtype)

    def forward_tokens(self, tokens: Tensor, keep_index: Tensor | None = None) -> Tensor:
        """The blocks over the tokens at ``keep_index`` (all when None).

        Args:
            tokens: From ``embed_patches``. Shape: (batch_size, num_patches, width).
            keep_index: Token indices per example, int64. Shape: (batch_size, num_kept).

        Returns:
            Shape: (batch_size, num_kept, width), in the order of ``keep_index``.
        """
        return last(self._block_outputs(_gather(tokens, keep_index), self.num_layers))

    def forward_layers(self, x: Tensor) -> list[Tensor]:
        """Frame features after every block, from one pass.

        Args:
            x: Waveforms. Shape: (batch_size, num_samples), num_samples >= min_samples.

        Returns:
            ``num_layers`` tensors; entry ``k`` equals ``forward_features(x, layer=k)``.
            Shape: (batch_size, width, time_patches).
        """
        spec = self.spectrogram(x)
        grid = self.patch_grid(spec.shape[-1])
        tokens = self.embed_patches(spec)
        return [_time_columns(h, grid) for h in self._block_outputs(tokens, self.num_layers)]

    def forward_features(self, x: Tensor, *, layer: int | None = None) -> Tensor:
        """Frame features after block ``layer``: the mean of each time column's tokens.

        Args:
            x: Waveforms. Shape: (batch_size, num_samples), num_samples >= min_samples.
            layer: Which block; None is the last; negative counts back.

        Returns:
            Shape: (batch_size, width, time_patches).
        """
        index = resolve_layer(layer, self.num_layers, "SpectrogramViT")
        spec = self.spectrogram(x)
        tokens = self.embed_patches(spec)
        grid = self.patch_grid(spec.shape[-1])
        return _time_columns(last(self._block_outputs(tokens, index + 1)), grid)

    def pool(self, features: Tensor) -> Tensor:
        """Clip embedding: the mean over frames (so over all tokens).

        Args:
            features: Shape: (batch_size, width, time_patches).

        Returns:
            Shape: (batch_size, width).
        """
        return features.mean(dim=-1)

    def forward(self, x: Tensor) -> Tensor:
        """Clip embedding, the mean of the last layer's tokens. Shape: (B, N) -> (B, width)."""
        return self.pool(self.forward_features(x))

    def _block_outputs(self, tokens: Tensor, count: int) -> Iterator[Tensor]:
        """The first ``count`` blocks' outputs."""
        h = tokens
        for block in self.blocks[:count]:
            h = block(h)  # (B, N, D)
            yield h


def _gather(tokens: Tensor, keep_index: Tensor | None) -> Tensor:
    """Tokens at ``keep_index`` per example. Shape: (B, N, D), (B, K) -> (B, K, D)."""
    if keep_index is None:
        return tokens
    if keep_index.ndim != 2 or keep_index.shape[0] != tokens.shape[0]:
        raise MusicSSLError(
            f"keep_index must have shape (batch_size, num_kept) = ({tokens.shape[0]}, K), got "
            f"{tuple(keep_index.shape)}"
        )
    index = keep_index[..., None].expand(-1, -1, tokens.shape[-1])
    return torch.gather(tokens, 1, index)


def _time_columns(tokens: Tensor, grid: tuple[int, int]) -> Tensor:
    """Mean over frequency patches. Shape: (B, rows * cols, D) -> (B, D, cols)."""
    rows, cols = grid
    return tokens.reshape(tokens.shape[0], rows, cols, -1).mean(dim=1).transpose(1, 2)
