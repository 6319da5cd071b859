"""Shared test helpers: every test makes its own audio."""

from __future__ import annotations

import os
from pathlib import Path

# As the command line does (musicssl.runtime): OpenMP waiters sleep rather than spin, as tests
# share the cores with other processes; OpenMP reads this when torch loads.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import numpy as np
import pytest
import soundfile as sf

from musicssl.runtime import keep_freed_memory

keep_freed_memory()  # and freed memory is kept for the next test's tensors


def untrained_run(folder: Path, encoder, name: str) -> Path:
    """A run folder holding one checkpoint of ``encoder`` as it was built (no training)."""
    import json

    from safetensors.torch import save_file

    step = folder / "checkpoints" / "step-00000001"
    step.mkdir(parents=True)
    save_file({k: v.contiguous() for k, v in encoder.state_dict().items()},
              step / "encoder.safetensors")  # fmt: skip
    (step / "encoder.json").write_text(json.dumps({"name": name, "options": encoder.config()}))
    (folder / "latest").write_text("step-00000001\n")
    return folder


def tone(freq: float, *, sr: int, seconds: float, amplitude: float = 0.5) -> np.ndarray:
    """A sine of ``freq`` Hz. Shape: (num_samples,), float32."""
    t = np.arange(int(round(seconds * sr))) / sr
    return (amplitude * np.sin(2 * np.pi * freq * t)).astype(np.float32)


@pytest.fixture
def write_audio(tmp_path: Path):
    """Write a mono or multichannel array to ``tmp_path / name``; returns the path."""

    def write(name: str, audio: np.ndarray, sr: int, **kwargs) -> Path:
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        data = audio.T if audio.ndim == 2 else audio  # soundfile wants (frames, channels)
        sf.write(str(path), data, sr, **kwargs)
        return path

    return write


@pytest.fixture(scope="session")
def tiny_corpus(tmp_path_factory) -> Path:
    """The tiny built-in corpus (36 clips of about 3 s), built once per test session."""
    from musicssl.builtin import build_corpus

    out = tmp_path_factory.mktemp("tiny_corpus")
    build_corpus(out, size="tiny", seed=0, workers=2, progress=False)
    return out
