"""White noise: the fixed noise sequence noisy transforms read, and additive white noise at a
signal-to-noise ratio drawn per example."""

from __future__ import annotations

import math

import torch
from torch import Tensor

from musicssl.augment.base import (
    Augmentation,
    Params,
    check_range,
    coin,
    compute_dtype,
    uniform,
)
from musicssl.errors import MusicSSLError

# Period of the fixed white-noise sequence that noisy transforms read windows of (12 s at
# 22.05 kHz); a window starts at one of this many offsets.
NOISE_PERIOD = 2**18
NOISE_BANDS = ("full", "low", "high")


class NoiseBank:
    """Windows of one fixed stretch of standard normal white noise, at per-example offsets.

    Noisy transforms draw an offset per example instead of the noise itself: parameters stay a
    few numbers per example, drawn on the host for every example, and nothing the size of the
    audio is drawn or copied to the device per call. The noise repeats every ``NOISE_PERIOD``
    samples, which gives that many distinct windows; it is drawn once from a fixed seed, so it
    is the same on every device. Pickling drops the cached copies.

    Args:
        band: ``"full"`` (the white noise), ``"low"`` (its moving average over 4 samples, a
            gentle low-pass with its -3 dB point near sr / 9) or ``"high"`` (full minus low).
            The same offset gives windows of the same noise in each band.
    """

    def __init__(self, band: str = "full") -> None:
        if band not in NOISE_BANDS:
            raise MusicSSLError(f"NoiseBank: band must be one of {NOISE_BANDS}, got {band!r}")
        self.band = band
        self._noise: dict[tuple[torch.device, torch.dtype], Tensor] = {}

    def windows(self, offset: Tensor, length: int, *, dtype: torch.dtype) -> Tensor:
        """Noise windows ``noise[offset[i] : offset[i] + length]``.

        Args:
            offset: start of each window, in [0, NOISE_PERIOD). Shape: (num_examples,), int64.
            length: samples per window.
            dtype: floating-point type of the result.

        Returns:
            Standard normal noise. Shape: (num_examples, length).
        """
        noise = self.sequence(length, device=offset.device, dtype=dtype)
        return noise.unfold(0, length, 1)[offset]  # a view of every window, then a gather

    def sequence(self, length: int, *, device: torch.device, dtype: torch.dtype) -> Tensor:
        """The noise itself, long enough for a window of ``length`` at every offset.

        Shape: (at least NOISE_PERIOD + length - 1,). Read only: it is cached.
        """
        key = (torch.device(device), dtype)
        noise = self._noise.get(key)
        needed = NOISE_PERIOD + length - 1
        if noise is None or noise.shape[0] < needed:
            period = torch.randn(NOISE_PERIOD, generator=torch.Generator().manual_seed(0))
            if self.band != "full":
                # Around the period, so that windows across its end average what precedes.
                low = (period + period.roll(1) + period.roll(2) + period.roll(3)) / 4
                period = low if self.band == "low" else period - low
            repeats = math.ceil(needed / NOISE_PERIOD)
            # Once per device and dtype; without waiting for the device, like every copy here.
            noise = period.repeat(repeats)[:needed].to(device, dtype, non_blocking=True)
            self._noise[key] = noise
        return noise

    def __getstate__(self) -> dict:
        return {"band": self.band}

    def __setstate__(self, state: dict) -> None:
        self.band = state.get("band", "full")
        self._noise = {}


def noise_offsets(batch_size: int, *, generator: torch.Generator | None) -> Tensor:
    """Per-example starts of ``NoiseBank`` windows. Shape: (batch_size,), int64."""
    return torch.randint(NOISE_PERIOD, (batch_size,), generator=generator)


def rms(x: Tensor) -> Tensor:
    """Root mean square over time. Shape: (..., num_samples) -> (...,)."""
    # A norm, not square().mean(): no temporary the size of x.
    return torch.linalg.vector_norm(x, dim=-1) / math.sqrt(x.shape[-1])


class WhiteNoise(Augmentation):
    """Add Gaussian white noise whose RMS sits ``snr_db`` below the example's RMS.

    The noise is scaled by its own measured RMS, so the output hits the drawn SNR exactly
    rather than on average. A silent example stays silent. Each example's noise is a window of
    a fixed noise sequence (see ``NoiseBank``) starting at its ``noise_offset``.

    Parameters: ``applied``, ``snr_db`` (float32) and ``noise_offset`` (int64), each shape
    (batch_size,).

    Args:
        p: probability of adding noise (0.01 in CLMR).
        min_snr_db: lowest SNR in dB. CLMR draws a noise-to-signal amplitude ratio in
            [1e-4, 1e-2], that is an SNR in [40, 80] dB; here the SNR is uniform in dB.
        max_snr_db: highest SNR in dB.
    """

    name = "white_noise"

    def __init__(self, *, p: float = 0.01, min_snr_db: float = 40.0, max_snr_db: float = 80.0):
        super().__init__(p=p)
        check_range(min_snr_db, max_snr_db, "WhiteNoise: [min_snr_db, max_snr_db]")
        self.min_snr_db = float(min_snr_db)
        self.max_snr_db = float(max_snr_db)
        self.noise = NoiseBank()

    def sample_params(
        self, batch_size: int, num_input_samples: int, *, generator: torch.Generator | None = None
    ) -> Params:
        applied = coin(self.p, batch_size, generator=generator)
        snr_db = uniform(self.min_snr_db, self.max_snr_db, batch_size, generator=generator)
        noise_offset = noise_offsets(batch_size, generator=generator)
        return {"applied": applied, "snr_db": snr_db, "noise_offset": noise_offset}

    def apply_all(self, x: Tensor, params: Params) -> Tensor:
        dtype = compute_dtype(x)
        noise = self.noise.windows(params["noise_offset"], x.shape[-1], dtype=dtype)
        target_rms = rms(x.to(dtype)) * 10.0 ** (-params["snr_db"].to(dtype) / 20.0)
        scale = target_rms / rms(noise).clamp_min(1e-12)
        return torch.addcmul(x, noise.to(x.dtype), scale.to(x.dtype)[:, None])

    def extra_repr(self) -> str:
        return f"p={self.p}, min_snr_db={self.min_snr_db}, max_snr_db={self.max_snr_db}"
