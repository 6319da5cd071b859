"""Frame transformer: a transformer over (stacked) spectrogram frames, one token per step.

The interface masked-frame prediction (BEST-RQ) builds on, beside the ``Encoder`` one::

    frames = encoder.frame_inputs(x)       # (B, T, stack * n_bins): standardised dB frames
    frames = where(mask, noise, frames)    # the method hides frames (BEST-RQ: noise)
    features = encoder.forward_frames(frames)  # (B, T, width), one per input frame

``frame_inputs`` is what a random-projection quantiser reads, and ``forward_frames`` runs
projection, positions and blocks on any such frames.
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
    sincos_1d,
    standardise_clip,
    without_final_norm,
)
from musicssl.encoders.base import Encoder
from musicssl.errors import MusicSSLError

__all__ = ["FrameTransformer"]

POSITIONS = ("sincos", "learned")


class FrameTransformer(Encoder):
    """Transformer over log-mel frames, ``stack`` frames per token, pooled by the mean.

    As the encoders of Won et al. 2024, "A Foundation Model for Music Informatics"
    (MusicFM), and Alonso-Jimenez et al. 2025, "OMAR-RQ: Open Music Audio Representation
    Model Trained with Multi-Feature Masked Token Prediction", pretrained with BEST-RQ
    (Chiu et al. 2022), kept simple: spectrogram (dB) -> each example standardised by its
    own mean and deviation (``standardise_clip``: gain-invariant, nothing learnt) ->
    ``stack`` consecutive frames concatenated -> linear projection -> positions (fixed
    sinusoidal, or learned for up to the tokens of ``input_samples``) -> ``depth`` pre-norm
    blocks, optionally with Conformer's convolution module (Gulati et al. 2020, "Conformer:
    Convolution-augmented Transformer for Speech Recognition"). Layer ``k`` is block
    ``k``'s output as it leaves the block: no final norm, which a pretraining head that
    needs one holds (as the spectrogram ViT's).

    Args:
        width: Token width (even, divisible by ``num_heads``); the embedding size.
        depth: Transformer blocks.
        num_heads: Attention heads.
        mlp_ratio: MLP hidden width as a multiple of ``width``.
        stack: Spectrogram frames per token (4 at a 10 ms hop: 25 tokens a second).
        positions: ``"sincos"`` or ``"learned"``.
        conv_kernel: Depthwise kernel of a Conformer conv module in each block; 0 for none.
        frontend: ``"mel"`` or ``"cqt"``.
        sample_rate: Sample rate of the input in Hz.
        n_fft: FFT size of the mel front end.
        hop_length: Hop of the front end in samples.
        n_bins: Mel bands or CQT bins.
        f_min: Lowest mel frequency (default 0 Hz) or lowest CQT bin (default C1).
        f_max: Highest mel frequency (default ``sample_rate / 2``).
        bins_per_octave: CQT bins per octave.
        input_samples: Training crop in samples (59049 = 3.69 s at 16 kHz); any input of at
            least ``min_samples`` (one token) is accepted, and with learned positions at most
            ``input_samples``.
    """

    def __init__(
        self,
        *,
        width: int = 192,
        depth: int = 4,
        num_heads: int = 3,
        mlp_ratio: float = 4.0,
        stack: int = 4,
        positions: str = "sincos",
        conv_kernel: int = 0,
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
        check_width("FrameTransformer", width, depth, num_heads, 2)
        if stack < 1 or positions not in POSITIONS:
            raise MusicSSLError(
                f"FrameTransformer: need stack >= 1 and positions in {POSITIONS}; got "
                f"stack={stack}, positions={positions!r}"
            )
        self.min_samples = hop_length * (stack - 1)
        if input_samples < max(self.min_samples, 1):
            raise MusicSSLError(
                f"FrameTransformer: input_samples={input_samples} is below the minimum "
                f"{self.min_samples} (= hop_length * (stack - 1))"
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
            "stack": int(stack),
            "positions": str(positions),
            "conv_kernel": int(conv_kernel),
            **spectrum,
            "input_samples": int(input_samples),
        }
        self.embedding_dim = int(width)
        self.sample_rate = int(sample_rate)
        self.input_samples = int(input_samples)
        self.num_layers = int(depth)
        self.hop_length = int(hop_length)
        self.stack = int(stack)
        self.n_bins = int(n_bins)

        self.frontend = spectrogram_frontend("FrameTransformer", spectrum)
        self.proj = nn.Linear(stack * n_bins, width)
        self.max_tokens = self.num_tokens(input_samples)
        self.positions = (
            nn.Parameter(torch.zeros(self.max_tokens, width)) if positions == "learned" else None
        )
        self.blocks = nn.ModuleList(
            Block(width, num_heads, mlp_ratio=mlp_ratio, conv_kernel=conv_kernel)
            for _ in range(depth)
        )
        init_weights(self)
        if self.positions is not None:
            nn.init.trunc_normal_(self.positions, std=0.02)
        self._register_load_state_dict_pre_hook(without_final_norm)

    def config(self) -> dict[str, Any]:
        """Constructor arguments, as plain JSON/YAML values: ``FrameTransformer(**config())``."""
        return dict(self._config)

    def num_tokens(self, num_samples: int) -> int:
        """Tokens for an input of ``num_samples`` samples (frames past the last stack dropped)."""
        return (1 + num_samples // self.hop_length) // self.stack

    def frame_hop(self, layer: int | None = None) -> int:
        """Input samples between consecutive tokens; the same for every layer."""
        resolve_layer(layer, self.num_layers, "FrameTransformer")
        return self.hop_length * self.stack

    def frame_centres(
        self, num_frames: int, *, window: int, layer: int | None = None
    ) -> np.ndarray:
        """The centre of the spectrogram frames each token reads: token ``i`` reads frames
        ``[i n, i n + n)`` (``n = stack``), frame ``j`` centred on sample ``j * hop_length``."""
        n = self.stack
        return (np.arange(num_frames) * n + (n - 1) / 2) * self.hop_length

    def frame_inputs(self, x: Tensor) -> Tensor:
        """Standardised spectrogram frames, ``stack`` per row, time first.

        Args:
            x: Waveforms. Shape: (batch_size, num_samples), num_samples >= min_samples
                (and <= input_samples with learned positions).

        Returns:
            Shape: (batch_size, num_tokens, stack * n_bins); row ``t`` holds frames
            ``stack * t`` to ``stack * t + stack - 1``, each frame's bins together.
        """
        check_waveforms(x, "FrameTransformer")
        if x.shape[-1] < self.min_samples:
            raise MusicSSLError(
                f"FrameTransformer(hop_length={self.hop_length}, stack={self.stack}) needs at "
                f"least {self.min_samples} samples, got input of shape {tuple(x.shape)}"
            )
        spec = standardise_clip(self.frontend(x))  # (B, n_bins, T)
        num_tokens = spec.shape[-1] // self.stack
        frames = spec[..., : num_tokens * self.stack].transpose(1, 2)  # (B, T, n_bins)
        return frames.reshape(spec.shape[0], num_tokens, self.stack * self.n_bins)

    def forward_frames(self, frames: Tensor) -> Tensor:
        """Projection, positions and every block over ``frames``.

        Args:
            frames: e.g. ``frame_inputs(x)``, some rows replaced.
                Shape: (batch_size, num_tokens, stack * n_bins).

        Returns:
            Shape: (batch_size, num_tokens, width).
        """
        return last(self._block_outputs(frames, self.num_layers))

    def forward_layers(self, x: Tensor) -> list[Tensor]:
        """Frame features after every block, from one pass.

        Args:
            x: Waveforms. Shape: (batch_size, num_samples), num_samples >= min_samples.

        Returns:
            ``num_layers`` tensors; entry ``k`` equals ``forward_features(x, layer=k)``.
            Shape: (batch_size, width, num_tokens).
        """
        frames = self.frame_inputs(x)
        return [h.transpose(1, 2) for h in self._block_outputs(frames, self.num_layers)]

    def forward_features(self, x: Tensor, *, layer: int | None = None) -> Tensor:
        """Token features after block ``layer``.

        Args:
            x: Waveforms. Shape: (batch_size, num_samples), num_samples >= min_samples.
            layer: Which block; None is the last; negative counts back.

        Returns:
            Shape: (batch_size, width, num_tokens).
        """
        index = resolve_layer(layer, self.num_layers, "FrameTransformer")
        return last(self._block_outputs(self.frame_inputs(x), index + 1)).transpose(1, 2)

    def pool(self, features: Tensor) -> Tensor:
        """Clip embedding: the mean over tokens. Shape: (B, width, num_tokens) -> (B, width)."""
        return features.mean(dim=-1)

    def forward(self, x: Tensor) -> Tensor:
        """Clip embedding, the mean of the last layer's tokens. Shape: (B, N) -> (B, width)."""
        return self.pool(self.forward_features(x))

    def _block_outputs(self, frames: Tensor, count: int) -> Iterator[Tensor]:
        """The first ``count`` blocks' outputs, (B, T, D) each."""
        num_tokens = frames.shape[1]
        if self.positions is not None:
            if num_tokens > self.max_tokens:
                raise MusicSSLError(
                    f"FrameTransformer: learned positions cover {self.max_tokens} tokens "
                    f"(input_samples={self.input_samples}), got {num_tokens}"
                )
            positions = self.positions[:num_tokens]
        else:
            steps = torch.arange(num_tokens, device=frames.device)
            positions = sincos_1d(steps, self.embedding_dim).to(frames.dtype)
        h = self.proj(frames) + positions  # (B, T, D)
        for block in self.blocks[:count]:
            h = block(h)
            yield h
