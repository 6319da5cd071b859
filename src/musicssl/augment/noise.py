"""Additive white noise at a signal-to-noise ratio drawn per example."""

from __future__ import annotations

import torch
from torch import Tensor

from musicssl.augment.base import Augmentation, Params, check_range, coin, rms, uniform


class WhiteNoise(Augmentation):
    """Add Gaussian white noise whose RMS sits ``snr_db`` below the example's RMS.

    The noise is scaled by its own measured RMS, so the output hits the drawn SNR exactly
    rather than on average. A silent example stays silent.

    Parameters: ``applied``, ``snr_db`` (shape (batch_size,)) and ``noise`` (standard normal
    noise before scaling, shape (batch_size, num_samples)).

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

    def sample_params(
        self,
        batch_size: int,
        num_input_samples: int,
        *,
        device: torch.device | str = "cpu",
        generator: torch.Generator | None = None,
    ) -> Params:
        applied = coin(self.p, batch_size, device=device, generator=generator)
        snr_db = uniform(
            self.min_snr_db, self.max_snr_db, batch_size, device=device, generator=generator
        )
        noise = torch.randn(batch_size, num_input_samples, device=device, generator=generator)
        return {"applied": applied, "snr_db": snr_db, "noise": noise}

    def apply(self, x: Tensor, params: Params) -> Tensor:
        noise = params["noise"]
        target_rms = rms(x.float()) * 10.0 ** (-params["snr_db"] / 20.0)
        scale = torch.where(params["applied"], target_rms / rms(noise).clamp_min(1e-12), 0.0)
        return torch.addcmul(x, noise.to(x.dtype), scale.to(x.dtype)[:, None])

    def extra_repr(self) -> str:
        return f"p={self.p}, min_snr_db={self.min_snr_db}, max_snr_db={self.max_snr_db}"
