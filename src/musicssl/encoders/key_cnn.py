"""A small transposition-equivariant CNN over a CQT with key-like outputs, after STONE."""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

from musicssl.encoders._bins import relative_db
from musicssl.encoders._shared import check_waveforms, resolve_layer
from musicssl.encoders.base import Encoder
from musicssl.errors import MusicSSLError
from musicssl.features import C1_HZ, CQT

__all__ = ["KeyCNN"]


class KeyCNN(Encoder):
    """Per-frame logits over 2 x 12 classes that rotate with transposition.

    After Kong, Meseguer-Brocal, Lostanlen, Lagrange & Hennequin 2024, "STONE:
    Self-supervised Tonality Estimator": a CQT in dB, relative to its peak over the clip
    (``relative_db``), passes 2-D convolutions without biases (frequency x time, zero
    padding, pooling in time only), then a wide convolution along frequency to two logits
    per bin, an average over the bins of each semitone, and a sum over octaves: two
    channels of 12 pitch-class logits. Every step commutes with a shift along the CQT's
    bins (exactly so where the input is silent near the window's ends: without biases,
    silence gives zero everywhere), so transposing the input by ``k`` semitones
    (``k * bins_per_semitone`` bins, inside the window) rolls both channels by ``k``. Which
    class and channel stand for which key is left open: ``musicssl.readouts`` names keys
    from the pitch-class layer below, with a tone template and key profiles.

    The model reads a window of ``num_bins - 2 * max_shift_semitones * bins_per_semitone``
    bins (whole octaves); training reads windows at other offsets for transposed views.
    Frequency is never padded: the logits are those whose reach stays inside the window,
    cut to whole octaves before folding.

    Layers: the convolution blocks, maximum over frequency, (B, channels, T_k), which
    transposition leaves unchanged; the last block folded to pitch classes per channel (its
    bins averaged per semitone and summed over whole octaves, as the logits are; channel-major,
    class ``c`` is pitch class ``c``), (B, 12 * channels, T), which transposition rotates; and
    the last: the 24 key logits per frame (channel-major: 12 classes of channel 0, then 12 of
    channel 1; class ``c`` is pitch class ``c`` of the CQT, C = 0), (B, 24, T). The clip
    embedding is the logits' mean over frames. The pitch-class layer keeps far more of the
    key than the 24 logits: on the built-in key task a linear probe on it scored 0.775 after
    1,000 steps inside ``simclr-key-tempo-cpu`` (random weights 0.731), on the logits 0.556
    (random weights 0.676).

    Args:
        sample_rate: Input rate in Hz.
        hop_length: CQT hop in samples.
        fmin: Lowest CQT bin in Hz; a C, so that folded classes are pitch classes.
        num_octaves: CQT range.
        bins_per_semitone: CQT resolution.
        max_shift_semitones: Semitones kept either side of the window for transposed views.
        channels: Width of the convolutions.
        depth: Convolution blocks (each halves the frames).
        output_kernel: Taps along bins of the last convolution (odd).
        input_samples: Training crop in samples; any input of ``min_samples`` or more is
            accepted.
    """

    def __init__(
        self,
        *,
        sample_rate: int = 16000,
        hop_length: int = 512,
        fmin: float = 2 * C1_HZ,
        num_octaves: int = 5,
        bins_per_semitone: int = 2,
        max_shift_semitones: int = 6,
        channels: int = 16,
        depth: int = 3,
        output_kernel: int = 25,
        input_samples: int = 80000,
    ) -> None:
        super().__init__()
        if output_kernel < 1 or output_kernel % 2 == 0 or channels < 1 or depth < 1:
            raise MusicSSLError(
                f"KeyCNN: need an odd output_kernel, channels >= 1, depth >= 1; got "
                f"{output_kernel}, {channels}, {depth}"
            )
        if not 0 <= max_shift_semitones < 6 * num_octaves - 6:
            raise MusicSSLError(
                f"KeyCNN: max_shift_semitones must be in [0, {6 * num_octaves - 6}) for "
                f"{num_octaves} octaves, got {max_shift_semitones}"
            )
        self._config: dict[str, Any] = {
            "sample_rate": int(sample_rate),
            "hop_length": int(hop_length),
            "fmin": float(fmin),
            "num_octaves": int(num_octaves),
            "bins_per_semitone": int(bins_per_semitone),
            "max_shift_semitones": int(max_shift_semitones),
            "channels": int(channels),
            "depth": int(depth),
            "output_kernel": int(output_kernel),
            "input_samples": int(input_samples),
        }
        self.sample_rate = int(sample_rate)
        self.hop_length = int(hop_length)
        self.input_samples = int(input_samples)
        self.bins_per_semitone = int(bins_per_semitone)
        self.num_bins = num_octaves * 12 * bins_per_semitone
        self.max_shift = max_shift_semitones * bins_per_semitone  # in bins
        self.depth = int(depth)
        self.window_bins, self.kept_bins, self.crop_start = _geometry(
            num_octaves, max_shift_semitones, bins_per_semitone, depth, output_kernel
        )
        # Pitch class of the first kept semitone (the CQT starts on a C).
        radius = 2 * depth + output_kernel // 2
        self.first_class = (self.max_shift + radius + self.crop_start) // bins_per_semitone % 12
        self.num_layers = depth + 2
        self.embedding_dim = 24
        self.min_samples = hop_length * (2**depth - 1)
        if self.input_samples < self.min_samples:
            raise MusicSSLError(
                f"KeyCNN: input_samples={input_samples} is below the minimum "
                f"{self.min_samples} (= hop_length * (2^depth - 1))"
            )
        self.cqt = CQT(
            sr=sample_rate,
            hop_length=hop_length,
            fmin=fmin,
            n_bins=self.num_bins,
            bins_per_octave=12 * bins_per_semitone,
        )
        widths = [1] + [channels] * depth
        self.blocks = nn.ModuleList(
            nn.Sequential(
                nn.Conv2d(c_in, c_out, kernel_size=(5, 3), padding=(0, 1), bias=False),
                nn.LeakyReLU(0.1),
                nn.MaxPool2d(kernel_size=(1, 2)),  # time only: frequency stays equivariant
            )
            for c_in, c_out in zip(widths[:-1], widths[1:], strict=True)
        )
        self.logits = nn.Conv2d(channels, 2, kernel_size=(output_kernel, 1), bias=False)

    def config(self) -> dict[str, Any]:
        """Constructor arguments, as plain JSON/YAML values: ``KeyCNN(**config())``."""
        return dict(self._config)

    def spectrum(self, x: Tensor) -> Tensor:
        """CQT in dB. Shape: (B, num_samples) -> (B, num_bins, T)."""
        check_waveforms(x, "KeyCNN")
        if x.shape[-1] < self.min_samples:
            raise MusicSSLError(
                f"KeyCNN(hop_length={self.hop_length}) needs at least {self.min_samples} "
                f"samples, got input of shape {tuple(x.shape)}"
            )
        return self.cqt(x)

    def window(self, spectrum: Tensor, offset: Tensor | int) -> Tensor:
        """Window of ``window_bins`` bins from ``offset`` (int, or one per clip, shape (B,)).

        ``max_shift`` is the unshifted window; ``max_shift - k * bins_per_semitone``
        transposes up by ``k`` semitones. Shape: (B, num_bins, T) -> (B, window_bins, T).
        """
        if isinstance(offset, int):
            return spectrum[:, offset : offset + self.window_bins]
        bins = offset[:, None] + torch.arange(self.window_bins, device=spectrum.device)
        index = bins[:, :, None].expand(-1, -1, spectrum.shape[-1])
        return spectrum.gather(1, index)

    def classes_and_logits(self, window: Tensor) -> tuple[Tensor, Tensor]:
        """The pitch-class layer and the key logits of CQT windows, from one pass.

        Shape: (B, window_bins, T) -> (B, 12 * channels, T'), (B, 24, T').
        """
        *_, classes, logits = self._outputs(window)
        return classes, logits

    def forward_layers(self, x: Tensor) -> list[Tensor]:
        """Every layer from one pass (see the class docstring for the shapes)."""
        outputs = self._outputs(self.window(self.spectrum(x), self.max_shift))
        return [h.amax(dim=2) for h in outputs[: self.depth]] + outputs[self.depth :]

    def frame_hop(self, layer: int | None = None) -> int:
        """Input samples between frames of ``layer``: each block halves the frames."""
        index = resolve_layer(layer, self.num_layers, "KeyCNN")
        return self.hop_length * 2 ** min(index + 1, self.depth)

    def _outputs(self, window: Tensor) -> list[Tensor]:
        """Block outputs (B, C, F, T_k), the last folded to pitch classes (B, 12 C, T_depth),
        then the folded logits (B, 24, T_depth)."""
        h = relative_db(window, dims=(1, 2)).unsqueeze(1)  # (B, 1, F, T)
        outputs = []
        for block in self.blocks:
            h = block(h)
            outputs.append(h)
        logits = self.logits(h)  # (B, 2, F - 2 * radius, T)
        logits = logits[:, :, self.crop_start : self.crop_start + self.kept_bins]
        batch_size, _, num_bins, num_frames = logits.shape
        semitones = num_bins // self.bins_per_semitone
        per_semitone = logits.reshape(batch_size, 2, semitones, self.bins_per_semitone, -1)
        folded = per_semitone.mean(3).reshape(batch_size, 2, semitones // 12, 12, -1).sum(2)
        folded = folded.roll(self.first_class, dims=2)  # class c is pitch class c
        classes = self._pitch_classes(h)
        return [*outputs, classes, folded.reshape(batch_size, 24, num_frames)]

    def _pitch_classes(self, h: Tensor) -> Tensor:
        """The last block's bins folded per channel. Shape: (B, C, F, T) -> (B, 12 C, T).

        Bin ``j`` of the last block sits over window bin ``j + 2 * depth`` (each unpadded
        5-tap convolution loses two bins a side), i.e. CQT bin ``j + 2 * depth + max_shift``;
        the fold starts on the first whole semitone and keeps whole octaves.
        """
        offset = 2 * self.depth + self.max_shift
        step = self.bins_per_semitone
        start = -offset % step
        semitones = (h.shape[2] - start) // step // 12 * 12
        batch_size, channels, _, num_frames = h.shape
        kept = h[:, :, start : start + semitones * step]
        per_semitone = kept.reshape(batch_size, channels, semitones, step, num_frames).mean(3)
        octaves = per_semitone.reshape(batch_size, channels, semitones // 12, 12, num_frames)
        classes = octaves.sum(2).roll((offset + start) // step % 12, dims=2)
        return classes.reshape(batch_size, channels * 12, num_frames)


def _geometry(
    num_octaves: int, max_shift_semitones: int, bins_per_semitone: int, depth: int, kernel: int
) -> tuple[int, int, int]:
    """(window bins, kept bins, crop start) of the unshifted window.

    The window is whole octaves, so that folding a shifted window rolls the classes exactly.
    The convolutions are unpadded along frequency: the logits start ``radius`` bins into the
    window; whole octaves of them are kept, centred, starting on a semitone.
    """
    window_semitones = 12 * ((12 * num_octaves - 2 * max_shift_semitones) // 12)
    window_bins = window_semitones * bins_per_semitone
    radius = 2 * depth + kernel // 2
    valid = window_bins - 2 * radius
    kept_semitones = 12 * (valid // bins_per_semitone // 12)
    if kept_semitones < 12:
        raise MusicSSLError(
            f"KeyCNN: the convolutions reach {radius} bins each side of a {window_bins}-bin "
            "window: less than an octave of output; use more octaves or a smaller output_kernel"
        )
    kept_bins = kept_semitones * bins_per_semitone
    start = (valid - kept_bins) // 2
    return window_bins, kept_bins, start + (-(radius + start)) % bins_per_semitone
