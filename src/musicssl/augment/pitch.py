"""Pitch shift with a per-example interval: tempo-preserving (WSOLA) or tape-style.

Two kinds, chosen by ``kind``:

- ``"preserve_tempo"`` (what sox ``pitch`` does, and with the same family of algorithm:
  time-domain overlap-add): the output is built from short grains, one every ``hop`` samples.
  Each grain is the input read r = 2^(semitones / 12) times as fast (so it sounds r times as
  high) from a point near the grain's own time (so the tempo is kept), and cross-fades into
  the next over ``overlap`` samples. Where each grain starts is searched, as in WSOLA
  (Verhelst & Roelands, 1993): among the starts within ``search`` samples of its time, the one
  whose opening best matches (normalised cross-correlation) how the previous grain would have
  gone on, so that cross-fades join waveforms in phase. The search runs coarse to fine (on sums
  of 32 samples, then of 8 near the best of those, then on every sample near the best of
  those), and although each grain's choice depends on the last, all are made at once (see
  ``wsola.grain_starts``).
- ``"tape"``: read the waveform r times as fast, so pitch and tempo move together (a tape or
  turntable running fast or slow). The length is kept: shifted up, the example ends early and
  the tail is silent; shifted down, its end is cut.

Both read the input between samples from a copy band-limited to the Nyquist rate / r (so that
nothing folds back when read faster) and oversampled twice through the FFT, by linear
interpolation.
"""

from __future__ import annotations

import functools
import math

import torch
from torch import Tensor

from musicssl.augment.base import (
    Augmentation,
    Params,
    all_rows,
    coin,
    compute_dtype,
    fast_fft_length,
    padded_rows,
    uniform,
)
from musicssl.augment.filters import SpectralGain
from musicssl.augment.fused import fused
from musicssl.augment.wsola import COARSE_STEPS, grain_starts
from musicssl.errors import MusicSSLError

KINDS = ("preserve_tempo", "tape")
# Zeros after the signal in the FFT buffers: room for a deferred filter's ringing (see
# ``Compose``) and against the circular wrap of the band-limiting.
ZERO_TAIL = 1024


def oversampled_for_reading(
    x: Tensor, ratio: Tensor, *, max_ratio: float, gain: SpectralGain | None = None
) -> Tensor:
    """Each example at twice its rate, band-limited for being read ``ratio`` times as fast.

    Frequencies that would pass the Nyquist rate once read r times as fast (r > 1) are
    removed; the inverse transform at twice the length then interpolates exactly between the
    samples (the "forward" normalisation on both sides gives the right level). The input must
    end in zeros (``ZERO_TAIL``), so that the transform's circular wrap leaks nothing from
    the start into the end.

    Args:
        x: zero-padded waveforms, n samples each, n a fast FFT length. Shape: (batch_size, n).
        ratio: reading speeds, at most ``max_ratio``. Shape: (batch_size,).
        max_ratio: known on the host: only bins above n / (2 max_ratio) are looked at.
        gain: a filter the first examples owe, applied to the spectrum on the way.

    Returns:
        Shape: (batch_size, 2 n); sample 2 i is x[i] where nothing was removed.
    """
    n = x.shape[-1]
    half = n // 2
    complex_dtype = torch.complex128 if x.dtype == torch.float64 else torch.complex64
    padded = x.new_empty(x.shape[0], n + 1, dtype=complex_dtype)
    torch.fft.rfft(x, norm="forward", out=padded[:, : half + 1])  # copied in by rfft itself
    if gain is not None:
        gains = gain(n, x.dtype)  # for the first examples
        torch.view_as_real(padded[: gains.shape[0], : half + 1]).mul_(gains.view(-1, half + 1, 2))
    padded[:, half + 1 :] = 0
    padded[:, half] *= 0.5  # the Nyquist bin becomes a two-sided bin once oversampled
    if max_ratio > 1:
        # Bin k (k / n cycles per sample) read r times as fast passes Nyquist if k > half / r.
        lowest = math.floor(half / max_ratio)
        bins = torch.arange(lowest, half + 1, device=x.device, dtype=x.dtype)
        limit = half / ratio.clamp_min(1.0)
        padded[:, lowest : half + 1].masked_fill_(bins[None, :] > limit[:, None], 0)
    return torch.fft.irfft(padded, n=2 * n, norm="forward")


# Compiled, the read computes its indices as it goes instead of writing them out: op by op the
# tape chain took 23% longer (paired median, bench/ab_augment.py).
@fused
def _read_faster(upsampled: Tensor, ratio: Tensor, num_samples: int) -> Tensor:
    """Sample t of each example read from its oversampled copy at 2 r t, by linear interpolation.

    Reads past the end take the copy's last two samples. Shape: (B, 2 N), (B,) -> (B, num_samples).
    """
    time = torch.arange(num_samples, device=upsampled.device, dtype=ratio.dtype)
    position = (2 * ratio)[:, None] * time
    whole = position.long()  # the floor: positions are non-negative
    index = whole.clamp(max=upsampled.shape[-1] - 2)
    low = upsampled.gather(1, index)
    high = upsampled[:, 1:].gather(1, index)  # the next sample, from a view one sample on
    return torch.lerp(low, high, position - whole)


# Compiled, likewise: op by op the preserve_tempo chain took 11% longer.
@fused
def _faded_grains(upsampled: Tensor, start: Tensor, ratio: Tensor, fade: Tensor) -> Tensor:
    """Every grain read from the oversampled input, weighted by its fades.

    Grain k reads the input twice oversampled at 2 (s_k + r t): whole-sample starts, so all
    grains of an example share the sample offsets floor(2 r t) and weights frac(2 r t).

    Shape: (B, 2 M), (B, K), (B,), (K, segment) -> (B, K, segment).
    """
    batch_size, num_grains = start.shape
    segment = fade.shape[-1]
    position = ratio[:, None] * torch.arange(
        0, 2 * segment, 2, device=upsampled.device, dtype=ratio.dtype
    )
    offset = position.long()  # the floor: positions are non-negative
    index = (2 * start[:, :, None] + offset[:, None, :]).view(batch_size, -1)
    low = upsampled.gather(1, index).view(batch_size, num_grains, segment)
    high = upsampled[:, 1:].gather(1, index).view(batch_size, num_grains, segment)
    return torch.lerp(low, high, (position - offset)[:, None, :]) * fade


def tape_pitch_shift(
    x: Tensor,
    ratio: Tensor,
    *,
    max_ratio: float,
    gain: SpectralGain | None = None,
    rows: Tensor | None = None,
) -> Tensor:
    """Play every example ``ratio`` times as fast (pitch and tempo together), keeping length.

    Args:
        x: waveforms. Shape: (batch_size, num_samples).
        ratio: speed-up factors 2^(semitones / 12), clamped to [1 / max_ratio, max_ratio].
            Shape: (num_rows,).
        max_ratio: the largest ratio the caller may pass, known on the host.
        gain: a filter the first examples owe, applied before they are read.
        rows: the examples of ``x`` to shift (every one if None); ``ratio`` has one per row.

    Returns:
        Resampled waveforms, zero past the end of the source. Shape: (num_rows, num_samples).
    """
    num_samples = x.shape[-1]
    dtype = compute_dtype(x)
    rows = all_rows(x) if rows is None else rows
    padded = padded_rows(x, rows, fast_fft_length(num_samples + ZERO_TAIL), dtype=dtype)
    ratio = ratio.to(dtype).clamp(1 / max_ratio, max_ratio)
    upsampled = oversampled_for_reading(padded, ratio, max_ratio=max_ratio, gain=gain)
    upsampled[:, 2 * num_samples - 1 :] = 0  # silence after the last sample
    return _read_faster(upsampled, ratio, num_samples).to(x.dtype)


def wsola_pitch_shift(
    x: Tensor,
    ratio: Tensor,
    *,
    hop: int,
    overlap: int,
    search: int,
    max_ratio: float,
    gain: SpectralGain | None = None,
    rows: Tensor | None = None,
) -> Tensor:
    """Shift every example's pitch by its own frequency ratio, keeping its duration (WSOLA).

    Grain k is written at output samples [k hop, k hop + hop + overlap) and reads the input
    at s_k + r t for t in [0, hop + overlap), with s_0 = 0. Its start s_k lies within
    ``search`` samples of k hop and is chosen to match the input at s_{k-1} + r hop, where
    grain k - 1 would have gone on. The first ``overlap`` samples of grain k fade in (sin^2)
    while the last of grain k - 1 fade out (cos^2). No loop over grains or examples: see
    ``wsola.grain_starts``. What is searched and read is the input band-limited for its reading
    speed (and filtered by ``gain``, if given): the even samples of the oversampled copy.

    Args:
        x: waveforms. Shape: (batch_size, num_samples).
        ratio: frequency ratios 2^(semitones / 12), clamped to [1 / max_ratio, max_ratio].
            Shape: (num_rows,).
        hop: output samples between grain starts.
        overlap: cross-fade length, at least COARSE_STEPS[0] and at most hop.
        search: how far the first search level reaches either side of a grain's time; the
            later levels may move a grain up to COARSE_STEPS[0] - 1 samples further.
            search + 2 COARSE_STEPS[0] <= hop.
        max_ratio: the largest ratio the caller may pass (sets how far past its end the
            input is extended), known on the host.
        gain: a filter the first examples owe, applied before anything is read.
        rows: the examples of ``x`` to shift (every one if None); ``ratio`` has one per row.

    Returns:
        Shifted waveforms. Shape: (num_rows, num_samples).
    """
    num_samples = x.shape[-1]
    rows = all_rows(x) if rows is None else rows
    batch_size = rows.shape[0]
    dtype = compute_dtype(x)
    device = x.device
    ratio = ratio.to(dtype).clamp(1 / max_ratio, max_ratio)
    num_grains = -(-num_samples // hop)
    segment = hop + overlap
    # The furthest any grain reads, with room for the search windows; past the end of the
    # example the input goes on mirrored, so the last grains read music, not silence.
    reach = (num_grains - 1) * hop + search + math.ceil(max_ratio * segment) + 4 * COARSE_STEPS[0]
    length = fast_fft_length(reach + ZERO_TAIL)
    mirrored = max(0, min(reach - num_samples, num_samples - 1, length - num_samples))
    extended = padded_rows(x, rows, length, mirrored=mirrored, dtype=dtype)
    upsampled = oversampled_for_reading(extended, ratio, max_ratio=max_ratio, gain=gain)

    start = grain_starts(
        upsampled[:, : 2 * reach : 2],
        ratio,
        num_grains=num_grains,
        hop=hop,
        overlap=overlap,
        search=search,
    )  # (B, K)

    fade = _crossfade_weights(num_grains, hop, overlap, device=device, dtype=dtype)
    grains = _faded_grains(upsampled, start, ratio, fade)  # (B, K, segment)
    # Overlap-add: the heads laid end to end, then each grain's tail added to the next head.
    out = grains.new_empty(batch_size, (num_grains + 1) * hop)
    out[:, : num_grains * hop].view(batch_size, num_grains, hop).copy_(grains[..., :hop])
    out[:, num_grains * hop :] = 0
    out[:, hop:].view(batch_size, num_grains, hop)[..., :overlap].add_(grains[..., hop:])
    return out[:, :num_samples].to(x.dtype)


@functools.lru_cache(maxsize=8)
def _crossfade_weights(
    num_grains: int, hop: int, overlap: int, *, device: torch.device, dtype: torch.dtype
) -> Tensor:
    """Per-sample weights of each grain: fade in, hold, fade out. Shape: (K, hop + overlap).

    The same for every call with the same sizes: cached, and read only.
    """
    angle = (torch.arange(overlap, device=device, dtype=dtype) + 0.5) * (math.pi / 2 / overlap)
    weights = torch.ones(num_grains, hop + overlap, device=device, dtype=dtype)
    weights[1:, :overlap] = angle.sin().square()  # the first grain has nothing to fade from
    weights[:, hop:] = angle.cos().square()  # sin^2 + cos^2 = 1 across each cross-fade
    return weights


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
            With the cross-fade, grains of 82 ms: sox's default segment.
        overlap_ms: WSOLA's cross-fade length (sox's default, 12 ms).
        search_ms: how far WSOLA may move a grain either way to join it in phase; half the
            longest period it aligns (7 ms: down to 70 Hz, as sox's 14.68 ms search span).
    """

    name = "pitch_shift"

    def __init__(
        self,
        *,
        sr: int,
        p: float = 0.6,
        max_semitones: float = 5.0,
        kind: str = "preserve_tempo",
        hop_ms: float = 70.0,
        overlap_ms: float = 12.0,
        search_ms: float = 7.0,
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

        self.hop, self.overlap, self.search = (
            round(ms * sr / 1000) for ms in (hop_ms, overlap_ms, search_ms)
        )
        coarsest = COARSE_STEPS[0]
        if (
            not coarsest <= self.overlap <= self.hop
            or not 0 <= self.search <= self.hop - 2 * coarsest
        ):
            raise MusicSSLError(
                f"PitchShift: need {coarsest} samples <= overlap_ms <= hop_ms and 0 <= search_ms "
                f"well below hop_ms, got {overlap_ms}, {search_ms}, {hop_ms} at {sr} Hz"
            )

    def sample_params(
        self, batch_size: int, num_input_samples: int, *, generator: torch.Generator | None = None
    ) -> Params:
        applied = coin(self.p, batch_size, generator=generator)
        semitones = uniform(
            -self.max_semitones, self.max_semitones, batch_size, generator=generator
        )
        return {"applied": applied, "semitones": semitones}

    def apply_all(self, x: Tensor, params: Params, *, gain: SpectralGain | None = None) -> Tensor:
        return self.apply_rows(x, all_rows(x), params, gain=gain)

    def apply_rows(
        self, x: Tensor, rows: Tensor, params: Params, *, gain: SpectralGain | None = None
    ) -> Tensor:
        ratio = 2.0 ** (params["semitones"] / 12.0)
        max_ratio = 2.0 ** (self.max_semitones / 12.0)
        if self.kind == "tape":
            return tape_pitch_shift(x, ratio, max_ratio=max_ratio, gain=gain, rows=rows)
        return wsola_pitch_shift(
            x,
            ratio,
            hop=self.hop,
            overlap=self.overlap,
            search=self.search,
            max_ratio=max_ratio,
            gain=gain,
            rows=rows,
        )

    def extra_repr(self) -> str:
        return (
            f"sr={self.sr}, p={self.p}, max_semitones={self.max_semitones}, kind={self.kind!r}, "
            f"hop={self.hop}, overlap={self.overlap}, search={self.search}"
        )
