"""A small pitch-equivariant CNN over single CQT frames, after PESTO."""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from musicssl.encoders._bins import bin_conv_stack, receptive_radius, relative_db
from musicssl.encoders._shared import check_waveforms, resolve_layer
from musicssl.encoders.base import Encoder
from musicssl.errors import MusicSSLError
from musicssl.features import C1_HZ, CQT

__all__ = ["PestoCNN"]


class PestoCNN(Encoder):
    """Frame-wise pitch distributions from a CQT, equivariant to shifts along its bins.

    After Riou, Lattner, Hadjeres & Peeters 2023, "PESTO: Pitch Estimation with
    Self-supervised Transposition-equivariant Objective": each CQT frame (a vector over
    log-frequency bins) is taken relative to its peak (``relative_db``), passed through 1-D
    convolutions over the bins and a final Toeplitz layer (a wide convolution with one
    output per bin), then a softmax.
    Everything commutes with a shift of the bins, so a pitch moved by ``k`` bins moves the
    output by ``k`` bins; where the output sits for a given pitch is fixed afterwards by a
    calibration on synthetic tones (``musicssl.pitch``).

    The model reads a window of ``num_bins - 2 * max_shift`` bins (``window_bins``) starting
    at bin ``max_shift``; training reads windows at other offsets to make pitch-shifted
    views (``spectrum``, ``window``, ``frame_logits``). The convolutions are unpadded, so
    the ``output_bins`` outputs start ``radius`` bins into the window: output bin ``j`` is
    CQT bin ``output_offset + j``, ``output_offset = max_shift + radius``.

    Layers (frame features, one frame per CQT hop): 0, the convolution features, maximum
    over bins (translation-invariant: timbre more than pitch), shape (B, channels, T);
    1, the pitch distribution, shape (B, output_bins, T). The clip embedding is the mean
    distribution.

    Args:
        sample_rate: Input rate in Hz.
        hop_length: CQT hop in samples (a multiple of ``2 ** (octaves - 1)``).
        fmin: Centre of the lowest CQT bin in Hz.
        num_octaves: CQT range.
        bins_per_semitone: CQT resolution.
        max_shift: Bins kept either side of the model's window, for shifted views.
        channels: Width of the convolutions.
        depth: Number of convolutions before the Toeplitz layer.
        kernel_size: Taps of the first convolution.
        output_kernel: Taps of the Toeplitz layer (odd).
        input_samples: Training crop in samples; any input of ``hop_length`` samples or
            more is accepted.
    """

    def __init__(
        self,
        *,
        sample_rate: int = 16000,
        hop_length: int = 128,
        fmin: float = C1_HZ,
        num_octaves: int = 7,
        bins_per_semitone: int = 3,
        max_shift: int = 18,
        channels: int = 16,
        depth: int = 3,
        kernel_size: int = 15,
        output_kernel: int = 37,
        input_samples: int = 16384,
    ) -> None:
        super().__init__()
        self.num_bins = num_octaves * 12 * bins_per_semitone
        self.window_bins = self.num_bins - 2 * max_shift
        self.radius = receptive_radius(
            depth=depth, kernel_size=kernel_size, output_kernel=output_kernel
        )
        self.output_bins = self.window_bins - 2 * self.radius
        self.output_offset = max_shift + self.radius
        if max_shift < 0 or self.output_bins < 12 * bins_per_semitone:
            raise MusicSSLError(
                f"PestoCNN: max_shift={max_shift} and the convolutions' reach ({self.radius} "
                f"bins each side) leave {self.output_bins} of {self.num_bins} bins; the output "
                "needs at least an octave"
            )
        self._config: dict[str, Any] = {
            "sample_rate": int(sample_rate),
            "hop_length": int(hop_length),
            "fmin": float(fmin),
            "num_octaves": int(num_octaves),
            "bins_per_semitone": int(bins_per_semitone),
            "max_shift": int(max_shift),
            "channels": int(channels),
            "depth": int(depth),
            "kernel_size": int(kernel_size),
            "output_kernel": int(output_kernel),
            "input_samples": int(input_samples),
        }
        self.sample_rate = int(sample_rate)
        self.hop_length = int(hop_length)
        self.input_samples = int(input_samples)
        self.bins_per_semitone = int(bins_per_semitone)
        self.bins_per_octave = 12 * self.bins_per_semitone
        self.max_shift = int(max_shift)
        self.channels = int(channels)
        self.embedding_dim = self.output_bins
        self.num_layers = 2
        if self.input_samples < self.hop_length:
            raise MusicSSLError(
                f"PestoCNN: input_samples={input_samples} is below hop_length={hop_length}"
            )
        self.cqt = CQT(
            sr=sample_rate,
            hop_length=hop_length,
            fmin=fmin,
            n_bins=self.num_bins,
            bins_per_octave=self.bins_per_octave,
        )
        self.features, self.to_logits = bin_conv_stack(
            channels=channels, depth=depth, kernel_size=kernel_size, output_kernel=output_kernel
        )

    def config(self) -> dict[str, Any]:
        """Constructor arguments, as plain JSON/YAML values: ``PestoCNN(**config())``."""
        return dict(self._config)

    def bin_frequencies(self) -> Tensor:
        """Centre in Hz of each output bin (unshifted window). Shape: (output_bins,), float64."""
        return self.cqt.frequencies()[self.output_offset : self.output_offset + self.output_bins]

    def spectrum(self, x: Tensor) -> Tensor:
        """CQT in dB of a batch of waveforms. Shape: (B, num_samples) -> (B, num_bins, T)."""
        check_waveforms(x, "PestoCNN")
        if x.shape[-1] < self.hop_length:
            raise MusicSSLError(
                f"PestoCNN needs at least {self.hop_length} samples, got input of shape "
                f"{tuple(x.shape)}"
            )
        return self.cqt(x)

    def window(self, spectrum: Tensor, offset: int | Tensor) -> Tensor:
        """The model's window of each frame, ``window_bins`` bins from ``offset``.

        Args:
            spectrum: Shape: (N, num_bins) frames, or (B, num_bins, T).
            offset: Lowest bin, an int or one per row of a (N, num_bins) input (shape (N,)).
                ``max_shift`` is the unshifted window; ``max_shift - k`` moves pitch up by
                ``k`` bins.
        """
        if isinstance(offset, int):
            return spectrum[:, offset : offset + self.window_bins]
        index = offset[:, None] + torch.arange(self.window_bins, device=spectrum.device)
        return spectrum.gather(1, index)

    def frame_logits(self, frames: Tensor) -> Tensor:
        """Pitch logits of windows of single frames. Shape: (N, window_bins) -> (N, output_bins)."""
        return self._layers(frames)[1]

    def forward_layers(self, x: Tensor) -> list[Tensor]:
        """Both layers from one pass. Shapes: (B, channels, T) and (B, output_bins, T)."""
        spectrum = self.spectrum(x)  # (B, num_bins, T)
        batch_size, _, num_frames = spectrum.shape
        frames = self.window(spectrum, self.max_shift).transpose(1, 2)  # (B, T, W)
        features, logits = self._layers(frames.reshape(-1, self.window_bins))
        pooled = features.amax(dim=-1).reshape(batch_size, num_frames, -1).transpose(1, 2)
        probs = logits.softmax(dim=-1).reshape(batch_size, num_frames, -1).transpose(1, 2)
        return [pooled, probs]

    def frame_hop(self, layer: int | None = None) -> int:
        """Input samples between frames (the CQT hop) for either layer."""
        resolve_layer(layer, self.num_layers, "PestoCNN")
        return self.hop_length

    def _layers(self, frames: Tensor) -> tuple[Tensor, Tensor]:
        """(features (N, channels, W'), logits (N, output_bins)) of windows (N, W) of frames."""
        h = relative_db(frames, dims=(-1,)).unsqueeze(1)  # (N, 1, W)
        features = self.features(h)
        return features, self.to_logits(features).squeeze(1)
