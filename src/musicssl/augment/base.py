"""Shared plumbing of the batched waveform augmentations: the base class and the random draws.

Every augmentation follows one convention:

- ``sample_params(batch_size, num_input_samples, *, generator)`` draws one set of parameters per
  example on the host, from a CPU ``torch.Generator``, as a dict of CPU tensors whose first axis
  is the batch; it always holds ``applied``, the per-example coin flip (True where the
  transform takes effect). Values are drawn for every example; they take effect only where
  ``applied`` is True. Parameters are small (a few numbers per example; noise is read from a
  fixed noise sequence at a drawn offset, see ``NoiseBank``), so the same seed gives the same
  parameters on every device.
- ``apply(x, params)`` is a pure function of the waveforms and those parameters. Because
  ``applied`` lives on the host, it knows without asking the device which examples to
  transform: it moves their parameters to ``x``'s device (``non_blocking``), runs
  ``apply_all`` on them alone (``apply_rows``: gathered, or read straight into a transform's
  own buffer) and scatters the results back. Examples left alone come back
  bit-exact, and a transform with p = 0.3 costs about 0.3 of one with p = 1. With
  ``overwrite=True`` the results are scattered into ``x`` itself instead of a copy of it:
  ``Compose`` passes it for the intermediate batches it made, never for its caller's.
- A zero-phase filter (``SpectralFilter``: a real gain per frequency) commutes with every linear
  time-invariant transform, so ``Compose`` may defer it to the next transform that computes
  an FFT of the examples anyway (``takes_gain``): that transform multiplies its input's
  spectrum by the filter's gains (``apply_all(..., gain=...)``) and the filter's own pair of
  FFTs is saved.
- ``forward(x, *, generator=None)`` does both and returns ``(x_out, params)``, so an objective
  that must know what was done (a pitch-equivariant loss, say) reads it from ``params``
  (moving it to its device first).

Nothing here loops over single examples, reads device memory on the host or branches on the
values of device tensors, so the same code runs on CPU and CUDA without synchronising: the only
branches are on host-side parameters.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from musicssl.augment.fused import fused
from musicssl.errors import MusicSSLError

Params = dict[str, Tensor]

# Gains of a deferred filter for the rfft of n_fft points, for the first m examples an
# ``apply_all`` transforms (the others owe nothing): (n_fft, dtype) -> shape (m, n_fft + 2),
# laid out as ``view_as_real`` of the spectrum (each bin's gain twice, for its real and
# imaginary parts).
SpectralGain = Callable[[int, torch.dtype], Tensor]

# Period of the fixed white-noise sequence that noisy transforms read windows of (12 s at
# 22.05 kHz); a window starts at one of this many offsets.
NOISE_PERIOD = 2**18
NOISE_BANDS = ("full", "low", "high")
# Silence after each example in an FFT buffer that a high/low-pass filter multiplies: room for
# the filter's (two-sided, short) impulse response to ring out without wrapping round.
FILTER_RINGING_S = 0.02


class Augmentation(nn.Module):
    """A random transform of a batch of waveforms with per-example parameters.

    Subclasses set ``name`` and implement ``sample_params`` and ``apply_all``. One whose work
    is a single elementwise pass (a per-example gain) may override ``apply`` instead, for which
    gathering the applied examples would cost more than transforming them all.

    Args:
        p: probability of applying the transform, drawn independently per example.
    """

    name: ClassVar[str] = "augmentation"
    # What a chain may do with a filter it defers (see ``Compose``): move it past this
    # transform (linear and time-invariant: a filter commutes with it), or hand it to this
    # transform's ``apply_all`` as ``gain``, to apply inside its own FFT.
    linear_time_invariant: ClassVar[bool] = False
    takes_gain: ClassVar[bool] = False

    def __init__(self, *, p: float) -> None:
        super().__init__()
        self.p = check_probability(p, f"{type(self).__name__}: p")

    def sample_params(
        self, batch_size: int, num_input_samples: int, *, generator: torch.Generator | None = None
    ) -> Params:
        """Draw the parameters of every example on the host.

        Args:
            batch_size: number of examples.
            num_input_samples: length of the waveforms the parameters are for.
            generator: a CPU generator; None uses torch's global CPU one.

        Returns:
            CPU tensors, each of shape (batch_size, ...), ``applied`` among them.
        """
        raise NotImplementedError

    def apply_all(self, x: Tensor, params: Params) -> Tensor:
        """Transform every example of ``x``.

        Transforms with ``takes_gain`` also accept ``gain`` (a ``SpectralGain``, or None): a
        filter the first examples owe, to multiply the spectrum of their input by first.

        Args:
            x: the examples to transform. Shape: (num_examples, num_samples).
            params: their parameters but ``applied`` (every example here is), on ``x``'s
                device. Each of shape (num_examples, ...).

        Returns:
            The transformed examples, a new tensor of ``x``'s shape and dtype.
        """
        raise NotImplementedError

    def apply_rows(self, x: Tensor, rows: Tensor, params: Params, **extra: SpectralGain) -> Tensor:
        """``apply_all`` of the examples ``rows`` picks from ``x``, as ``apply`` calls it.

        Transforms that copy their input into a buffer of their own (zero-padded for an FFT)
        override this to read the rows straight into it (``padded_rows``), and their
        ``apply_all`` reads every row.

        Args:
            x: the whole batch. Shape: (batch_size, num_samples).
            rows: the examples to transform, on ``x``'s device. Shape: (num_examples,), int64.
            params: their parameters, as ``apply_all`` takes them.
            extra: ``gain``, for transforms that take one.

        Returns:
            The transformed examples. Shape: (num_examples, num_samples).
        """
        return self.apply_all(x[rows], params, **extra)

    def apply(
        self,
        x: Tensor,
        params: Params,
        *,
        overwrite: bool = False,
        owed: OwedFilter | None = None,
    ) -> Tensor:
        """Transform the examples whose ``applied`` flag is set; the others pass unchanged.

        Args:
            x: waveforms. Shape: (batch_size, num_samples).
            params: as drawn by ``sample_params`` (CPU tensors of shape (batch_size, ...)).
            overwrite: the caller is done with ``x``: write the results into it rather than
                into a copy (one pass over the batch fewer).
            owed: a filter some examples still owe (only for ``takes_gain`` transforms): the
                examples this transform applies to get it inside its FFT.

        Returns:
            The waveforms, shape (batch_size, num_samples): ``x`` itself when no example is
            applied, and may be with ``overwrite``; a new tensor otherwise.
        """
        index = applied_index(params, x.shape[0], type(self).__name__)
        num_applied = index.numel()
        if num_applied == 0:
            return x
        extra = {}
        if owed is not None:
            # The examples that owe the filter first: their gains apply to the first rows.
            owes = owed.params["applied"][index]
            index = torch.cat([index[owes], index[~owes]])
            if owes.any():
                extra["gain"] = owed.gain(index[: int(owes.sum())], x.device)
        elif num_applied == x.shape[0]:
            return self.apply_all(x, to_device(params, x.device))
        chosen = {name: value[index] for name, value in params.items()}
        index = index.to(x.device, non_blocking=True)
        # index_copy_ in place, not index_copy: on CPU it ran 2-3x as fast for a (96, 59049)
        # batch, as indexing (in apply_rows) did against index_select.
        y = self.apply_rows(x, index, to_device(chosen, x.device), **extra)
        return (x if overwrite else x.clone()).index_copy_(0, index, y)

    def forward(
        self, x: Tensor, *, generator: torch.Generator | None = None
    ) -> tuple[Tensor, Params]:
        """Draw parameters and apply them.

        Args:
            x: waveforms, on any device. Shape: (batch_size, num_samples).
            generator: random source, a CPU generator whatever ``x``'s device; None uses torch's
                global CPU one.

        Returns:
            The transformed waveforms, shape (batch_size, num_output_samples) (the input length
            for all but cropping), and the parameters drawn, CPU tensors each of shape
            (batch_size, ...).
        """
        check_waveform(x, type(self).__name__)
        check_generator(generator, type(self).__name__)
        params = self.sample_params(x.shape[0], x.shape[-1], generator=generator)
        return self.apply(x, params), params

    def extra_repr(self) -> str:
        return f"p={self.p}"


class SpectralFilter(Augmentation):
    """A zero-phase filter: a real gain per frequency bin of each example's spectrum.

    It commutes with linear time-invariant transforms, and a transform that computes an FFT of
    the examples anyway can apply it in passing (see ``Compose``).
    """

    linear_time_invariant = True

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
        raise NotImplementedError


class OwedFilter:
    """A filter some examples of a batch still owe: the ones its ``params['applied']`` flags."""

    def __init__(self, transform: SpectralFilter, params: Params) -> None:
        self.transform = transform
        self.params = params

    def gain(self, index: Tensor, device: torch.device) -> SpectralGain:
        """The gains of the examples ``index`` picks, for ``apply_all``."""
        chosen = to_device({name: value[index] for name, value in self.params.items()}, device)
        return lambda n_fft, dtype: self.transform.spectral_gain(chosen, n_fft, dtype=dtype)

    def paid_by(self, applied: Tensor) -> OwedFilter | None:
        """What is still owed once the examples ``applied`` flags have had the filter."""
        left = self.params["applied"] & ~applied
        return OwedFilter(self.transform, {**self.params, "applied": left}) if left.any() else None


def applied_index(params: Params, batch_size: int, who: str) -> Tensor:
    """Indices of the examples to transform, read on the host. Shape: (num_applied,), int64."""
    applied = params["applied"]
    if applied.device.type != "cpu" or applied.shape != (batch_size,):
        raise MusicSSLError(
            f"{who}: params['applied'] must be a CPU tensor of shape ({batch_size},), got "
            f"{tuple(applied.shape)} on {applied.device}; parameters stay on the host"
        )
    return applied.nonzero().view(-1)


def to_device(params: Params, device: torch.device) -> Params:
    """Parameters copied to ``device`` without waiting for it (small host tensors).

    All but ``applied``, which ``apply_all`` never reads (every example it gets is applied).
    """
    return {
        name: value.to(device, non_blocking=True)
        for name, value in params.items()
        if name != "applied"
    }


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
                low = sum(period.roll(lag) for lag in range(4)) / 4
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


def check_probability(p: float, what: str) -> float:
    if not 0.0 <= float(p) <= 1.0:
        raise MusicSSLError(f"{what} must be a probability in [0, 1], got {p}")
    return float(p)


def check_range(low: float, high: float, what: str) -> None:
    if not low <= high:
        raise MusicSSLError(f"{what}: the range must satisfy min <= max, got [{low}, {high}]")


def check_waveform(x: Tensor, who: str) -> None:
    if not isinstance(x, Tensor) or x.ndim != 2 or x.shape[0] == 0 or x.shape[1] == 0:
        shape = tuple(x.shape) if isinstance(x, Tensor) else type(x).__name__
        raise MusicSSLError(f"{who}: expected a waveform batch of shape (batch, time), got {shape}")
    if not x.is_floating_point():
        raise MusicSSLError(f"{who}: expected floating-point waveforms, got dtype {x.dtype}")


def check_generator(generator: torch.Generator | None, who: str) -> None:
    if generator is not None and torch.device(generator.device).type != "cpu":
        raise MusicSSLError(
            f"{who}: the generator lives on {generator.device}, but parameters are drawn on the "
            "host whatever the waveforms' device; create it with torch.Generator() (CPU)"
        )


def coin(p: float, batch_size: int, *, generator: torch.Generator | None) -> Tensor:
    """Per-example coin flips on the host, True with probability ``p``. Shape: (batch_size,)."""
    # rand is in [0, 1): p=0 never applies and p=1 always does.
    return torch.rand(batch_size, generator=generator) < p


def uniform(
    low: float, high: float, batch_size: int, *, generator: torch.Generator | None
) -> Tensor:
    """Per-example draws from U[low, high) on the host. Shape: (batch_size,), float32."""
    u = torch.rand(batch_size, generator=generator)
    return low + (high - low) * u


def noise_offsets(batch_size: int, *, generator: torch.Generator | None) -> Tensor:
    """Per-example starts of ``NoiseBank`` windows. Shape: (batch_size,), int64."""
    return torch.randint(NOISE_PERIOD, (batch_size,), generator=generator)


def rms(x: Tensor) -> Tensor:
    """Root mean square over time. Shape: (..., num_samples) -> (...,)."""
    # A norm, not square().mean(): no temporary the size of x.
    return torch.linalg.vector_norm(x, dim=-1) / math.sqrt(x.shape[-1])


def compute_dtype(x: Tensor) -> torch.dtype:
    """FFTs and phase arithmetic need at least float32: half-precision inputs are promoted."""
    return torch.float64 if x.dtype == torch.float64 else torch.float32


@fused
def padded_rows(
    x: Tensor, rows: Tensor, length: int, *, mirrored: int = 0, dtype: torch.dtype
) -> Tensor:
    """The examples ``rows`` picks, each followed by ``mirrored`` samples of its mirror image
    (its samples before the last, backwards) and zeros up to ``length``: an FFT buffer, in one
    pass over the batch (gathering the rows and then copying them into a buffer took two).

    ``mirrored`` < num_samples and num_samples + mirrored <= length.
    Shape: (B, num_samples), (R,) -> (R, length), of ``dtype``.
    """
    picked = x[rows].to(dtype)
    num_samples = x.shape[-1]
    mirror = picked[:, num_samples - 1 - mirrored : num_samples - 1].flip(-1)
    return F.pad(torch.cat([picked, mirror], dim=1), (0, length - num_samples - mirrored))


def all_rows(x: Tensor) -> Tensor:
    """Indices of every example of ``x``, for ``apply_rows``. Shape: (batch_size,), int64."""
    return torch.arange(x.shape[0], device=x.device)


def fast_fft_length(n: int) -> int:
    """The smallest 2^a m >= n with m in {1, 3, 5}: FFT lengths that are fast everywhere.

    Other 5-smooth lengths, though a little shorter, are slower on CPU: a real transform of
    60000 = 2^5 3 5^4 samples took 1.5x as long as one of 65536, and one of 61440 = 2^12 15
    1.5x as long too.
    """
    return min((m << max(0, (-(-n // m) - 1).bit_length())) for m in (1, 3, 5))
