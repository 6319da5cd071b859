"""Additive white noise at a signal-to-noise ratio drawn per example."""

from __future__ import annotations

import torch
from torch import Tensor

from musicssl.augment.base import (
    Augmentation,
    NoiseBank,
    Params,
    check_range,
    coin,
    compute_dtype,
    noise_offsets,
    rms,
    uniform,
)


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
