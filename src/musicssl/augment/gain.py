"""Amplitude transforms: polarity inversion and gain.

Both are one multiplication by a per-example factor, cheaper for the whole batch than gathering
the applied examples, so they override ``apply`` and give untouched examples a factor of one.
"""

from __future__ import annotations

import torch
from torch import Tensor

from musicssl.augment.base import Augmentation, Params, check_range, coin, uniform


def scale_rows(x: Tensor, scale: Tensor, *, overwrite: bool) -> Tensor:
    """Each example times its own factor, in place if ``overwrite``.

    Shapes: (batch_size, num_samples), (batch_size,).
    """
    factor = scale.to(x.device, x.dtype, non_blocking=True)[:, None]
    return x.mul_(factor) if overwrite else x * factor


class PolarityInversion(Augmentation):
    """Multiply the waveform by -1 where applied. Parameters: ``applied`` only.

    Args:
        p: probability of inverting an example (0.8 in CLMR).
    """

    name = "polarity_inversion"

    def __init__(self, *, p: float = 0.8) -> None:
        super().__init__(p=p)

    def sample_params(
        self, batch_size: int, num_input_samples: int, *, generator: torch.Generator | None = None
    ) -> Params:
        return {"applied": coin(self.p, batch_size, generator=generator)}

    def apply_all(self, x: Tensor, params: Params) -> Tensor:
        return -x

    def apply(  # type: ignore[override]  # not nn.Module.apply
        self, x: Tensor, params: Params, *, overwrite: bool = False
    ) -> Tensor:
        return scale_rows(x, 1.0 - 2.0 * params["applied"].float(), overwrite=overwrite)


class Gain(Augmentation):
    """Scale each example by a gain drawn uniformly in decibels.

    Parameters: ``applied`` and ``gain_db`` (float32, shape (batch_size,)).

    Args:
        p: probability of applying the gain (0.3 in CLMR).
        min_db: lowest gain in dB. CLMR's code draws from [-20, -1] dB.
        max_db: highest gain in dB.
    """

    name = "gain"

    def __init__(self, *, p: float = 0.3, min_db: float = -20.0, max_db: float = -1.0) -> None:
        super().__init__(p=p)
        check_range(min_db, max_db, "Gain: [min_db, max_db]")
        self.min_db = float(min_db)
        self.max_db = float(max_db)

    def sample_params(
        self, batch_size: int, num_input_samples: int, *, generator: torch.Generator | None = None
    ) -> Params:
        applied = coin(self.p, batch_size, generator=generator)
        gain_db = uniform(self.min_db, self.max_db, batch_size, generator=generator)
        return {"applied": applied, "gain_db": gain_db}

    def apply_all(self, x: Tensor, params: Params) -> Tensor:
        return x * (10.0 ** (params["gain_db"] / 20.0)).to(x.dtype)[:, None]

    def apply(  # type: ignore[override]  # not nn.Module.apply
        self, x: Tensor, params: Params, *, overwrite: bool = False
    ) -> Tensor:
        scale = torch.where(params["applied"], 10.0 ** (params["gain_db"] / 20.0), 1.0)
        return scale_rows(x, scale, overwrite=overwrite)

    def extra_repr(self) -> str:
        return f"p={self.p}, min_db={self.min_db}, max_db={self.max_db}"
