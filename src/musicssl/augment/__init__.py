"""Batched waveform augmentations with per-example parameters, on any device.

Each augmentation maps a (batch_size, num_samples) batch to ``(x_out, params)``; ``params``
holds what was drawn per example, including the ``applied`` coin flip. See ``base``.
"""

from musicssl.augment.base import Augmentation, Params
from musicssl.augment.chain import CHAINS, Compose, build_chain, chain_options, clmr_chain
from musicssl.augment.crop import RandomCrop
from musicssl.augment.delay import Delay
from musicssl.augment.filters import HighLowPass
from musicssl.augment.gain import Gain, PolarityInversion
from musicssl.augment.noise import WhiteNoise
from musicssl.augment.pitch import PitchShift
from musicssl.augment.reverb import Reverb

AUGMENTATIONS: dict[str, type[Augmentation]] = {
    cls.name: cls
    for cls in (
        RandomCrop,
        PolarityInversion,
        WhiteNoise,
        Gain,
        HighLowPass,
        Delay,
        PitchShift,
        Reverb,
    )
}

__all__ = [
    "AUGMENTATIONS",
    "Augmentation",
    "CHAINS",
    "Compose",
    "Delay",
    "Gain",
    "HighLowPass",
    "Params",
    "PitchShift",
    "PolarityInversion",
    "RandomCrop",
    "Reverb",
    "WhiteNoise",
    "build_chain",
    "chain_options",
    "clmr_chain",
]
