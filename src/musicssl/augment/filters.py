"""High-pass or low-pass filtering with a cut-off drawn per example, as a spectral product."""

from __future__ import annotations

import math

import torch
from torch import Tensor

from musicssl.augment.base import Params, check_probability, check_range, coin, uniform
from musicssl.augment.linear import LinearAugmentation
from musicssl.errors import MusicSSLError


def butterworth_response(
    freqs: Tensor, cutoff_hz: Tensor, high_pass: Tensor, *, sr: int, order: int
) -> Tensor:
    """Frequency response of a digital Butterworth low- or high-pass filter (bilinear design).

    The analogue prototype is 1 / B(s) (low-pass) or s^n / B(s) (high-pass), B the Butterworth
    polynomial of order n: sections s^2 + 2 sin(theta_k) s + 1, theta_k = (2k + 1) pi / (2n),
    and s + 1 when n is odd. The bilinear transform, with the cut-off prewarped, evaluates it
    at s = j u, u = tan(pi f / sr) / tan(pi fc / sr): a causal recursive filter, as sox and
    scipy.signal.butter design them. |H|^2 = 1 / (1 + u^(2n)) for the low-pass and
    u^(2n) / (1 + u^(2n)) for the high-pass: 6n dB per octave past the cut-off.

    Args:
        freqs: frequencies in Hz, at most sr / 2. Shape: (num_freqs,).
        cutoff_hz: -3 dB points, below sr / 2. Shape: (batch_size,).
        high_pass: True for a high-pass. Shape: (batch_size,).
        sr: sample rate in Hz.
        order: filter order n.

    Returns:
        Complex gains. Shape: (batch_size, num_freqs).
    """
    warped = torch.tan((math.pi / sr) * freqs).clamp_(max=1e6)  # Nyquist: tan(pi/2), capped
    u = warped[None, :] / torch.tan((math.pi / sr) * cutoff_hz)[:, None]
    one = torch.ones_like(u)
    denominator = torch.complex(one, u) if order % 2 else torch.complex(one, torch.zeros_like(u))
    for k in range(order // 2):  # a handful of second-order sections, not examples
        damping = 2 * math.sin((2 * k + 1) * math.pi / (2 * order))
        denominator = denominator * torch.complex(1 - u.square(), damping * u)
    low = denominator.reciprocal()
    high = low * u.pow(order) * (1j**order)
    return torch.where(high_pass[:, None], high, low)


class HighLowPass(LinearAugmentation):
    """Filter each example with a causal Butterworth high-pass or low-pass, as sox does.

    Where applied, each example is high-passed (with probability ``high_pass_fraction``) or
    low-passed, at a cut-off drawn uniformly from that kind's range. The filter's exact
    frequency response multiplies the FFT of the zero-padded example (see ``augment.linear``).

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
        # Long enough for the slowest pole (decay rate 2 pi fc sin(pi / 2n)) to fall 18 e-folds,
        # about 156 dB: 20 ms at 200 Hz and order 2.
        slowest = (
            2 * math.pi * min(min_low_pass_hz, min_high_pass_hz) * math.sin(math.pi / 2 / order)
        )
        self.response_reach = math.ceil(18 / slowest * sr)

    def sample_params(
        self, batch_size: int, num_input_samples: int, *, generator: torch.Generator | None = None
    ) -> Params:
        applied = coin(self.p, batch_size, generator=generator)
        high_pass = coin(self.high_pass_fraction, batch_size, generator=generator)
        low = uniform(*self.low_pass_hz, batch_size, generator=generator)
        high = uniform(*self.high_pass_hz, batch_size, generator=generator)
        cutoff_hz = torch.where(high_pass, high, low)
        return {"applied": applied, "high_pass": high_pass, "cutoff_hz": cutoff_hz}

    def frequency_response(self, params: Params, n_fft: int, *, dtype: torch.dtype) -> Tensor:
        freqs = torch.fft.rfftfreq(n_fft, d=1.0 / self.sr, device=params["cutoff_hz"].device)
        cutoff = params["cutoff_hz"].to(dtype)
        high_pass = params["high_pass"]
        return butterworth_response(
            freqs.to(dtype), cutoff, high_pass, sr=self.sr, order=self.order
        )

    def extra_repr(self) -> str:
        return (
            f"sr={self.sr}, p={self.p}, low_pass_hz={self.low_pass_hz}, "
            f"high_pass_hz={self.high_pass_hz}, order={self.order}"
        )
