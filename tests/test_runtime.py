"""The CPU runtime settings: set where the user has not, and taken by glibc."""

from __future__ import annotations

import os
import platform
import subprocess
import sys
import textwrap

import pytest

from conftest import untrained_run


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


# --- devices: one check for the --device option, the model loaders and the trainer ----------


@pytest.fixture
def no_gpu(monkeypatch):
    """A machine without CUDA or MPS, whatever this one has."""
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.backends.mps, "is_built", lambda: False)
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: False)


def test_a_device_this_machine_lacks_is_told_in_words(no_gpu) -> None:
    from musicssl.runtime import accelerator_problem, device_problem

    assert device_problem("cpu") is None
    assert device_problem("cuda:1").startswith("CUDA is not available on this machine (")
    assert device_problem("mps").startswith("MPS is not available on this machine (")
    assert accelerator_problem("cpu") is None and accelerator_problem("auto") is None
    assert accelerator_problem("gpu", "2").startswith("CUDA is not available")
    assert accelerator_problem("mps").startswith("MPS is not available")


def test_check_device_names_the_option_and_the_way_out(no_gpu) -> None:
    from musicssl.errors import MusicSSLError
    from musicssl.runtime import check_device

    check_device("cpu")
    with pytest.raises(MusicSSLError, match=r"^device='mps': MPS is not available .*'cpu'$"):
        check_device("mps")
    with pytest.raises(MusicSSLError, match=r"^device='gpu': not a device; give cpu, cuda"):
        check_device("gpu")


@pytest.mark.parametrize("device", ["cuda", "cuda:1", "mps"])
def test_every_model_loader_refuses_a_missing_device_in_one_line(tmp_path, no_gpu, device):
    import musicssl
    from musicssl import pitch, readouts
    from musicssl.encoders import KeyCNN, PestoCNN, TempoCNN

    loaders = [
        (musicssl.load, TempoCNN(), "tempo_cnn"),
        (readouts.load_key, KeyCNN(channels=4, depth=2), "key_cnn"),
        (readouts.load_tempo, TempoCNN(), "tempo_cnn"),
        (pitch.load, PestoCNN(), "pesto_cnn"),
    ]
    for number, (load, encoder, name) in enumerate(loaders):
        run = untrained_run(tmp_path / str(number), encoder, name)
        with pytest.raises(musicssl.MusicSSLError) as raised:
            load(run, device=device)
        (line,) = str(raised.value).splitlines()
        assert line.startswith(f"device={device!r}: ") and "not available on this machine" in line


def test_an_encoder_still_moves_to_a_dtype_and_to_the_cpu() -> None:
    import torch

    from musicssl.encoders import TempoCNN

    encoder = TempoCNN()
    assert next(encoder.to(torch.float64).parameters()).dtype == torch.float64
    assert encoder.to("cpu") is encoder and encoder.to(device=torch.device("cpu")) is encoder
