"""Chains of augmentations, and CLMR's default chain."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any, cast

import torch
from torch import Tensor, nn

from musicssl.augment.base import Augmentation, Params, check_generator, check_waveform
from musicssl.augment.crop import RandomCrop
from musicssl.augment.delay import Delay
from musicssl.augment.filters import HighLowPass, OwedFilter
from musicssl.augment.gain import Gain, PolarityInversion
from musicssl.augment.noise import WhiteNoise
from musicssl.augment.pitch import PitchShift
from musicssl.augment.reverb import Reverb
from musicssl.errors import MusicSSLError
from musicssl.options import typed_options

# Linear time-invariant transforms: a zero-phase filter commutes with them, and moves past them.
FILTER_COMMUTES_WITH = (PolarityInversion, Gain, Delay)
# Transforms that compute an FFT of their examples anyway and multiply a filter's gains into it
# (``apply_rows(..., gain=...)``).
FILTER_RIDES_ON = (PitchShift, Reverb)


class Compose(nn.Module):
    """Apply augmentations one after the other, each with its own per-example coin flips.

    ``forward`` returns the output and every transform's parameters, keyed by the transform's
    ``name`` (with ``_1``, ``_2``, ... appended when a name repeats), in chain order.

    The high/low-pass (zero-phase) is deferred: it moves past the linear time-invariant
    transforms that follow it (``FILTER_COMMUTES_WITH``), and the next transform that computes
    an FFT of the examples anyway (``FILTER_RIDES_ON``) applies it inside that FFT. Only the
    examples that meet no such transform are filtered on their own, before the first transform
    the filter cannot pass or at the end. The result is the transforms run in turn but for the
    filter's ringing at the edges: at the start and end of each example and around an echo's
    onset (filtered before it is delayed, an echo has no pre-ringing), which a reverb then
    spreads. It stays more than 40 dB down. This saves the filter's own pair of FFTs for most
    examples: run in turn, the chain took 14% (preserve_tempo) and 16% (tape) longer (paired
    medians of 60 rounds, ``bench/ab_augment.py``).

    The caller's batch is never written to. Once a transform has returned new memory, the
    chain owns it and the next transforms write their results into it (``overwrite``), unless
    autograd is recording it. Copying every batch instead took the chain 12% (preserve_tempo)
    and 15% (tape) longer.

    Args:
        transforms: the augmentations, in the order they apply.
    """

    def __init__(self, transforms: Sequence[Augmentation]) -> None:
        super().__init__()
        if not transforms:
            raise MusicSSLError("Compose: needs at least one augmentation")
        for transform in transforms:
            if not isinstance(transform, Augmentation):
                raise MusicSSLError(f"Compose: {transform!r} is not an Augmentation")
        self.transforms = nn.ModuleList(transforms)
        self.keys: list[str] = []
        for transform in transforms:
            key, copy = transform.name, 0
            while key in self.keys:
                copy += 1
                key = f"{transform.name}_{copy}"
            self.keys.append(key)

    def forward(
        self, x: Tensor, *, generator: torch.Generator | None = None
    ) -> tuple[Tensor, dict[str, Params]]:
        """Run the chain.

        Args:
            x: waveforms. Shape: (batch_size, num_samples).
            generator: random source, a CPU generator whatever ``x``'s device (parameters are
                drawn on the host); None uses torch's global CPU one.

        Returns:
            The augmented waveforms, shape (batch_size, num_output_samples), and
            ``{key: params}`` for every transform (CPU tensors).
        """
        check_waveform(x, "Compose")
        check_generator(generator, "Compose")
        all_params: dict[str, Params] = {}

        def draw(key: str, transform: Augmentation, x: Tensor) -> Params:
            params = transform.sample_params(x.shape[0], x.shape[-1], generator=generator)
            all_params[key] = params
            return params

        return self._run(x, draw), all_params

    def apply(  # type: ignore[override]  # not nn.Module.apply
        self, x: Tensor, params: dict[str, Params]
    ) -> Tensor:
        """Replay a chain with recorded parameters (as returned by ``forward``)."""
        check_waveform(x, "Compose")
        return self._run(x, lambda key, transform, x: params[key])

    def _run(self, x: Tensor, params_of: Callable[[str, Augmentation, Tensor], Params]) -> Tensor:
        """The transforms in turn, the filter deferred as the class says."""
        chain = _Run(x)
        for key, transform in zip(self.keys, cast("list[Augmentation]", self.transforms)):
            params = params_of(key, transform, chain.x)
            if isinstance(transform, HighLowPass):
                chain.pay_owed()
                chain.owed = OwedFilter(transform, params) if params["applied"].any() else None
            elif chain.owed is not None and isinstance(transform, FILTER_RIDES_ON):
                chain.step(transform, params, owed=chain.owed)
                chain.owed = chain.owed.paid_by(params["applied"])
            else:
                if not isinstance(transform, FILTER_COMMUTES_WITH):
                    chain.pay_owed()
                chain.step(transform, params)
        chain.pay_owed()
        return chain.x


class _Run:
    """A chain's batch as it goes, whether the chain owns it, and the filter it still owes."""

    def __init__(self, x: Tensor) -> None:
        self.x = x
        self.ours = False
        self.owed: OwedFilter | None = None

    def step(
        self, transform: Augmentation, params: Params, *, owed: OwedFilter | None = None
    ) -> None:
        """Apply one transform (through ``owed``, if given)."""
        overwrite = self.ours and not self.x.requires_grad
        if owed is None:
            y = transform.apply(self.x, params, overwrite=overwrite)
        else:
            y = owed.apply_through(transform, self.x, params, overwrite=overwrite)
        self.ours = (
            self.ours or y.untyped_storage().data_ptr() != self.x.untyped_storage().data_ptr()
        )
        self.x = y

    def pay_owed(self) -> None:
        """Filter the examples that still owe it, on their own."""
        if self.owed is not None:
            self.step(self.owed.transform, self.owed.params)
            self.owed = None


def clmr_chain(
    sr: int,
    *,
    num_samples: int | None = 59049,
    pitch_kind: str = "preserve_tempo",
    max_semitones: float = 5.0,
    p_polarity: float = 0.8,
    p_noise: float = 0.01,
    p_gain: float = 0.3,
    p_filter: float = 0.8,
    p_delay: float = 0.3,
    p_pitch: float = 0.6,
    p_reverb: float = 0.6,
) -> Compose:
    """CLMR's augmentation chain (Spijkervet & Burgoyne, 2021, "Contrastive Learning of
    Musical Representations"), with its probabilities and ranges as defaults.

    Random crop, polarity inversion, white noise, gain, high/low-pass, delay, pitch shift and
    reverb, in that order. CLMR's code shifts pitch by up to 7 semitones; 5 is the default here.

    Args:
        sr: sample rate of the waveforms in Hz.
        num_samples: crop length (59049 samples, about 2.7 s at 22.05 kHz); None leaves the
            crop out, for inputs the sampler has already cut to length.
        pitch_kind: ``"preserve_tempo"`` or ``"tape"`` (see ``PitchShift``).
        max_semitones: largest pitch shift either way.
        p_polarity: probability of polarity inversion.
        p_noise: probability of white noise.
        p_gain: probability of a gain change.
        p_filter: probability of a high- or low-pass filter.
        p_delay: probability of an echo.
        p_pitch: probability of a pitch shift.
        p_reverb: probability of reverb.

    Returns:
        The chain; call it on a (batch_size, num_samples) batch, once per view.
    """
    transforms: list[Augmentation] = [] if num_samples is None else [RandomCrop(num_samples)]
    transforms += [
        PolarityInversion(p=p_polarity),
        WhiteNoise(p=p_noise),
        Gain(p=p_gain),
        HighLowPass(sr=sr, p=p_filter),
        Delay(sr=sr, p=p_delay),
        PitchShift(sr=sr, p=p_pitch, max_semitones=max_semitones, kind=pitch_kind),
        Reverb(sr=sr, p=p_reverb),
    ]
    return Compose(transforms)


class _NoAugmentation(nn.Module):
    """The identity, for ablations and tests: ``(x, {})``."""

    def forward(
        self, x: Tensor, *, generator: torch.Generator | None = None
    ) -> tuple[Tensor, dict[str, Params]]:
        return x, {}


def no_chain(sr: int, *, num_samples: int | None = None) -> nn.Module:
    """No augmentation (the chain ``none``). Like ``clmr_chain`` it is given the sample rate and
    a crop length, and it takes no options."""
    return _NoAugmentation()


# A recipe's ``augment.name`` -> factory(sr, *, num_samples, **options). The sampler has
# already cut crops to length, so ``build_chain`` passes no crop length and the recipe's
# options are the factory's other arguments.
CHAINS: dict[str, Callable[..., nn.Module]] = {"clmr": clmr_chain, "none": no_chain}


def build_chain(name: str, /, *, sr: int, **options: Any) -> nn.Module:
    """The augmentation chain a recipe names (``CHAINS``), for waveforms at ``sr`` Hz.

    Raises:
        MusicSSLError: as ``chain_options`` says.
    """
    options = chain_options(name, options)  # first: it refuses an unknown name
    return CHAINS[name](sr, num_samples=None, **options)


def chain_options(name: str, options: Mapping[str, Any]) -> dict[str, Any]:
    """``options`` for the chain ``name``, each read as the type of the argument it sets.

    Raises:
        MusicSSLError: ``name`` is not in ``CHAINS``, or an option is not one the chain takes
            (``none`` takes none), or not of its type.
    """
    if name not in CHAINS:
        raise MusicSSLError(f"unknown augmentation chain {name!r}; choose one of {sorted(CHAINS)}")
    given = ("sr", "num_samples")
    return typed_options(f"chain {name}", "augment.options", CHAINS[name], options, given=given)
