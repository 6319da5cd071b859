"""Short-chunk CNN: a VGG-like 2-D CNN over a log-mel spectrogram of a few seconds."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import torch
from torch import Tensor, nn

from musicssl.encoders._shared import check_waveforms, last, resolve_layer
from musicssl.encoders._transformer import standardise_clip
from musicssl.encoders.base import Encoder
from musicssl.errors import MusicSSLError
from musicssl.features import LogMel

__all__ = ["ShortChunkCNN"]

# Width of each block as a multiple of ``channels`` (Won et al.: 128, 128, 256 x 4, 512).
_WIDTH_MULTIPLIERS = (1, 1, 2, 2, 2, 2, 4)


class ShortChunkCNN(Encoder):
    """The short-chunk CNN of Won et al. 2020.

    Won, Ferraro, Bogdanov & Serra 2020, "Evaluation of CNN-based Automatic Music Tagging
    Models". Log-mel (dB) -> batch norm -> 7 blocks of 3x3 conv + batch norm + ReLU + 2x2
    max-pool -> global max-pool over time. With 128 mel bands the frequency axis is pooled
    down to one bin; frame features of earlier blocks take the maximum over frequency. The
    classifier (dense, dropout) of the supervised model is left out.

    Two departures, for speed (forward and backward of the 16-channel model on a CPU: 0.76
    times the time in all):
    - A block runs as conv, batch norm, max-pool, ReLU: ReLU and max-pooling commute, so this
      is the paper's function with a quarter of the ReLU's work.
    - The input batch norm learns no scale or shift (see ``input_norm``).

    ``input_norm="clip"`` standardises each clip's log-mel by its own mean and deviation
    instead of the batch norm's running statistics (``standardise_clip``): it removes the
    constant a gain change adds to the decibels (bins at the log floor aside), and an encoder
    with random weights reads the same input as a trained one (with ``"batch"``, random
    weights read raw decibels, as no statistics were gathered).

    Args:
        channels: Width of the first blocks; the last block has ``4 * channels``, the
            embedding size (Won et al.: 128, so 512).
        sample_rate: Sample rate of the input in Hz.
        n_fft: FFT size of the front end.
        hop_length: Hop of the front end in samples.
        n_mels: Mel bands; at least 2^7 = 128, as seven blocks halve the frequency axis.
        f_min: Lowest mel frequency in Hz.
        f_max: Highest mel frequency in Hz.
        input_samples: Default training crop in samples (59049 = 3.69 s at 16 kHz); any
            input of at least ``min_samples`` is accepted.
        input_norm: "batch" (the paper's input batch norm; the default, which every
            checkpoint saved before the option reads) or "clip" (see above).
    """

    def __init__(
        self,
        *,
        channels: int = 128,
        sample_rate: int = 16000,
        n_fft: int = 512,
        hop_length: int = 256,
        n_mels: int = 128,
        f_min: float = 0.0,
        f_max: float = 8000.0,
        input_samples: int = 59049,
        input_norm: str = "batch",
    ) -> None:
        super().__init__()
        num_blocks = len(_WIDTH_MULTIPLIERS)
        if channels < 1:
            raise MusicSSLError(f"ShortChunkCNN: channels must be >= 1, got {channels}")
        if n_mels < 2**num_blocks:
            raise MusicSSLError(
                f"ShortChunkCNN: n_mels must be >= {2**num_blocks} for {num_blocks} 2x2 "
                f"pooling blocks, got {n_mels}"
            )
        if input_norm not in ("batch", "clip"):
            raise MusicSSLError(
                f"ShortChunkCNN: input_norm must be 'batch' or 'clip', got {input_norm!r}"
            )
        # Seven halvings of the frame axis need 2^7 frames: 1 + num_samples // hop >= 128.
        self.min_samples = hop_length * (2**num_blocks - 1)
        if input_samples < self.min_samples:
            raise MusicSSLError(
                f"ShortChunkCNN: input_samples={input_samples} is below the minimum "
                f"{self.min_samples} (= hop_length * 127)"
            )
        self._config: dict[str, Any] = {
            "channels": int(channels),
            "sample_rate": int(sample_rate),
            "n_fft": int(n_fft),
            "hop_length": int(hop_length),
            "n_mels": int(n_mels),
            "f_min": float(f_min),
            "f_max": float(f_max),
            "input_samples": int(input_samples),
        }
        if input_norm != "batch":  # configs saved before the option stay as they were
            self._config["input_norm"] = input_norm
        self.sample_rate = int(sample_rate)
        self.hop_length = int(hop_length)
        self.input_samples = int(input_samples)
        self.num_layers = num_blocks
        widths = [channels * m for m in _WIDTH_MULTIPLIERS]
        self.embedding_dim = widths[-1]

        self.frontend = LogMel(
            sr=sample_rate,
            n_fft=n_fft,
            hop_length=hop_length,
            n_mels=n_mels,
            f_min=f_min,
            f_max=f_max,
        )
        # Standardises the dB values, whose offset depends on the recording level. No learned
        # scale and shift: the first block's batch norm would undo them (but at the borders),
        # and without them nothing before the first conv needs a gradient (that conv's
        # backward pass to its input was 16% of a CPU training step).
        self.input_norm: nn.Module = (
            nn.BatchNorm2d(1, affine=False) if input_norm == "batch" else _StandardiseClip()
        )
        self.layers = nn.ModuleList(
            nn.Sequential(
                nn.Conv2d(in_channels, out_channels, kernel_size=3, padding=1, bias=False),
                nn.BatchNorm2d(out_channels),
                nn.MaxPool2d(2),  # ReLU and max-pooling commute: pool first
                nn.ReLU(),
            )
            for in_channels, out_channels in zip([1, *widths[:-1]], widths, strict=True)
        )
        # Channels-last convolutions and pooling: a training step ran 1.35x as fast on a CPU
        # (oneDNN's native layout; max-pooling in the default layout took 13% of the step).
        self.layers.to(memory_format=torch.channels_last)  # type: ignore[call-overload]

    def config(self) -> dict[str, Any]:
        """Constructor arguments, as plain JSON/YAML values: ``ShortChunkCNN(**config())``."""
        return dict(self._config)

    def frame_hop(self, layer: int | None = None) -> int:
        """Input samples between consecutive frames of ``forward_features(x, layer=layer)``."""
        index = resolve_layer(layer, self.num_layers, "ShortChunkCNN")
        return self.hop_length * 2 ** (index + 1)

    def forward_layers(self, x: Tensor) -> list[Tensor]:
        """Frame features after every block, from one pass.

        Args:
            x: Waveforms. Shape: (batch_size, num_samples), num_samples >= min_samples.

        Returns:
            ``num_layers`` tensors; entry ``k`` equals ``forward_features(x, layer=k)``.
            Shape: (batch_size, width[k], (1 + num_samples // hop_length) // 2^(k+1)).
        """
        return [_max_over_frequency(h) for h in self._block_outputs(x, self.num_layers)]

    def forward_maps(self, x: Tensor) -> list[Tensor]:
        """The 2-D feature maps after every block, frequency axis kept, from one pass.

        Args:
            x: Waveforms. Shape: (batch_size, num_samples), num_samples >= min_samples.

        Returns:
            ``num_layers`` tensors; the maximum of entry ``k`` over its frequency axis is
            ``forward_layers(x)[k]``. Shape: (batch_size, width[k], n_mels // 2^(k+1),
            (1 + num_samples // hop_length) // 2^(k+1)).
        """
        return list(self._block_outputs(x, self.num_layers))

    def forward_features(self, x: Tensor, *, layer: int | None = None) -> Tensor:
        """Frame features after block ``layer``, maximum over the frequency axis.

        Args:
            x: Waveforms. Shape: (batch_size, num_samples), num_samples >= min_samples.
            layer: Which block (0 to 6); None is the last; negative counts from the end.

        Returns:
            Shape: (batch_size, width[layer], (1 + num_samples // hop_length) // 2^(layer+1)).
        """
        index = resolve_layer(layer, self.num_layers, "ShortChunkCNN")
        return _max_over_frequency(last(self._block_outputs(x, index + 1)))

    def pool(self, features: Tensor) -> Tensor:
        """Clip embedding from the last block's features: global max-pool over time.

        ``forward(x) == pool(forward_features(x))``.

        Args:
            features: Shape: (batch_size, embedding_dim, num_frames).

        Returns:
            Shape: (batch_size, embedding_dim).
        """
        return features.amax(dim=-1)

    def forward(self, x: Tensor) -> Tensor:
        """Clip embedding: global max-pool over the frames of the last block.

        Args:
            x: Waveforms. Shape: (batch_size, num_samples), num_samples >= min_samples.

        Returns:
            Shape: (batch_size, embedding_dim).
        """
        return self.pool(self.forward_features(x))

    def _block_outputs(self, x: Tensor, count: int) -> Iterator[Tensor]:
        """The outputs of the first ``count`` blocks, in order. Shape: (B, C, F, T) each."""
        check_waveforms(x, "ShortChunkCNN")
        if x.shape[-1] < self.min_samples:
            raise MusicSSLError(
                f"ShortChunkCNN(hop_length={self.hop_length}) needs at least "
                f"{self.min_samples} samples, got input of shape {tuple(x.shape)}"
            )
        h = self.input_norm(self.frontend(x).unsqueeze(1))  # (B, 1, n_mels, T)
        h = h.contiguous(memory_format=torch.channels_last)
        for block in self.layers[:count]:
            h = block(h)  # (B, C, F, T), F and T halved
            yield h


class _StandardiseClip(nn.Module):
    """``standardise_clip`` on (B, 1, n_mels, T) log-mels, as a module in ``input_norm``'s place."""

    def forward(self, h: Tensor) -> Tensor:
        return standardise_clip(h.squeeze(1)).unsqueeze(1)


def _max_over_frequency(h: Tensor) -> Tensor:
    """Shape: (batch_size, channels, n_bins, num_frames) -> (batch_size, channels, num_frames).

    Reduced in the channels-last memory order, (B, F, T, C): ``h.amax(dim=2)`` on a
    channels-last tensor took 12x as long (27 ms against 2 ms on the first block of 4 windows
    of the 128-channel model, a sixth of the forward pass). Same values; a strided view.
    """
    return h.permute(0, 2, 3, 1).amax(dim=1).transpose(1, 2)
