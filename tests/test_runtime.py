"""The CPU runtime settings: set where the user has not, and taken by glibc."""

from __future__ import annotations

import os
import platform
import subprocess
import sys
import textwrap

import pytest


def run_python(code: str, **env: str) -> str:
    clean = {k: v for k, v in os.environ.items() if k not in ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT")}
    done = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        env={**clean, **env},
        capture_output=True,
        text=True,
        check=True,
    )
    return done.stdout.strip()


CONFIGURE = """
    import os
    from musicssl.runtime import configure_cpu_runtime
    configure_cpu_runtime()
    print(os.environ.get("OMP_WAIT_POLICY"), os.environ.get("GOMP_SPINCOUNT"))
"""


def test_waiters_sleep_unless_the_user_chose_otherwise() -> None:
    assert run_python(CONFIGURE) == "PASSIVE None"
    assert run_python(CONFIGURE, OMP_WAIT_POLICY="ACTIVE") == "ACTIVE None"
    assert run_python(CONFIGURE, GOMP_SPINCOUNT="5000") == "None 5000"


@pytest.mark.skipif(
    not sys.platform.startswith("linux") or "glibc" not in " ".join(platform.libc_ver()),
    reason="needs glibc's mallopt",
)
def test_glibc_takes_the_allocator_settings() -> None:
    # Whether freed memory is then reused depends on glibc's heap layout from run to run, too
    # loosely for a test; bench/bench_augment.py reports the page faults of a chain pass.
    assert (
        run_python("from musicssl.runtime import keep_freed_memory; print(keep_freed_memory())")
        == "True"
    )


@pytest.mark.skipif(
    platform.machine().lower() not in ("x86_64", "amd64"), reason="flushing needs x86's SSE"
)
def test_configure_torch_flushes_subnormal_floats() -> None:
    code = """
        import torch
        from musicssl.runtime import configure_torch
        subnormal = torch.tensor([1e-39])  # below float32's smallest normal, 1.18e-38
        before = (subnormal * 1.0).item()
        print(before > 0, configure_torch(), (subnormal * 1.0).item())
    """
    assert run_python(code) == "True True 0.0"
