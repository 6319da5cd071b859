"""Tests of the fused augmentation kernels: compiled, they compute what they do op by op."""

from __future__ import annotations

import math
import warnings

import pytest
import torch

from musicssl.augment import fused as fused_module
from musicssl.augment.delay import _echoed
from musicssl.augment.filters import butterworth_gain
from musicssl.augment.fused import fused
from musicssl.augment.noise import NoiseBank
from musicssl.augment.pitch import _crossfade_weights, _faded_grains, _read_faster
from musicssl.augment.reverb import _mixing_responses


def compiling_works() -> bool:
    """Whether torch.compile can build CPU code here (it needs a C++ compiler and headers)."""
    try:
        torch.compile(lambda x: x * 2 + 1, dynamic=True)(torch.ones(3))
    except Exception:  # noqa: BLE001 (whatever stops it)
        return False
    return True


def seeded(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def kernel_calls(batch_size: int, seed: int) -> list[tuple[object, tuple, dict]]:
    """Every fused kernel with arguments of ``batch_size`` examples, as the transforms call them."""
    g = seeded(seed)
    ratio = 2 ** ((torch.rand(batch_size, generator=g) * 10 - 5) / 12)
    upsampled = torch.randn(batch_size, 4096, generator=g)
    hop, overlap, num_grains = 300, 60, 5
    # Grain starts as WSOLA makes them: grain 0 at 0, the others near k hop.
    start = hop * torch.arange(num_grains) + torch.randint(
        -20, 20, (batch_size, num_grains), generator=g
    )
    start[:, 0] = 0
    fade = _crossfade_weights(
        num_grains, hop, overlap, device=torch.device("cpu"), dtype=torch.float32
    )
    freqs = torch.linspace(0, 11025, 513).repeat_interleave(2)
    bank = NoiseBank("low"), NoiseBank("high")
    length = 700
    waveforms = torch.randn(batch_size, 2000, generator=g)
    return [
        (
            _echoed,
            (
                waveforms,
                torch.rand(batch_size, generator=g) < 0.5,
                torch.randint(0, 300, (batch_size,), generator=g),
            ),
            {"volume": 0.5, "max_delay": 300},
        ),
        (_read_faster, (upsampled, ratio, 1500), {}),
        (_faded_grains, (upsampled, start, ratio, fade), {}),
        (
            butterworth_gain,
            (
                freqs,
                200 + 3000 * torch.rand(batch_size, generator=g),
                torch.rand(batch_size, generator=g) < 0.5,
            ),
            {"order": 2},
        ),
        (
            _mixing_responses,
            (
                *(
                    noise.sequence(length, device=torch.device("cpu"), dtype=torch.float32)
                    for noise in bank
                ),
                torch.randint(2**18, (batch_size,), generator=g),
            ),
            {
                "rt60": 0.01 + 0.02 * torch.rand(batch_size, generator=g),
                "damping": 0.7 * torch.rand(batch_size, generator=g),
                "pre_delay_s": 0.005 * torch.rand(batch_size, generator=g),
                "wet": 0.1 + 0.4 * torch.rand(batch_size, generator=g),
                "length": length,
                "n_fft": length + 100,
                "sr": 22050,
            },
        ),
    ]


def test_compiled_kernels_match_their_op_by_op_versions() -> None:
    if not compiling_works():
        pytest.skip("torch.compile cannot build CPU code on this machine")
    # One compiled version serves every batch size.
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)  # a failed compile would warn
        for batch_size, seed in ((6, 0), (3, 1), (9, 2)):
            for kernel, args, kwargs in kernel_calls(batch_size, seed):
                compiled = kernel(*args, **kwargs)
                by_ops = kernel.op_by_op(*args, **kwargs)
                assert compiled.shape[0] == batch_size
                torch.testing.assert_close(compiled, by_ops, atol=1e-5, rtol=1e-5)
    assert not fused_module._compiling_failed


def test_where_compiling_fails_kernels_run_op_by_op_after_one_warning(monkeypatch) -> None:
    monkeypatch.setattr(fused_module, "_compiling_failed", False)

    def broken_compile(kernel, **options):
        def run(*args, **kwargs):
            raise RuntimeError("no C++ compiler found\nmore detail")

        return run

    monkeypatch.setattr(fused_module.torch, "compile", broken_compile)

    @fused
    def scaled(x: torch.Tensor, factor: float) -> torch.Tensor:
        return x * factor

    @fused
    def shifted(x: torch.Tensor) -> torch.Tensor:
        return x + 1

    x = torch.arange(4.0)
    with pytest.warns(RuntimeWarning, match="no C\\+\\+ compiler found.*op by op"):
        assert torch.equal(scaled(x, 2.0), 2 * x)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no second warning, for this kernel or another
        assert torch.equal(scaled(x, 3.0), 3 * x)
        assert torch.equal(shifted(x), x + 1)
    assert fused_module._compiling_failed


def test_a_kernels_own_error_is_raised_and_compiling_stays_on(monkeypatch) -> None:
    monkeypatch.setattr(fused_module, "_compiling_failed", False)

    @fused
    def first_row(x: torch.Tensor) -> torch.Tensor:
        return x[0] * math.pi

    with pytest.raises(IndexError):
        first_row(torch.empty(0, 3))  # fails compiled, and op by op with its own error
    assert not fused_module._compiling_failed


def test_a_kernel_stays_compiled_past_torchs_eight_versions() -> None:
    if not compiling_works():
        pytest.skip("torch.compile cannot build CPU code on this machine")
    from torch._dynamo.utils import counters

    @fused
    def shifted(x: torch.Tensor, shift: float) -> torch.Tensor:
        return x * 2 + shift

    # Sixteen versions (four dtypes, a batch of one or more, a whole or a fractional shift),
    # each also called with and without grad mode, which makes no versions of its own.
    calls = [
        (torch.ones(rows, 5, dtype=dtype), shift)
        for dtype in (torch.float32, torch.float64, torch.float16, torch.bfloat16)
        for rows in (1, 3)
        for shift in (0, 5, 0.5)
    ]
    counters.clear()
    for x, shift in calls:
        for grad_mode in (True, False):
            with torch.set_grad_enabled(grad_mode):
                assert torch.equal(shifted(x, shift), x * 2 + shift)
    assert counters["stats"]["unique_graphs"] == 16  # none left to run op by op
