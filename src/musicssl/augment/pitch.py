"""Pitch shift with a per-example interval: tempo-preserving (WSOLA) or tape-style.

Two kinds, chosen by ``kind``:

- ``"preserve_tempo"`` (what sox ``pitch`` does, and with the same family of algorithm:
  time-domain overlap-add): the output is built from short grains, one every ``hop`` samples.
  Each grain is the input read r = 2^(semitones / 12) times as fast (so it sounds r times as
  high) from a point near the grain's own time (so the tempo is kept), and cross-fades into
  the next over ``overlap`` samples. Where each grain starts is searched, as in WSOLA
  (Verhelst & Roelands, 1993): among the starts within ``search`` samples of its time, the one
  whose opening best matches (normalised cross-correlation) how the previous grain would have
  gone on, so that cross-fades join waveforms in phase. The search runs coarse to fine: a
  4-times decimated copy first, then every sample around the best coarse start.
- ``"tape"``: read the waveform r times as fast, so pitch and tempo move together (a tape or
  turntable running fast or slow). The length is kept: shifted up, the example ends early and
  the tail is silent; shifted down, its end is cut.

Both read the input between samples from a copy band-limited to the Nyquist rate / r (so that
nothing folds back when read faster) and oversampled twice through the FFT, by linear
interpolation.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor

from musicssl.augment.base import (
    Augmentation,
    Params,
    coin,
    compute_dtype,
    fast_fft_length,
    padded_rfft,
    uniform,
)
from musicssl.errors import MusicSSLError

KINDS = ("preserve_tempo", "tape")
# The coarse search of WSOLA runs on the input averaged over blocks of this many samples.
DECIMATION = 4


def oversampled_for_reading(x: Tensor, ratio: Tensor) -> Tensor:
    """Each example at twice its rate, band-limited for being read ``ratio`` times as fast.

    Frequencies that would pass the Nyquist rate once read r times as fast (r > 1) are
    removed; the spectrum is then zero-padded to twice the length, which interpolates
    exactly between the samples. Zero padding before the transform keeps its circular wrap
    from leaking the start into the end.

    Args:
        x: waveforms. Shape: (batch_size, num_samples).
        ratio: reading speeds. Shape: (batch_size,).

    Returns:
        Shape: (batch_size, 2 * n) with n >= num_samples + 32; sample 2 i is x[i] (when
        nothing was removed), samples from 2 * num_samples - 1 on are zero.
    """
    num_samples = x.shape[-1]
    dtype = compute_dtype(x)
    n_fft = 2 * fast_fft_length((num_samples + 65) // 2)
    spectrum = padded_rfft(x, n_fft)  # (B, F)
    # The gain of 2 makes up for the inverse transform at twice the length; the Nyquist bin is
    # halved because it becomes a two-sided bin once oversampled.
    freqs = torch.fft.rfftfreq(n_fft, device=x.device, dtype=dtype)  # cycles per sample
    gain = (freqs[None, :] * ratio.to(dtype).clamp_min(1.0)[:, None] <= 0.5).to(dtype).mul_(2)
    gain[:, -1] *= 0.5
    oversampled = spectrum.new_empty(x.shape[0], n_fft + 1)
    torch.mul(spectrum, gain, out=oversampled[:, : n_fft // 2 + 1])
    oversampled[:, n_fft // 2 + 1 :] = 0
    upsampled = torch.fft.irfft(oversampled, n=2 * n_fft)  # (B, 2 n_fft)
    upsampled[:, 2 * num_samples - 1 :] = 0  # silence after the last sample
    return upsampled


def read_at(upsampled: Tensor, position: Tensor) -> Tensor:
    """Linear interpolation of a twice-oversampled signal at input-rate ``position``.

    Shape: (B, 2 n) and (B, M) -> (B, M); positions at or past n read zeros.
    """
    position = position * 2
    lower = position.floor()
    frac = position.sub_(lower)
    lower = lower.long().clamp_(0, upsampled.shape[-1] - 2)
    # The next sample read from a view one sample on: no second index tensor.
    return torch.lerp(upsampled.gather(1, lower), upsampled[:, 1:].gather(1, lower), frac)


def tape_pitch_shift(x: Tensor, ratio: Tensor) -> Tensor:
    """Play every example ``ratio`` times as fast (pitch and tempo together), keeping length.

    Args:
        x: waveforms. Shape: (batch_size, num_samples).
        ratio: speed-up factors 2^(semitones / 12). Shape: (batch_size,).

    Returns:
        Resampled waveforms, zero past the end of the source. Shape: (batch_size, num_samples).
    """
    num_samples = x.shape[-1]
    dtype = compute_dtype(x)
    upsampled = oversampled_for_reading(x, ratio)
    time = torch.arange(num_samples, device=x.device, dtype=dtype)
    return read_at(upsampled, time[None] * ratio.to(dtype)[:, None]).to(x.dtype)


def wsola_pitch_shift(
    x: Tensor, ratio: Tensor, *, hop: int, overlap: int, search: int, max_ratio: float
) -> Tensor:
    """Shift every example's pitch by its own frequency ratio, keeping its duration (WSOLA).

    Grain k is written at output samples [k hop, k hop + hop + overlap) and reads the input
    at s_k + r t for t in [0, hop + overlap), with s_0 = 0. Its start s_k lies within
    ``search`` samples of k hop and is chosen to match the input at s_{k-1} + r hop, where
    grain k - 1 would have gone on. The first ``overlap`` samples of grain k fade in (sin^2)
    while the last of grain k - 1 fade out (cos^2). Grains are placed one after the other,
    which is a loop over the grains of a clip (about 40 for 3 s), never over examples.

    Args:
        x: waveforms. Shape: (batch_size, num_samples).
        ratio: frequency ratios 2^(semitones / 12), clamped to [1 / max_ratio, max_ratio].
            Shape: (batch_size,).
        hop: output samples between grain starts, a multiple of DECIMATION.
        overlap: cross-fade length, a multiple of DECIMATION, at most hop.
        search: largest distance of a grain's start from its time, a multiple of
            DECIMATION with search + 2 DECIMATION <= hop.
        max_ratio: the largest ratio the caller may pass (sets how far past its end the
            input is extended), known on the host.

    Returns:
        Shifted waveforms. Shape: (batch_size, num_samples).
    """
    batch_size, num_samples = x.shape
    dtype = compute_dtype(x)
    device = x.device
    ratio = ratio.to(dtype).clamp(1 / max_ratio, max_ratio)
    num_grains = -(-num_samples // hop)
    segment = hop + overlap
    # The furthest any grain reads, with room for the search windows; past the end of the
    # example the input goes on mirrored, so the last grains read music, not silence.
    reach = (num_grains - 1) * hop + search + math.ceil(max_ratio * segment) + 4 * DECIMATION
    reach = -(-reach // DECIMATION) * DECIMATION
    extended = _mirror_to(x.to(dtype), reach)  # (B, reach)

    # Coarse search: blocks of DECIMATION averaged; fine search: every sample near the best.
    coarse = extended.view(batch_size, -1, DECIMATION).mean(dim=-1)  # (B, reach / DECIMATION)
    coarse_length, coarse_search = overlap // DECIMATION, search // DECIMATION
    coarse_energy = _window_energy(coarse, coarse_length)
    coarse_taps = torch.arange(coarse_length, device=device)
    fine_taps = torch.arange(overlap + 2 * DECIMATION - 2, device=device)
    starts = [torch.zeros(batch_size, dtype=torch.long, device=device)]
    advance = (ratio * hop).round().long()  # input samples grain k - 1 covers by k hop
    for k in range(1, num_grains):  # grains in turn; all examples at once
        target = starts[-1] + advance  # where grain k - 1 would have gone on
        template = coarse.gather(1, (target // DECIMATION)[:, None] + coarse_taps)
        low = k * hop // DECIMATION - coarse_search  # the same candidates for every example
        high = low + 2 * coarse_search + 1
        region = coarse[:, low : high + coarse_length - 1]
        best = _best_match(region, template, coarse_energy[:, low:high])
        near = best.add_(low).mul_(DECIMATION).sub_(DECIMATION - 1)
        template = extended.gather(1, target[:, None] + fine_taps[:overlap])
        region = extended.gather(1, near[:, None] + fine_taps)
        starts.append(near + _best_match(region, template, _window_energy(region, overlap)))
    start = torch.stack(starts, dim=1)  # (B, K)

    # Grain k reads the input twice oversampled at 2 (s_k + r t): whole-sample starts, so
    # all grains of an example share the sample offsets floor(2 r t) and weights frac(2 r t).
    upsampled = oversampled_for_reading(extended, ratio)
    scaled = 2 * ratio[:, None] * torch.arange(segment, device=device, dtype=dtype)  # (B, seg)
    offset = scaled.floor()
    weight = scaled.sub_(offset)[:, None, :]
    index = (2 * start[:, :, None] + offset.long()[:, None, :]).view(batch_size, -1)
    shape = (batch_size, num_grains, segment)
    grains = torch.lerp(
        upsampled.gather(1, index).view(shape),
        upsampled[:, 1:].gather(1, index).view(shape),
        weight,
    )
    grains *= _crossfade_weights(num_grains, hop, overlap, device=device, dtype=dtype)
    out = grains.new_empty(batch_size, (num_grains + 1) * hop)
    out[:, : num_grains * hop].view(batch_size, num_grains, hop).copy_(grains[..., :hop])
    out[:, num_grains * hop :] = 0
    tails = out[:, hop:].view(batch_size, num_grains, hop)[..., :overlap]
    tails += grains[..., hop:]
    return out[:, :num_samples].to(x.dtype)


def _window_energy(signal: Tensor, length: int) -> Tensor:
    """Sum of squares of every window of ``length`` samples: (B, M) -> (B, M - length + 1)."""
    # Prefix sums in float64: differences of large sums keep their precision.
    total = F.pad(signal.double().square().cumsum(dim=1), (1, 0))
    return (total[:, length:] - total[:, :-length]).to(signal.dtype)


def _best_match(region: Tensor, template: Tensor, energy: Tensor) -> Tensor:
    """Offset of the window of ``region`` most like ``template`` (normalised correlation).

    Shape: (B, L + D - 1), (B, L) and the windows' energies (B, D) -> (B,), int64 in [0, D).
    """
    # One filter per example: a grouped convolution is a batched sliding dot product.
    dots = F.conv1d(region[None], template[:, None], groups=template.shape[0])[0]  # (B, D)
    return (dots * energy.clamp_min(1e-12).rsqrt()).argmax(dim=1)


def _crossfade_weights(
    num_grains: int, hop: int, overlap: int, *, device: torch.device, dtype: torch.dtype
) -> Tensor:
    """Per-sample weights of each grain: fade in, hold, fade out. Shape: (K, hop + overlap)."""
    angle = (torch.arange(overlap, device=device, dtype=dtype) + 0.5) * (math.pi / 2 / overlap)
    weights = torch.ones(num_grains, hop + overlap, device=device, dtype=dtype)
    weights[1:, :overlap] = angle.sin().square()  # the first grain has nothing to fade from
    weights[:, hop:] = angle.cos().square()  # sin^2 + cos^2 = 1 across each cross-fade
    return weights


def _mirror_to(x: Tensor, length: int) -> Tensor:
    """``x`` extended to ``length`` samples by its mirror image, then zeros. Shape: (B, length)."""
    num_samples = x.shape[-1]
    out = x.new_zeros(x.shape[0], length)
    out[:, :num_samples] = x
    mirrored = min(length - num_samples, num_samples - 1)
    out[:, num_samples : num_samples + mirrored] = x[:, num_samples - 1 - mirrored : -1].flip(-1)
    return out


class PitchShift(Augmentation):
    """Shift each example's pitch by a number of semitones drawn uniformly per example.

    Parameters: ``applied`` and ``semitones`` (float32), each shape (batch_size,). The frequency
    ratio where applied is 2^(semitones / 12).

    Args:
        sr: sample rate of the waveforms in Hz.
        p: probability of shifting an example (0.6 in CLMR).
        max_semitones: semitones are drawn from [-max_semitones, max_semitones].
        kind: ``"preserve_tempo"`` (WSOLA) or ``"tape"`` (resampling); see the module.
        hop_ms: WSOLA's grain spacing: long enough to hold a few periods of a bass note,
            short enough that a grain's own tempo change (r times as fast) goes unheard.
        overlap_ms: WSOLA's cross-fade length.
        search_ms: how far WSOLA may move a grain to join it in phase; half the longest
            period it aligns (10 ms: down to 50 Hz).
    """

    name = "pitch_shift"

    def __init__(
        self,
        *,
        sr: int,
        p: float = 0.6,
        max_semitones: float = 5.0,
        kind: str = "preserve_tempo",
        hop_ms: float = 60.0,
        overlap_ms: float = 12.0,
        search_ms: float = 10.0,
    ) -> None:
        super().__init__(p=p)
        if kind not in KINDS:
            raise MusicSSLError(f"PitchShift: kind must be one of {KINDS}, got {kind!r}")
        if sr <= 0 or not 0 <= max_semitones <= 24:
            raise MusicSSLError(
                f"PitchShift: need sr > 0 and 0 <= max_semitones <= 24, got {sr}, {max_semitones}"
            )
        self.sr = int(sr)
        self.max_semitones = float(max_semitones)
        self.kind = kind

        def samples(ms: float) -> int:  # whole blocks of the coarse search
            return DECIMATION * max(1, round(ms * sr / 1000 / DECIMATION))

        self.hop, self.overlap, self.search = (
            samples(hop_ms),
            samples(overlap_ms),
            samples(search_ms),
        )
        if self.overlap > self.hop or self.search + 2 * DECIMATION > self.hop:
            raise MusicSSLError(
                f"PitchShift: need overlap_ms <= hop_ms and search_ms well below hop_ms, got "
                f"{overlap_ms}, {search_ms}, {hop_ms}"
            )

    def sample_params(
        self, batch_size: int, num_input_samples: int, *, generator: torch.Generator | None = None
    ) -> Params:
        applied = coin(self.p, batch_size, generator=generator)
        semitones = uniform(
            -self.max_semitones, self.max_semitones, batch_size, generator=generator
        )
        return {"applied": applied, "semitones": semitones}

    def apply_all(self, x: Tensor, params: Params) -> Tensor:
        ratio = 2.0 ** (params["semitones"] / 12.0)
        if self.kind == "tape":
            return tape_pitch_shift(x, ratio)
        return wsola_pitch_shift(
            x,
            ratio,
            hop=self.hop,
            overlap=self.overlap,
            search=self.search,
            max_ratio=2.0 ** (self.max_semitones / 12.0),
        )

    def extra_repr(self) -> str:
        return (
            f"sr={self.sr}, p={self.p}, max_semitones={self.max_semitones}, kind={self.kind!r}, "
            f"hop={self.hop}, overlap={self.overlap}, search={self.search}"
        )
