"""Shared plumbing of the batched waveform augmentations: the base class and the random draws.

Every augmentation follows one convention:

- ``sample_params(batch_size, num_input_samples, *, device, generator)`` draws one set of
  parameters per example, as a dict of tensors whose first axis is the batch; it always holds
  ``applied``, the per-example coin flip (True where the transform takes effect). Values are
  drawn for every example; they take effect only where ``applied`` is True.
- ``apply(x, params)`` is a pure function of the waveforms and those parameters.
- ``forward(x, *, generator=None)`` does both and returns ``(x_out, params)``, so an objective
  that must know what was done (a pitch-equivariant loss, say) reads it from ``params``.

Nothing here loops over examples, moves data to the host or branches on tensor values, so the
same code runs on CPU and CUDA without synchronising.
"""

from __future__ import annotations

import math
from typing import ClassVar

import torch
from torch import Tensor, nn

from musicssl.errors import MusicSSLError

Params = dict[str, Tensor]


class Augmentation(nn.Module):
    """A random transform of a batch of waveforms with per-example parameters.

    Subclasses set ``name`` and implement ``sample_params`` and ``apply``.

    Args:
        p: probability of applying the transform, drawn independently per example.
    """

    name: ClassVar[str] = "augmentation"

    def __init__(self, *, p: float) -> None:
        super().__init__()
        self.p = check_probability(p, f"{type(self).__name__}: p")

    def sample_params(
        self,
        batch_size: int,
        num_input_samples: int,
        *,
        device: torch.device | str = "cpu",
        generator: torch.Generator | None = None,
    ) -> Params:
        """Draw the parameters of every example. Each tensor has shape (batch_size, ...)."""
        raise NotImplementedError

    def apply(self, x: Tensor, params: Params) -> Tensor:
        """Transform ``x`` (shape (batch_size, num_samples)) with the given parameters."""
        raise NotImplementedError

    def forward(
        self, x: Tensor, *, generator: torch.Generator | None = None
    ) -> tuple[Tensor, Params]:
        """Draw parameters and apply them.

        Args:
            x: waveforms. Shape: (batch_size, num_samples).
            generator: random source; it must live on ``x``'s device. None uses torch's global one.

        Returns:
            The transformed waveforms, shape (batch_size, num_output_samples) (the input length
            for all but cropping), and the parameters drawn, each of shape (batch_size, ...).
        """
        check_waveform(x, type(self).__name__)
        check_generator(generator, x.device, type(self).__name__)
        params = self.sample_params(x.shape[0], x.shape[-1], device=x.device, generator=generator)
        return self.apply(x, params), params

    def extra_repr(self) -> str:
        return f"p={self.p}"


class Workspace:
    """Scratch tensors a transform keeps between calls, reused when shape, dtype and device match.

    Large CPU allocations go back to the operating system when freed, so a fresh one costs a
    page fault per 4 KiB on first touch: a third of a phase vocoder's CPU time on a (48, 59049)
    batch. Reusing scratch removes that (CUDA's caching allocator does the same already).
    Results returned to callers never live here. Not for concurrent calls from several threads;
    outputs are not differentiable. Pickling drops the cached tensors.
    """

    def __init__(self) -> None:
        self._tensors: dict[str, Tensor] = {}

    def get(
        self, name: str, shape: tuple[int, ...], *, dtype: torch.dtype, device: torch.device
    ) -> Tensor:
        """An uninitialised tensor of this shape, the same one as last time when it matches."""
        tensor = self._tensors.get(name)
        if tensor is None or tensor.shape != shape or tensor.dtype != dtype:
            tensor = None
        elif tensor.device != device:
            tensor = None
        if tensor is None:
            tensor = torch.empty(shape, dtype=dtype, device=device)
            self._tensors[name] = tensor
        return tensor

    def clear(self) -> None:
        self._tensors.clear()

    def __getstate__(self) -> dict:
        return {}

    def __setstate__(self, state: dict) -> None:
        self._tensors = {}


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


def check_generator(generator: torch.Generator | None, device: torch.device, who: str) -> None:
    if generator is not None and torch.device(generator.device).type != device.type:
        raise MusicSSLError(
            f"{who}: the generator lives on {generator.device} but the waveforms on {device}; "
            "create it with torch.Generator(device=x.device)"
        )


def coin(
    p: float, batch_size: int, *, device: torch.device | str, generator: torch.Generator | None
) -> Tensor:
    """Per-example coin flips, True with probability ``p``. Shape: (batch_size,)."""
    # rand is in [0, 1): p=0 never applies and p=1 always does.
    return torch.rand(batch_size, device=device, generator=generator) < p


def uniform(
    low: float,
    high: float,
    batch_size: int,
    *,
    device: torch.device | str,
    generator: torch.Generator | None,
) -> Tensor:
    """Per-example draws from U[low, high). Shape: (batch_size,), float32."""
    u = torch.rand(batch_size, device=device, generator=generator)
    return low + (high - low) * u


def rms(x: Tensor) -> Tensor:
    """Root mean square over time. Shape: (..., num_samples) -> (...,)."""
    # A norm, not square().mean(): no temporary the size of x.
    return torch.linalg.vector_norm(x, dim=-1) / math.sqrt(x.shape[-1])


def compute_dtype(x: Tensor) -> torch.dtype:
    """FFTs and phase arithmetic need at least float32: half-precision inputs are promoted."""
    return torch.float64 if x.dtype == torch.float64 else torch.float32


def fast_fft_length(n: int) -> int:
    """The smallest 5-smooth integer (2^a 3^b 5^c) >= n: FFT lengths that are fast everywhere."""
    best = 1 << max(n - 1, 0).bit_length()
    power5 = 1
    while power5 < best:
        power35 = power5
        while power35 < best:
            candidate = power35
            while candidate < n:
                candidate *= 2
            best = min(best, candidate)
            power35 *= 3
        power5 *= 5
    return best
