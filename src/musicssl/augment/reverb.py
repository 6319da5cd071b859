"""Reverb: convolution with a synthetic room impulse response drawn per example, on the device."""

from __future__ import annotations

import math

import torch
from torch import Tensor

from musicssl.augment.base import (
    Augmentation,
    Params,
    all_rows,
    check_range,
    coin,
    compute_dtype,
    fast_fft_length,
    padded_rows,
    uniform,
)
from musicssl.augment.filters import FILTER_RINGING_S, SpectralGain
from musicssl.augment.fused import fused
from musicssl.augment.noise import NoiseBank, noise_offsets
from musicssl.errors import MusicSSLError

# An exponential envelope exp(-LN_1000 t / rt60) has fallen by 60 dB at t = rt60.
LN_1000 = math.log(1000.0)


def impulse_response(
    low: Tensor,
    high: Tensor,
    *,
    sr: int,
    rt60: Tensor,
    damping: Tensor,
    pre_delay_s: Tensor,
    level: Tensor | None = None,
) -> Tensor:
    """Build reverb tails from white noise: exponential decay, faster in the treble.

    The noise comes split at about sr / 9 (see ``NoiseBank``'s bands); the low band decays to
    -60 dB in ``rt60``, the high band in ``rt60 * (1 - damping)``, the way air and walls absorb
    treble first. The tail starts after ``pre_delay_s``.

    Args:
        low: the noise's low band. Shape: (batch_size, ir_length).
        high: its high band. Shape: (batch_size, ir_length).
        sr: sample rate in Hz.
        rt60: decay time to -60 dB, in seconds. Shape: (batch_size,).
        damping: in [0, 1). Shape: (batch_size,).
        pre_delay_s: silence before the tail, in seconds. Shape: (batch_size,).
        level: L2 norm of each tail (1 if None). Shape: (batch_size,).

    Returns:
        Impulse responses. Shape: (batch_size, ir_length).
    """
    time = torch.arange(low.shape[-1], device=low.device, dtype=low.dtype) / sr
    # The low band's envelope exponent, -LN_1000 (t - pre_delay) / rt60, and -inf before the
    # pre-delay (exp makes that 0); the high band's is the same times 1 / (1 - damping).
    rate = LN_1000 / rt60
    exponent = torch.addcmul((rate * pre_delay_s)[:, None], time[None, :], -rate[:, None])
    exponent.masked_fill_(time[None, :] < pre_delay_s[:, None], -math.inf)
    high_envelope = exponent.mul(1 / (1 - damping)[:, None]).exp_()
    tail = low * exponent.exp_()
    tail.addcmul_(high, high_envelope)
    norm = tail.norm(dim=-1).clamp_min(1e-12)
    return tail.mul_((norm.reciprocal() if level is None else level / norm)[:, None])


# Compiled, the responses take one pass instead of one per operation: op by op the chain took
# 4-7% (preserve_tempo) and 6-8% (tape) longer (paired medians, bench/ab_augment.py).
@fused
def _mixing_responses(
    low_noise: Tensor,
    high_noise: Tensor,
    offset: Tensor,
    *,
    rt60: Tensor,
    damping: Tensor,
    pre_delay_s: Tensor,
    wet: Tensor,
    length: int,
    n_fft: int,
    sr: int,
) -> Tensor:
    """What each example is convolved with: ``(1 - wet) delta + wet h``, zero-padded to ``n_fft``.

    ``h`` is ``impulse_response`` of the noise bands' windows at ``offset`` (``length`` samples,
    read from the two bands' noise sequences, ``NoiseBank.sequence``) with unit norm. The dry
    share rides along as an impulse at time 0: ``(1 - wet) x + wet (x * h)`` is ``x``
    convolved with this, so the mix costs no pass over the audio.

    Shape: (N,), (N,), (B,) and (B,) each -> (B, n_fft).
    """
    low = low_noise.unfold(0, length, 1)[offset]
    high = high_noise.unfold(0, length, 1)[offset]
    ir = impulse_response(
        low, high, sr=sr, rt60=rt60, damping=damping, pre_delay_s=pre_delay_s, level=wet
    )
    ir[:, 0] += 1 - wet
    return torch.nn.functional.pad(ir, (0, n_fft - length))


class Reverb(Augmentation):
    """Mix each example with itself convolved by a synthetic impulse response.

    The impulse response is exponentially decaying white noise (see ``impulse_response``):
    a decay time ``rt60``, a treble ``damping``, and a ``room_size`` in [0, 1] that sets the
    pre-delay (up to ``max_pre_delay_ms``, the first reflection of a larger room arriving
    later). The output is ``(1 - wet) * x + wet * (x * h)``, as one batched FFT product with the
    dry share folded into the impulse response.

    The convolution is circular, over the shortest fast FFT length that holds the example and
    20 ms of silence (``fft_length``: 65536 samples for 59049): the tail that rings past the end
    comes round to the start, as if the excerpt were looped. An excerpt cut from inside a piece
    would start with the reverb of the music before it; the reverb of its own end stands in for
    that, where a linear convolution would start dry. It also makes the FFTs a fifth shorter
    than the 81920 points a linear convolution with a one-second tail needs. The period is never
    shorter than the impulse response, which is never cut.

    Parameters: ``applied``, ``rt60``, ``damping``, ``room_size``, ``wet`` and ``noise_offset``
    (where the tail's white noise starts in the fixed noise sequence, see ``NoiseBank``), each
    shape (batch_size,).

    CLMR draws sox's reverberance, HF damping and room scale uniformly in [0, 100] %; these
    ranges play the same roles.

    Args:
        sr: sample rate of the waveforms in Hz.
        p: probability of adding reverb (0.6 in CLMR).
        min_rt60: shortest decay time to -60 dB, in seconds.
        max_rt60: longest decay time; it sets the impulse response length.
        max_damping: damping is drawn from [0, max_damping], max_damping < 1.
        max_pre_delay_ms: pre-delay of the largest room.
        min_wet: lowest share of reverberated signal in the mix.
        max_wet: highest share.
    """

    name = "reverb"

    def __init__(
        self,
        *,
        sr: int,
        p: float = 0.6,
        min_rt60: float = 0.1,
        max_rt60: float = 1.0,
        max_damping: float = 0.7,
        max_pre_delay_ms: float = 20.0,
        min_wet: float = 0.1,
        max_wet: float = 0.5,
    ) -> None:
        super().__init__(p=p)
        check_range(min_rt60, max_rt60, "Reverb: [min_rt60, max_rt60]")
        check_range(min_wet, max_wet, "Reverb: [min_wet, max_wet]")
        if sr <= 0 or min_rt60 <= 0 or not 0 <= max_damping < 1 or max_pre_delay_ms < 0:
            raise MusicSSLError(
                "Reverb: need sr > 0, min_rt60 > 0, 0 <= max_damping < 1, max_pre_delay_ms >= 0; "
                f"got {sr}, {min_rt60}, {max_damping}, {max_pre_delay_ms}"
            )
        if not 0 <= min_wet <= max_wet <= 1:
            raise MusicSSLError(
                f"Reverb: wet shares must lie in [0, 1], got [{min_wet}, {max_wet}]"
            )
        self.sr = int(sr)
        self.rt60 = (float(min_rt60), float(max_rt60))
        self.max_damping = float(max_damping)
        self.max_pre_delay_s = float(max_pre_delay_ms) / 1000.0
        self.wet = (float(min_wet), float(max_wet))
        self.ir_length = math.ceil((max_rt60 + self.max_pre_delay_s) * sr)
        # Zeros after each example: room for a deferred filter's ringing (see ``Compose``).
        self.num_pad = math.ceil(FILTER_RINGING_S * sr)
        self.low_noise, self.high_noise = NoiseBank("low"), NoiseBank("high")

    def sample_params(
        self, batch_size: int, num_input_samples: int, *, generator: torch.Generator | None = None
    ) -> Params:
        applied = coin(self.p, batch_size, generator=generator)
        rt60 = uniform(*self.rt60, batch_size, generator=generator)
        damping = uniform(0.0, self.max_damping, batch_size, generator=generator)
        room_size = uniform(0.0, 1.0, batch_size, generator=generator)
        wet = uniform(*self.wet, batch_size, generator=generator)
        noise_offset = noise_offsets(batch_size, generator=generator)
        return {
            "applied": applied,
            "rt60": rt60,
            "damping": damping,
            "room_size": room_size,
            "wet": wet,
            "noise_offset": noise_offset,
        }

    def fft_length(self, num_samples: int) -> int:
        """The period of the circular convolution for examples of ``num_samples`` samples."""
        return fast_fft_length(max(num_samples + self.num_pad, self.ir_length))

    def apply_all(self, x: Tensor, params: Params, *, gain: SpectralGain | None = None) -> Tensor:
        return self.apply_rows(x, all_rows(x), params, gain=gain)

    def apply_rows(
        self, x: Tensor, rows: Tensor, params: Params, *, gain: SpectralGain | None = None
    ) -> Tensor:
        num_samples = x.shape[-1]
        dtype = compute_dtype(x)
        n_fft = self.fft_length(num_samples)
        ir = _mixing_responses(
            self.low_noise.sequence(self.ir_length, device=x.device, dtype=dtype),
            self.high_noise.sequence(self.ir_length, device=x.device, dtype=dtype),
            params["noise_offset"],
            rt60=params["rt60"].to(dtype),
            damping=params["damping"].to(dtype),
            pre_delay_s=params["room_size"].to(dtype) * self.max_pre_delay_s,
            wet=params["wet"].to(dtype),
            length=self.ir_length,
            n_fft=n_fft,
            sr=self.sr,
        )
        spectrum = torch.fft.rfft(padded_rows(x, rows, n_fft, dtype=dtype))
        spectrum.mul_(torch.fft.rfft(ir))
        if gain is not None:  # a filter the first examples owe
            gains = gain(n_fft, dtype)
            torch.view_as_real(spectrum[: gains.shape[0]]).view(gains.shape).mul_(gains)
        return torch.fft.irfft(spectrum, n=n_fft)[:, :num_samples].to(x.dtype)

    def extra_repr(self) -> str:
        return (
            f"sr={self.sr}, p={self.p}, rt60={self.rt60}, max_damping={self.max_damping}, "
            f"max_pre_delay_s={self.max_pre_delay_s}, wet={self.wet}"
        )
