"""Linear time-invariant augmentations (filters, echoes, reverb), applied as spectral products.

A filter, a delay and a reverb are each a convolution, so a run of them is one convolution:
``Compose`` applies consecutive ``LinearAugmentation``s with one forward and one inverse FFT
for the whole run, each example's spectrum multiplied by the frequency responses of the
transforms applied to it. Each transform alone takes the same path with one response. The
FFT is long enough (``response_reach`` of every transform in the run, past the input) that
no response wraps around into the kept samples: the result is the linear convolution cut
to the input length.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

from musicssl.augment.base import (
    Augmentation,
    Params,
    applied_index,
    compute_dtype,
    fast_fft_length,
    padded_rfft,
    to_device,
)


class LinearAugmentation(Augmentation):
    """An augmentation that is a convolution with a response drawn per example.

    Subclasses implement ``frequency_response`` and set ``response_reach``.
    """

    #: Samples past the input that the impulse response reaches (its length, for a causal
    #: one): the zero padding that keeps the FFT's circular convolution linear.
    response_reach: int = 0

    def frequency_response(self, params: Params, n_fft: int, *, dtype: torch.dtype) -> Tensor:
        """The response of each example at the ``n_fft // 2 + 1`` bins of an ``n_fft`` rfft.

        Args:
            params: the examples' parameters, on the device the response is wanted on.
            n_fft: transform length.
            dtype: real dtype of the computation (float32 or float64).

        Returns:
            Real or complex gains. Shape: (num_examples, n_fft // 2 + 1).
        """
        raise NotImplementedError

    def apply(self, x: Tensor, params: Params) -> Tensor:
        return apply_linear_run([self], x, [params])

    def apply_all(self, x: Tensor, params: Params) -> Tensor:
        n_fft = fast_fft_length(x.shape[-1] + self.response_reach)
        dtype = compute_dtype(x)
        spectrum = padded_rfft(x, n_fft) * self.frequency_response(params, n_fft, dtype=dtype)
        return torch.fft.irfft(spectrum, n=n_fft)[:, : x.shape[-1]].to(x.dtype)


def apply_linear_run(
    transforms: Sequence[LinearAugmentation], x: Tensor, params: Sequence[Params]
) -> Tensor:
    """Apply linear augmentations one after the other, as one spectral product.

    Args:
        transforms: the augmentations, in chain order (any order gives the same result).
        x: waveforms. Shape: (batch_size, num_samples).
        params: each transform's parameters as drawn by its ``sample_params`` (host tensors,
            ``applied`` among them).

    Returns:
        The waveforms, shape (batch_size, num_samples): ``x`` itself when no example is
        touched, a new tensor otherwise; examples no transform applies to pass bit-exact.
    """
    batch_size, num_samples = x.shape
    rows = [applied_index(p, batch_size, type(t).__name__) for t, p in zip(transforms, params)]
    touched = torch.zeros(batch_size, dtype=torch.bool)
    for index in rows:
        touched[index] = True
    chosen = touched.nonzero().view(-1)  # host: which examples, known without the device
    if chosen.numel() == 0:
        return x
    # Where each example sits among the chosen ones.
    slot = torch.cumsum(touched, dim=0) - 1
    reach = sum(t.response_reach for t, index in zip(transforms, rows) if index.numel())
    n_fft = fast_fft_length(num_samples + reach)
    dtype = compute_dtype(x)
    every = chosen.numel() == batch_size
    chosen_device = chosen.to(x.device, non_blocking=True)
    source = x if every else x.index_select(0, chosen_device)
    spectrum = padded_rfft(source, n_fft)  # (C, F)
    for transform, p, index in zip(transforms, params, rows):
        if index.numel() == 0:
            continue
        mine = {name: value.index_select(0, index) for name, value in p.items()}
        response = transform.frequency_response(to_device(mine, x.device), n_fft, dtype=dtype)
        if index.numel() == chosen.numel():
            spectrum *= response
        else:
            where = slot[index].to(x.device, non_blocking=True)
            spectrum.index_copy_(0, where, spectrum.index_select(0, where) * response)
    y = torch.fft.irfft(spectrum, n=n_fft)[:, :num_samples].to(x.dtype)
    return y if every else x.index_copy(0, chosen_device, y)
