"""The process-wide settings the ``musicssl`` command makes; importing the library makes none.

Three process-wide settings decide much of how fast torch code runs on a CPU:

- **How OpenMP threads wait** between parallel regions. libgomp's default is to spin for
  about 3 ms first, taking the CPU that a partner thread or a data-loading process needs: on
  2 cores shared with one busy process, the augmentation chain once ran 7x slower than with
  waiters that sleep at once (``OMP_WAIT_POLICY=PASSIVE``). A short spin (0.1 ms) made the
  chain alone 5-15% faster but did not speed up training, where data-loading processes share
  the cores, so waiters sleep.
- **Whether freed memory goes back to the operating system.** glibc returns large blocks at
  once, so every large temporary tensor is faulted in afresh, page by page: a CLMR-sized
  augmentation pass spent up to a fifth of its CPU time in the kernel doing so. With blocks up
  to 256 MiB taken from the heap and up to 1 GiB of freed heap kept for reuse, a pass faults
  next to no pages and the ``cpu`` recipes train 1.3-1.4x as many steps per minute.
- **Subnormal floats.** Decaying echoes and reverb tails reach them, and x86 CPUs process
  them about ten times slower than normal floats; flushing them to zero changes nothing
  audible.

The first two are set only where the user has not set them. ``musicssl`` (the command)
applies them as it starts (``configure_cpu_runtime``), and flushes subnormals before a verb
that runs torch code (``configure_torch``); a Python program gets the same by calling both,
the first before it imports torch. All three are for speed; only the last changes results,
and only where a value was already too small to hear.

Whether this machine can run torch code on a device (``device_problem``, and
``accelerator_problem`` for a recipe's ``train.accelerator``) is told here too, in words, so
that the command's ``--device`` option, the model loaders and the trainer refuse a missing
CUDA or MPS alike, in one line, before torch fails with an assertion or a build error.
"""

from __future__ import annotations

import ctypes
import os
import sys
from typing import Any

from musicssl.errors import MusicSSLError

# Blocks below this come from the heap, whose freed memory is kept; larger ones are mapped and
# unmapped each time (the largest temporaries of a 96-view chain pass are about 33 MiB).
MMAP_THRESHOLD = 256 * 2**20
TRIM_THRESHOLD = 2**30
# mallopt's parameter numbers (glibc malloc.h).
M_TRIM_THRESHOLD = -1
M_MMAP_THRESHOLD = -3


def configure_cpu_runtime() -> None:
    """Make OpenMP waiters sleep and glibc keep freed memory, where the user has not said.

    The OpenMP setting takes effect only if torch has not been imported yet (OpenMP reads it
    once, as torch loads); the allocator setting takes effect at once.
    """
    if not {"OMP_WAIT_POLICY", "GOMP_SPINCOUNT"} & os.environ.keys() and "torch" not in sys.modules:
        os.environ["OMP_WAIT_POLICY"] = "PASSIVE"
    if "MALLOC_MMAP_THRESHOLD_" not in os.environ:
        keep_freed_memory()


def keep_freed_memory() -> bool:
    """Ask glibc to keep freed memory for reuse instead of returning it to the system.

    Returns:
        True if glibc took both settings; False elsewhere (another C library, another OS).
    """
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL("libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    mallopt.restype = ctypes.c_int
    return bool(mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD)) and bool(
        mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD)
    )


def configure_torch() -> bool:
    """Flush subnormal floats to zero in this process (imports torch).

    Returns:
        True where the CPU supports it (x86 with SSE3); False elsewhere, where nothing changes.
    """
    import torch

    return bool(torch.set_flush_denormal(True))


def device_problem(device: Any) -> str | None:
    """Why this machine cannot run torch code on ``device``, or None where it can.

    Args:
        device: a ``torch.device`` or its name: cpu, cuda, cuda:N or mps.
    """
    import torch

    device = torch.device(device)
    if device.type == "cuda":
        return _unavailable("CUDA", cuda_problem((device.index or 0) + 1))
    if device.type == "mps":
        return _unavailable("MPS", mps_problem())
    return None


def accelerator_problem(accelerator: str, devices: str = "1") -> str | None:
    """Why this machine cannot train on Lightning Fabric's ``accelerator``, or None.

    ``gpu`` is Fabric's word for CUDA, or MPS on a Mac; ``auto`` takes whatever there is.
    """
    if accelerator == "mps" or (accelerator == "gpu" and mps_problem() is None):
        return _unavailable("MPS", mps_problem())
    if accelerator in ("cuda", "gpu"):
        return _unavailable("CUDA", cuda_problem(int(devices) if devices.isdigit() else 1))
    return None


def check_device(device: Any, *, option: str = "device") -> None:
    """Refuse a device this machine lacks, naming ``option``, before anything moves to it.

    Raises:
        MusicSSLError: not a device name, or no such device here.
    """
    import torch

    try:
        problem = device_problem(device)
    except (RuntimeError, TypeError):  # torch's words for a name it does not know
        raise MusicSSLError(
            f"{option}={device!r}: not a device; give cpu, cuda, cuda:N or mps"
        ) from None
    if problem is not None:
        raise MusicSSLError(
            f"{option}={str(torch.device(device))!r}: {problem}; use {option}='cpu'"
        )


def cuda_problem(devices: int = 1) -> str | None:
    """Why this machine cannot run ``devices`` CUDA devices, or None where it can."""
    import torch

    if torch.version.cuda is None:
        return f"torch {torch.__version__} is a build without CUDA"
    if not torch.cuda.is_available():
        return "no CUDA device or driver was found"
    if torch.cuda.device_count() < devices:
        return f"{devices} CUDA devices were asked for and it has {torch.cuda.device_count()}"
    return None


def mps_problem() -> str | None:
    """Why this machine cannot run on Apple's MPS, or None where it can."""
    import torch

    if not torch.backends.mps.is_built():
        return f"torch {torch.__version__} is a build without MPS, which only macOS builds have"
    if not torch.backends.mps.is_available():
        return "MPS needs an Apple silicon Mac with macOS 12.3 or later"
    return None


def _unavailable(kind: str, problem: str | None) -> str | None:
    return None if problem is None else f"{kind} is not available on this machine ({problem})"
