"""SampleCNN: a 1-D CNN on the raw waveform with sample-level filters."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

import torch
from torch import Tensor, nn

from musicssl.encoders._shared import check_waveforms, last, resolve_layer
from musicssl.encoders.base import Encoder
from musicssl.errors import MusicSSLError

__all__ = ["CLMR_CHANNELS", "SampleCNN"]

# Widths of CLMR's SampleCNN (3^9 model): strided stem, nine conv/pool blocks, final conv.
CLMR_CHANNELS = (128, 128, 128, 256, 256, 256, 256, 256, 256, 512, 512)


def _default_channels(num_blocks: int) -> tuple[int, ...]:
    # CLMR's pattern at any depth: two 128 blocks, 256 blocks in the middle, a 512 block.
    return (128, 128, 128) + (256,) * (num_blocks - 3) + (512, 512)


class SampleCNN(Encoder):
    """SampleCNN as used by CLMR.

    Lee et al. 2017, "Sample-level Deep Convolutional Neural Networks for Music
    Auto-tagging Using Raw Waveforms"; Spijkervet & Burgoyne 2021, "Contrastive Learning of
    Musical Representations" (CLMR). Layers: a stem conv (kernel 3, stride 3), ``num_blocks``
    blocks of conv (kernel 3) + batch norm + ReLU + max-pool 3 (run as max-pool, then ReLU:
    the same function, with a third of the ReLU's work), and a final conv + batch norm +
    ReLU. Each layer divides the time axis by 3, so an input of ``3 ** (num_blocks + 1)``
    samples ends in one frame: the clip embedding. The classifier (dropout, linear) of the
    supervised model is left out; SSL methods add their own head.

    Args:
        num_blocks: Conv/pool blocks between the stem and the final conv (CLMR: 9, for
            59049-sample crops). At least 1.
        channels: Output channels of the stem, of each block and of the final conv
            (``num_blocks + 2`` numbers); None follows CLMR's widths
            (128, 128, 128, 256, ..., 256, 512, 512).
        sample_rate: Sample rate of the input in Hz (CLMR: 22050). Recorded, not used.
    """

    def __init__(
        self,
        *,
        num_blocks: int = 9,
        channels: Sequence[int] | None = None,
        sample_rate: int = 22050,
    ) -> None:
        super().__init__()
        if num_blocks < 1:
            raise MusicSSLError(f"SampleCNN: num_blocks must be >= 1, got {num_blocks}")
        if channels is None:
            if num_blocks < 3:
                raise MusicSSLError(
                    f"SampleCNN: give channels explicitly for num_blocks={num_blocks} < 3"
                )
            channels = _default_channels(num_blocks)
        channels = tuple(int(c) for c in channels)
        if len(channels) != num_blocks + 2 or min(channels) < 1:
            raise MusicSSLError(
                f"SampleCNN: channels needs num_blocks + 2 = {num_blocks + 2} positive widths "
                f"(stem, blocks, final conv), got {channels}"
            )
        self.num_blocks = num_blocks
        self.channels = channels
        self.sample_rate = int(sample_rate)
        self.input_samples = 3 ** (num_blocks + 1)
        self.embedding_dim = channels[-1]
        self.num_layers = num_blocks + 2

        layers = [
            nn.Sequential(
                nn.Conv1d(1, channels[0], kernel_size=3, stride=3, bias=False),
                nn.BatchNorm1d(channels[0]),
                nn.ReLU(),
            )
        ]
        for in_channels, out_channels in zip(channels[:-2], channels[1:-1], strict=True):
            layers.append(
                nn.Sequential(
                    # No bias: the batch norm right after it has one.
                    nn.Conv1d(in_channels, out_channels, kernel_size=3, padding=1, bias=False),
                    nn.BatchNorm1d(out_channels),
                    nn.MaxPool1d(3),  # ReLU and max-pooling commute: pool first
                    nn.ReLU(),
                )
            )
        layers.append(
            nn.Sequential(
                nn.Conv1d(channels[-2], channels[-1], kernel_size=3, padding=1, bias=False),
                nn.BatchNorm1d(channels[-1]),
                nn.ReLU(),
            )
        )
        self.layers = nn.ModuleList(layers)

    def config(self) -> dict[str, Any]:
        """Constructor arguments, as plain JSON/YAML values: ``SampleCNN(**config())``."""
        return {
            "num_blocks": self.num_blocks,
            "channels": list(self.channels),
            "sample_rate": self.sample_rate,
        }

    def frame_hop(self, layer: int | None = None) -> int:
        """Input samples between consecutive frames of ``forward_features(x, layer=layer)``."""
        index = resolve_layer(layer, self.num_layers, "SampleCNN")
        return 3 ** min(index + 1, self.num_blocks + 1)

    def forward_layers(self, x: Tensor) -> list[Tensor]:
        """Frame features after every layer, from one pass.

        Args:
            x: Waveforms. Shape: (batch_size, input_samples).

        Returns:
            ``num_layers`` tensors; entry ``k`` equals ``forward_features(x, layer=k)``.
            Shape: (batch_size, channels[k], input_samples // frame_hop(k)).
        """
        return list(self._layer_outputs(x, self.num_layers))

    def forward_features(self, x: Tensor, *, layer: int | None = None) -> Tensor:
        """Frame features after layer ``layer`` (0: stem, ..., num_layers - 1: final conv).

        Args:
            x: Waveforms. Shape: (batch_size, input_samples).
            layer: Which layer; None is the last; negative counts from the end.

        Returns:
            Shape: (batch_size, channels[layer], input_samples // frame_hop(layer)).
        """
        index = resolve_layer(layer, self.num_layers, "SampleCNN")
        return last(self._layer_outputs(x, index + 1))

    def pool(self, features: Tensor) -> Tensor:
        """Clip embedding from the last layer's features: ``forward(x) == pool(features)``.

        Args:
            features: Shape: (batch_size, embedding_dim, num_frames).

        Returns:
            Shape: (batch_size, embedding_dim).
        """
        # The final layer has one frame; the mean only drops the time axis.
        return torch.mean(features, dim=-1)

    def forward(self, x: Tensor) -> Tensor:
        """Clip embedding.

        Args:
            x: Waveforms. Shape: (batch_size, input_samples).

        Returns:
            Shape: (batch_size, embedding_dim).
        """
        return self.pool(self.forward_features(x))

    def _layer_outputs(self, x: Tensor, count: int) -> Iterator[Tensor]:
        """The outputs of the first ``count`` layers, in order, each computed once."""
        check_waveforms(x, "SampleCNN")
        if x.shape[-1] != self.input_samples:
            raise MusicSSLError(
                f"SampleCNN(num_blocks={self.num_blocks}) expects crops of exactly "
                f"3^{self.num_blocks + 1} = {self.input_samples} samples, got input of shape "
                f"{tuple(x.shape)}"
            )
        h = x.unsqueeze(1)  # (B, 1, N)
        for block in self.layers[:count]:
            h = block(h)
            yield h
