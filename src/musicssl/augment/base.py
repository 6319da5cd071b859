"""The base class of the batched waveform augmentations, and the helpers they share.

Every augmentation follows one convention:

- ``sample_params(batch_size, num_input_samples, *, generator)`` draws one set of parameters per
  example on the host, from a CPU ``torch.Generator``, as a dict of CPU tensors whose first axis
  is the batch; it always holds ``applied``, the per-example coin flip (True where the
  transform takes effect). Values are drawn for every example; they take effect only where
  ``applied`` is True. Parameters are a few numbers per example (noise is read from a fixed
  noise sequence at a drawn offset, see ``noise.NoiseBank``), so the same seed gives the same
  parameters on every device.
- ``apply(x, params)`` is a pure function of the waveforms and those parameters. Because
  ``applied`` lives on the host, it knows without asking the device which examples to
  transform: it moves their parameters to ``x``'s device (``non_blocking``), transforms those
  examples alone and scatters the results back. Examples left alone come back bit-exact, and
  a transform with p = 0.3 costs about 0.3 of one with p = 1. With ``overwrite=True`` the
  results are scattered into ``x`` itself instead of a copy of it: ``Compose`` passes it for
  the intermediate batches it made, never for its caller's.
- ``forward(x, *, generator=None)`` does both and returns ``(x_out, params)``, so an objective
  that must know what was done (a pitch-equivariant loss, say) reads it from ``params``
  (moving it to its device first).

Nothing here loops over single examples, reads device memory on the host or branches on the
values of device tensors, so the same code runs on CPU and CUDA without synchronising: the only
branches are on host-side parameters.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from musicssl.augment.fused import fused
from musicssl.errors import MusicSSLError

Params = dict[str, Tensor]


class Augmentation(nn.Module):
    """A random transform of a batch of waveforms with per-example parameters.

    Subclasses set ``name`` and implement ``sample_params`` and ``apply_all``. One whose work
    is a single pass over the batch (a per-example gain) may override ``apply`` instead, where
    gathering the applied examples would cost more than transforming them all.

    Args:
        p: probability of applying the transform, drawn independently per example.
    """

    name: ClassVar[str] = "augmentation"

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

        Args:
            x: the examples to transform. Shape: (num_examples, num_samples).
            params: their parameters but ``applied`` (every example here is), on ``x``'s
                device. Each of shape (num_examples, ...).

        Returns:
            The transformed examples, a new tensor of ``x``'s shape and dtype.
        """
        raise NotImplementedError

    def apply_rows(self, x: Tensor, rows: Tensor, params: Params) -> Tensor:
        """``apply_all`` of the examples ``rows`` picks from ``x``.

        The FFT transforms override it to read the rows straight into their zero-padded
        buffers (``padded_rows``).

        Args:
            x: the whole batch. Shape: (batch_size, num_samples).
            rows: the examples to transform, on ``x``'s device. Shape: (num_rows,), int64.
            params: their parameters, as ``apply_all`` takes them.

        Returns:
            The transformed examples. Shape: (num_rows, num_samples).
        """
        return self.apply_all(x[rows], params)

    def apply(  # type: ignore[override]  # not nn.Module.apply
        self, x: Tensor, params: Params, *, overwrite: bool = False
    ) -> Tensor:
        """Transform the examples whose ``applied`` flag is set; the others pass unchanged.

        Args:
            x: waveforms. Shape: (batch_size, num_samples).
            params: as drawn by ``sample_params`` (CPU tensors of shape (batch_size, ...)).
            overwrite: the caller is done with ``x``: write the results into it rather than
                into a copy (one pass over the batch fewer).

        Returns:
            The waveforms, shape (batch_size, num_samples): ``x`` itself when no example is
            applied, and may be with ``overwrite``; a new tensor otherwise.
        """
        index = applied_index(params, x.shape[0], type(self).__name__)
        if index.numel() == x.shape[0]:
            return self.apply_all(x, to_device(params, x.device))
        return scatter_rows(self.apply_rows, x, index, params, overwrite=overwrite)

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


def scatter_rows(
    transform_rows: Callable[[Tensor, Tensor, Params], Tensor],
    x: Tensor,
    index: Tensor,
    params: Params,
    *,
    overwrite: bool,
) -> Tensor:
    """``transform_rows(x, rows, their params)`` for the examples ``index`` picks, written back
    into (a copy of, unless ``overwrite``) ``x``; ``x`` itself if ``index`` is empty.

    Shapes: (batch_size, num_samples), (num_rows,) int64 on the host -> (batch_size, num_samples).
    """
    if index.numel() == 0:
        return x
    chosen = to_device({name: value[index] for name, value in params.items()}, x.device)
    rows = index.to(x.device, non_blocking=True)
    # index_copy_ in place, not index_copy: on CPU it ran 2-3x as fast for a (96, 59049)
    # batch, as indexing did against index_select.
    return (x if overwrite else x.clone()).index_copy_(0, rows, transform_rows(x, rows, chosen))


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


def compute_dtype(x: Tensor) -> torch.dtype:
    """FFTs and phase arithmetic need at least float32: half-precision inputs are promoted."""
    return torch.float64 if x.dtype == torch.float64 else torch.float32


def fast_fft_length(n: int) -> int:
    """The smallest 2^a m >= n with m in {1, 3, 5}: FFT lengths that are fast everywhere.

    Other 5-smooth lengths, though a little shorter, are slower on CPU: a real transform of
    60000 = 2^5 3 5^4 samples took 1.5x as long as one of 65536, and one of 61440 = 2^12 15
    1.5x as long too.
    """
    return min((m << max(0, (-(-n // m) - 1).bit_length())) for m in (1, 3, 5))


def all_rows(x: Tensor) -> Tensor:
    """Indices of every example of ``x``, for ``apply_rows``. Shape: (batch_size,), int64."""
    return torch.arange(x.shape[0], device=x.device)


# Reading the rows straight into the FFT buffer, one compiled pass instead of a gather and a
# copy: gathering in ``apply`` instead, the tape chain (the cpu recipe's) took 5-7.5% longer
# and the preserve_tempo chain 4.6-5.4% (paired medians of three runs, bench/ab_augment.py).
@fused
def padded_rows(
    x: Tensor, rows: Tensor, length: int, *, mirrored: int = 0, dtype: torch.dtype
) -> Tensor:
    """The examples ``rows`` picks, each followed by ``mirrored`` samples of its mirror image
    (its samples before the last, backwards) and zeros up to ``length``: an FFT buffer, in one
    pass over the batch.

    ``mirrored`` < num_samples and num_samples + mirrored <= length.
    Shape: (B, num_samples), (R,) -> (R, length), of ``dtype``.
    """
    picked = x[rows].to(dtype)
    num_samples = x.shape[-1]
    mirror = picked[:, num_samples - 1 - mirrored : num_samples - 1].flip(-1)
    return F.pad(torch.cat([picked, mirror], dim=1), (0, length - num_samples - mirrored))
