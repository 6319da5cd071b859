"""High-pass or low-pass filtering with a cut-off drawn per example, as an FFT-domain mask.

The filter is zero-phase (a real gain per frequency), so it commutes with every linear
time-invariant transform, and a transform that computes an FFT of the examples anyway can apply
it in passing: ``Compose`` defers it so (``OwedFilter``).
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import Tensor

from musicssl.augment.base import (
    Augmentation,
    Params,
    all_rows,
    applied_index,
    check_probability,
    check_range,
    coin,
    compute_dtype,
    fast_fft_length,
    padded_rows,
    scatter_rows,
    to_device,
    uniform,
)
from musicssl.augment.fused import fused
from musicssl.errors import MusicSSLError

# Silence after each example in an FFT buffer that the filter multiplies: room for its
# (two-sided, short) impulse response to ring out without wrapping round.
FILTER_RINGING_S = 0.02

# The gains of a deferred filter for an rfft of n_fft points, for the first m examples a
# transform gets (the others owe nothing): (n_fft, dtype) -> shape (m, n_fft + 2), laid out as
# ``view_as_real`` of the spectrum (each bin's gain twice, for its real and imaginary parts).
SpectralGain = Callable[[int, torch.dtype], Tensor]


# Compiled, the gains make one pass instead of one per operation: op by op the chain took 14%
# (preserve_tempo) and 17% (tape) longer (paired medians, bench/ab_augment.py).
@fused
def butterworth_gain(
    freqs: Tensor,
    cutoff_hz: Tensor,
    high_pass: Tensor,
    *,
    order: int,
) -> Tensor:
    """Magnitude response of a Butterworth low- or high-pass filter.

    |H| = 1 / sqrt(1 + w^(2n)) with w = f / fc for the low-pass and fc / f for the high-pass.
    Where w^(2n) overflows the gain is 0, as it is to float precision anyway; so is the
    high-pass's at f = 0.

    Args:
        freqs: frequencies in Hz, non-negative. Shape: (num_freqs,).
        cutoff_hz: -3 dB points. Shape: (batch_size,).
        high_pass: True for a high-pass. Shape: (batch_size,).
        order: filter order n (attenuation 6n dB per octave past the cut-off).

    Returns:
        Gains in [0, 1]. Shape: (batch_size, num_freqs).
    """
    square = (freqs / cutoff_hz[:, None]).square()
    w_square = torch.where(high_pass[:, None], square.reciprocal(), square)
    power = w_square
    for _ in range(order - 1):  # w^(2n) by multiplication: fused, as fast as it gets
        power = power * w_square
    return power.add(1).rsqrt()


class HighLowPass(Augmentation):
    """Filter each example with a zero-phase Butterworth high-pass or low-pass.

    Where applied, each example is high-passed (with probability ``high_pass_fraction``) or
    low-passed, at a cut-off drawn uniformly from that kind's range. The filter is a magnitude
    mask on the FFT of the zero-padded example: no phase shift, no edge wrap-around.

    Parameters: ``applied``, ``high_pass`` (bool) and ``cutoff_hz``, each shape (batch_size,).

    Args:
        sr: sample rate of the waveforms in Hz.
        p: probability of filtering an example (0.8 in CLMR).
        min_low_pass_hz: lowest low-pass cut-off (CLMR: 2200 Hz).
        max_low_pass_hz: highest low-pass cut-off (CLMR: 4000 Hz).
        min_high_pass_hz: lowest high-pass cut-off (CLMR: 200 Hz).
        max_high_pass_hz: highest high-pass cut-off (CLMR: 1200 Hz).
        high_pass_fraction: share of filtered examples that are high-passed (CLMR: one half).
        order: Butterworth order; 2 gives 12 dB per octave.
    """

    name = "high_low_pass"

    def __init__(
        self,
        *,
        sr: int,
        p: float = 0.8,
        min_low_pass_hz: float = 2200.0,
        max_low_pass_hz: float = 4000.0,
        min_high_pass_hz: float = 200.0,
        max_high_pass_hz: float = 1200.0,
        high_pass_fraction: float = 0.5,
        order: int = 2,
    ) -> None:
        super().__init__(p=p)
        check_range(min_low_pass_hz, max_low_pass_hz, "HighLowPass: low-pass cut-off range")
        check_range(min_high_pass_hz, max_high_pass_hz, "HighLowPass: high-pass cut-off range")
        if sr <= 0 or min(min_low_pass_hz, min_high_pass_hz) <= 0:
            raise MusicSSLError(f"HighLowPass: sr and cut-offs must be positive, got sr={sr}")
        if max(max_low_pass_hz, max_high_pass_hz) >= sr / 2:
            raise MusicSSLError(f"HighLowPass: cut-offs must lie below the Nyquist rate {sr / 2}")
        if order < 1:
            raise MusicSSLError(f"HighLowPass: order must be >= 1, got {order}")
        self.sr = int(sr)
        self.low_pass_hz = (float(min_low_pass_hz), float(max_low_pass_hz))
        self.high_pass_hz = (float(min_high_pass_hz), float(max_high_pass_hz))
        self.high_pass_fraction = check_probability(high_pass_fraction, "HighLowPass: fraction")
        self.order = int(order)
        self.num_pad = math.ceil(FILTER_RINGING_S * sr)
        # The frequencies of each transform length, dtype and device met so far (a chain applies
        # a deferred filter at the lengths of the transforms that take it).
        self._freqs: dict[tuple[int, torch.dtype, torch.device], Tensor] = {}

    def sample_params(
        self, batch_size: int, num_input_samples: int, *, generator: torch.Generator | None = None
    ) -> Params:
        applied = coin(self.p, batch_size, generator=generator)
        high_pass = coin(self.high_pass_fraction, batch_size, generator=generator)
        low = uniform(*self.low_pass_hz, batch_size, generator=generator)
        high = uniform(*self.high_pass_hz, batch_size, generator=generator)
        cutoff_hz = torch.where(high_pass, high, low)
        return {"applied": applied, "high_pass": high_pass, "cutoff_hz": cutoff_hz}

    def apply_all(self, x: Tensor, params: Params) -> Tensor:
        return self.apply_rows(x, all_rows(x), params)

    def apply_rows(self, x: Tensor, rows: Tensor, params: Params) -> Tensor:
        num_samples = x.shape[-1]
        dtype = compute_dtype(x)
        n_fft = fast_fft_length(num_samples + self.num_pad)
        spectrum = torch.fft.rfft(padded_rows(x, rows, n_fft, dtype=dtype))  # (B, F)
        gain = self.spectral_gain(params, n_fft, dtype=dtype)
        torch.view_as_real(spectrum).view(spectrum.shape[0], -1).mul_(gain)
        y = torch.fft.irfft(spectrum, n=n_fft)[:, :num_samples]
        return y.to(x.dtype)

    def spectral_gain(self, params: Params, n_fft: int, *, dtype: torch.dtype) -> Tensor:
        """The gains for an rfft of ``n_fft`` points, as a ``SpectralGain`` gives them.

        Args:
            params: of the examples to filter (every one is), on the device the gains are
                wanted on.
            n_fft: transform length.
            dtype: real floating-point type of the gains.

        Returns:
            Shape: (batch_size, n_fft + 2).
        """
        cutoff_hz = params["cutoff_hz"]
        key = (n_fft, dtype, cutoff_hz.device)
        if key not in self._freqs:
            freqs = torch.fft.rfftfreq(n_fft, d=1 / self.sr, device=cutoff_hz.device, dtype=dtype)
            # Each bin twice, for its real and imaginary parts: multiplying the spectrum by a
            # broadcast gain instead ran 3-4x as slow on CPU.
            self._freqs[key] = freqs.repeat_interleave(2)
        return butterworth_gain(
            self._freqs[key], cutoff_hz.to(dtype), params["high_pass"], order=self.order
        )

    def __getstate__(self) -> dict:
        return {**super().__getstate__(), "_freqs": {}}  # rebuilt on first use

    def extra_repr(self) -> str:
        return (
            f"sr={self.sr}, p={self.p}, low_pass_hz={self.low_pass_hz}, "
            f"high_pass_hz={self.high_pass_hz}, order={self.order}"
        )


class OwedFilter:
    """A high/low-pass some examples of a batch still owe: the ones its ``params['applied']``
    flags. ``Compose`` hands it to the next transform that computes an FFT of its examples
    anyway (pitch shift, reverb), which multiplies their spectrum by the filter's gains."""

    def __init__(self, transform: HighLowPass, params: Params) -> None:
        self.transform = transform
        self.params = params

    def gain(self, index: Tensor, device: torch.device) -> SpectralGain:
        """The gains of the examples ``index`` picks, for ``apply_rows(..., gain=...)``."""
        chosen = to_device({name: value[index] for name, value in self.params.items()}, device)
        return lambda n_fft, dtype: self.transform.spectral_gain(chosen, n_fft, dtype=dtype)

    def apply_through(
        self, transform: Augmentation, x: Tensor, params: Params, *, overwrite: bool
    ) -> Tensor:
        """``transform.apply(x, params)``, the examples it applies to filtered on the way.

        ``transform`` takes ``gain`` in its ``apply_rows``: a filter its first rows owe.
        """
        index = applied_index(params, x.shape[0], type(transform).__name__)
        owes = self.params["applied"][index]
        index = torch.cat([index[owes], index[~owes]])  # the rows that owe it first
        gain = self.gain(index[: int(owes.sum())], x.device) if owes.any() else None

        def transform_rows(x: Tensor, rows: Tensor, params: Params) -> Tensor:
            return transform.apply_rows(x, rows, params, gain=gain)  # type: ignore[call-arg]

        return scatter_rows(transform_rows, x, index, params, overwrite=overwrite)

    def paid_by(self, applied: Tensor) -> OwedFilter | None:
        """What is still owed once the examples ``applied`` flags have had the filter."""
        left = self.params["applied"] & ~applied
        return OwedFilter(self.transform, {**self.params, "applied": left}) if left.any() else None
