"""A small tempo-equivariant network over the autocorrelation of an onset envelope."""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import Tensor

from musicssl.encoders._bins import bin_conv_stack, receptive_radius
from musicssl.encoders._shared import check_waveforms, resolve_layer
from musicssl.encoders.base import Encoder
from musicssl.errors import MusicSSLError
from musicssl.features import LogMel

__all__ = ["TempoCNN", "stretch_envelope"]


class TempoCNN(Encoder):
    """A distribution over log-tempo bins that moves with time stretching.

    In the spirit of Quinton 2022, "Equivariant Self-Supervision for Musical Tempo
    Estimation": the input's onset envelope (spectral flux of a log-mel spectrogram) is
    autocorrelated, and the autocorrelation is read at lags of ``tempo_bins`` tempi spaced
    ``bins_per_octave`` to the octave from ``min_bpm`` (lowest tempo first). Playing the
    music ``r`` times as fast divides every lag by ``r``, which moves that curve up by
    ``bins_per_octave * log2(r)`` bins; 1-D convolutions over the bins and a Toeplitz layer
    keep that, so the softmax over tempo bins moves with the tempo. Which bin is which BPM is
    fixed afterwards by a calibration on synthetic click tracks (``musicssl.readouts``).

    The convolutions are unpadded: the ``output_bins`` outputs are the curve's bins from
    ``radius`` on, at tempi ``output_bpm``. The whole input is one frame. Layers: 0, the
    convolution features, maximum over bins, (B, channels, 1); 1, the tempo distribution,
    (B, output_bins, 1).

    Args:
        sample_rate: Input rate in Hz.
        hop_length: Envelope hop in samples.
        n_mels: Mel bands of the flux.
        min_bpm: Tempo of the lowest bin.
        tempo_bins: Number of tempo bins.
        bins_per_octave: Bins per doubling of tempo.
        channels: Width of the convolutions.
        depth: Convolutions before the Toeplitz layer.
        output_kernel: Taps of the Toeplitz layer (odd).
        input_samples: Training crop in samples; any input of ``min_samples`` or more
            (two periods of the slowest tempo) is accepted.
    """

    bpm: Tensor  # (tempo_bins,) float64
    output_bpm: Tensor  # (output_bins,) float64
    lags: Tensor  # (tempo_bins,) in envelope frames

    def __init__(
        self,
        *,
        sample_rate: int = 16000,
        hop_length: int = 160,
        n_mels: int = 40,
        min_bpm: float = 20.0,
        tempo_bins: int = 120,
        bins_per_octave: int = 24,
        channels: int = 16,
        depth: int = 3,
        output_kernel: int = 25,
        input_samples: int = 96000,
    ) -> None:
        super().__init__()
        if min_bpm <= 0 or tempo_bins < 2 or bins_per_octave < 1:
            raise MusicSSLError(
                f"TempoCNN: need min_bpm > 0, tempo_bins >= 2, bins_per_octave >= 1; got "
                f"{min_bpm}, {tempo_bins}, {bins_per_octave}"
            )
        self._config: dict[str, Any] = {
            "sample_rate": int(sample_rate),
            "hop_length": int(hop_length),
            "n_mels": int(n_mels),
            "min_bpm": float(min_bpm),
            "tempo_bins": int(tempo_bins),
            "bins_per_octave": int(bins_per_octave),
            "channels": int(channels),
            "depth": int(depth),
            "output_kernel": int(output_kernel),
            "input_samples": int(input_samples),
        }
        self.sample_rate = int(sample_rate)
        self.hop_length = int(hop_length)
        self.input_samples = int(input_samples)
        self.bins_per_octave = int(bins_per_octave)
        self.tempo_bins = int(tempo_bins)
        self.radius = receptive_radius(depth=depth, kernel_size=9, output_kernel=output_kernel)
        self.output_bins = self.tempo_bins - 2 * self.radius
        if self.output_bins < 2:
            raise MusicSSLError(
                f"TempoCNN: the convolutions reach {self.radius} bins each side, which leaves "
                f"{self.output_bins} of tempo_bins={tempo_bins}; use more bins"
            )
        self.embedding_dim = self.output_bins
        self.num_layers = 2
        self.channels = int(channels)
        bpm = min_bpm * 2.0 ** (torch.arange(tempo_bins, dtype=torch.float64) / bins_per_octave)
        self.register_buffer("bpm", bpm, persistent=False)
        output_bpm = bpm[self.radius : self.radius + self.output_bins]
        self.register_buffer("output_bpm", output_bpm, persistent=False)
        frame_rate = sample_rate / hop_length
        self.register_buffer("lags", (60.0 * frame_rate / bpm).float(), persistent=False)
        # Two periods of the slowest tempo, so that its lag has something to compare.
        self.min_samples = int(math.ceil(2 * 60.0 / min_bpm * sample_rate))
        if self.input_samples < self.min_samples:
            raise MusicSSLError(
                f"TempoCNN: input_samples={input_samples} is below the minimum "
                f"{self.min_samples} (two beats at min_bpm={min_bpm})"
            )
        self.mel = LogMel(sr=sample_rate, n_fft=4 * hop_length, hop_length=hop_length,
                          n_mels=n_mels)  # fmt: skip
        self.features, self.to_logits = bin_conv_stack(
            channels=channels, depth=depth, kernel_size=9, output_kernel=output_kernel
        )

    def config(self) -> dict[str, Any]:
        """Constructor arguments, as plain JSON/YAML values: ``TempoCNN(**config())``."""
        return dict(self._config)

    def envelope(self, x: Tensor) -> Tensor:
        """Onset envelope: half-wave rectified rise of the log-mel, mean over bands.

        Shape: (B, num_samples) -> (B, num_frames - 1), one value per hop.
        """
        check_waveforms(x, "TempoCNN")
        if x.shape[-1] < self.min_samples:
            raise MusicSSLError(
                f"TempoCNN needs at least {self.min_samples} samples, got input of shape "
                f"{tuple(x.shape)}"
            )
        mel = self.mel(x)  # (B, n_mels, T)
        return (mel[..., 1:] - mel[..., :-1]).clamp_min(0).mean(dim=1)

    def tempo_curve(self, envelope: Tensor) -> Tensor:
        """Normalised autocorrelation of ``envelope`` at each tempo bin's lag.

        Shape: (B, num_frames) -> (B, tempo_bins), lowest tempo first.
        """
        centred = envelope - envelope.mean(dim=-1, keepdim=True)
        num_frames = centred.shape[-1]
        size = 1 << (2 * num_frames - 1).bit_length()
        spectrum = torch.fft.rfft(centred, n=size)
        acf = torch.fft.irfft(spectrum.real.square() + spectrum.imag.square(), n=size)
        acf = acf[..., :num_frames]
        # Unbiased: a long lag has fewer products to sum.
        acf = acf / torch.arange(num_frames, 0, -1, device=acf.device, dtype=acf.dtype)
        acf = acf / acf[..., :1].clamp_min(1e-8)
        lags = self.lags.clamp(max=num_frames - 2)
        low = lags.floor().long()
        frac = lags - low
        return acf[..., low] * (1 - frac) + acf[..., low + 1] * frac

    def curve_logits(self, curve: Tensor) -> Tensor:
        """Tempo logits of tempo curves. Shape: (B, tempo_bins) -> (B, output_bins)."""
        return self._layers(curve)[1]

    def forward_layers(self, x: Tensor) -> list[Tensor]:
        """Both layers from one pass: (B, channels, 1) and (B, output_bins, 1)."""
        features, logits = self._layers(self.tempo_curve(self.envelope(x)))
        return [features.amax(dim=-1, keepdim=True), logits.softmax(dim=-1).unsqueeze(-1)]

    def frame_hop(self, layer: int | None = None) -> int:
        """The whole input is one frame: its training crop length."""
        resolve_layer(layer, self.num_layers, "TempoCNN")
        return self.input_samples

    def _layers(self, curve: Tensor) -> tuple[Tensor, Tensor]:
        # The curve is already on a common scale (1 at lag 0): no standardisation needed,
        # and none that would depend on the bins the stretch moves in or out.
        features = self.features(curve.unsqueeze(1))  # (B, C, K)
        return features, self.to_logits(features).squeeze(1)


def stretch_envelope(envelope: Tensor, rate: Tensor, *, num_frames: int) -> Tensor:
    """Envelopes played ``rate`` times as fast, by linear interpolation, cut to ``num_frames``.

    Frame ``t`` of the result is the input at ``rate * t``; frames past the input's end
    hold its last value.

    Args:
        envelope: Shape: (B, T).
        rate: Speed-up of each row (> 0). Shape: (B,).
        num_frames: Length of the result.

    Returns:
        Shape: (B, num_frames).
    """
    position = rate[:, None].to(envelope.dtype) * torch.arange(
        num_frames, device=envelope.device, dtype=envelope.dtype
    )
    position = position.clamp(max=envelope.shape[-1] - 1)
    low = position.floor().long()
    high = (low + 1).clamp(max=envelope.shape[-1] - 1)
    frac = position - low
    return envelope.gather(1, low) * (1 - frac) + envelope.gather(1, high) * frac
