"""Kernels of the augmentations that torch.compile fuses into single loops.

Run op by op, a kernel that reads grains or builds impulse responses makes one pass over
memory per operation, and a gather first writes out an int64 index as large as its result.
Compiled (inductor: C++ with OpenMP on a CPU, Triton on a GPU), each kernel becomes one loop
that computes its indices as it reads. A kernel is compiled only where that saves at least 5%
of the CLMR chain's time (with either pitch shift); each says how much beside its definition.

A kernel is a pure function of tensors (it writes to none of its arguments) marked with
``@fused``. It is compiled on its first call (the compiler is imported then, not with the
package) with every size left open, so one compiled version serves every batch: a run gives
the same bits whatever the sizes it met before (compiled for the first sizes met, a kernel's
arithmetic could differ in the last bit from the version compiled later for the others, and a
resumed run would then drift from an uninterrupted one). A batch of one example gets its own
version, and so does each dtype; a kernel runs with autograd only where an argument requires
grad (the caller's grad mode would otherwise make versions of its own). Each kernel keeps up
to ``VERSIONS`` versions, through ``torch.compile``'s own ``recompile_limit`` (torch's
process-wide limit is left alone): at torch's default of 8, reached once tests had called a
kernel with many sizes and dtypes, the next variants ran op by op, and a training run in that
process drifted from the same run in a fresh one. Compiling runs in the calling process (no
pool of compiler processes competing with the work for the CPU), and torch caches the result
on disk, so later processes start faster.

Where compiling cannot work (no C++ compiler on a CPU, say) the first failure is reported
once as a warning and every kernel runs op by op from then on, with the same results (to
float rounding). ``TORCH_COMPILE_DISABLE=1`` in the environment runs them op by op from the
start.
"""

from __future__ import annotations

import functools
import inspect
import warnings
from collections.abc import Callable
from typing import ParamSpec, TypeVar

import torch

P = ParamSpec("P")
R = TypeVar("R")

# Set once compiling has failed: every kernel then runs op by op.
_compiling_failed = False
# Compiled versions a kernel may keep (torch's default is 8): past that torch runs new
# variants op by op, whose last bits differ from a compiled version's (see the module).
VERSIONS = 64


def fused(kernel: Callable[P, R]) -> Callable[P, R]:
    """``kernel`` compiled on its first call, or run op by op where compiling cannot work."""
    compiled: Callable[P, R] | None = None  # made on the first call: no compiler at import

    @functools.wraps(kernel)
    def run(*args: P.args, **kwargs: P.kwargs) -> R:
        nonlocal compiled
        global _compiling_failed
        if _compiling_failed:
            return kernel(*args, **kwargs)
        try:
            if compiled is None:
                compiled = _compile(kernel)
            # Autograd only where an argument asks for it, whatever the caller's grad mode: a
            # mode change is a version of its own (see the module).
            tensors = [*args, *kwargs.values()]
            grad = any(isinstance(value, torch.Tensor) and value.requires_grad for value in tensors)
            with torch.set_grad_enabled(grad):
                return compiled(*args, **kwargs)
        except Exception as error:  # noqa: BLE001 (any failure to compile: see below)
            # The kernel itself may be at fault (bad arguments): then it fails op by op as
            # well, with its own error, and compiling stays on.
            result = kernel(*args, **kwargs)
            _compiling_failed = True
            reason = str(error).partition("\n")[0]
            warnings.warn(
                f"musicssl: torch.compile failed on {kernel.__qualname__} "
                f"({type(error).__name__}: {reason}); "
                "augmentation kernels run op by op from now on (same results, slower)",
                RuntimeWarning,
                stacklevel=2,
            )
            return result

    run.op_by_op = kernel  # type: ignore[attr-defined]
    return run


def _compile(kernel: Callable[P, R]) -> Callable[P, R]:
    """The compiled callable: every size left open, compiled in this process, up to VERSIONS."""
    settings: dict = {"dynamic": True, "options": {"compile_threads": 1}}
    if "recompile_limit" in inspect.signature(torch.compile).parameters:
        settings["recompile_limit"] = VERSIONS  # older torch keeps its default of 8
    return torch.compile(kernel, **settings)
