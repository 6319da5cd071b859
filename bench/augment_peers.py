"""The peers bench_augment.py times musicssl's augmentation chain against, and their inputs.

Bench-only dependencies (never package dependencies): audiomentations, librosa, and
torch-audiomentations with its julius, torch-pitch-shift, primePy and torchaudio. A peer that
is missing is skipped and the report says so.
"""

from __future__ import annotations

import argparse
import importlib
import random
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from musicssl.augment.noise import NoiseBank, noise_offsets
from musicssl.augment.reverb import impulse_response

DELAYS_MS = (200, 250, 300, 350, 400, 450)


def synthetic_music(batch_size: int, num_samples: int, *, sr: int, seed: int) -> np.ndarray:
    """Decaying harmonic notes at random onsets plus a little noise. Shape: (batch, samples)."""
    rng = np.random.default_rng(seed)
    time_s = np.arange(num_samples) / sr
    out = np.zeros((batch_size, num_samples))
    for row in out:
        for _ in range(12):
            f0 = 80 * 2 ** rng.uniform(0, 3.5)
            onset = rng.uniform(0, time_s[-1])
            envelope = np.where(time_s >= onset, np.exp(-(time_s - onset) * rng.uniform(1, 6)), 0)
            for harmonic in range(1, 6):
                if f0 * harmonic < sr / 2:
                    phase = rng.uniform(0, 2 * np.pi)
                    row += envelope / harmonic * np.sin(2 * np.pi * f0 * harmonic * time_s + phase)
        row += 0.01 * rng.standard_normal(num_samples)
        row *= 0.3 / np.abs(row).max()
    return out.astype(np.float32)


def write_impulse_responses(folder: Path, *, sr: int) -> tuple[Path, Path]:
    """WAV impulse responses for the peers: one echo per CLMR delay, and synthetic rooms."""
    import soundfile

    delay_dir, room_dir = folder / "delay", folder / "room"
    delay_dir.mkdir()
    room_dir.mkdir()
    for ms in DELAYS_MS:
        ir = np.zeros(int(ms * sr / 1000) + 1, dtype=np.float32)
        ir[0], ir[-1] = 0.5, 0.25  # (x + 0.5 x_delayed) / 2, as in CLMR
        soundfile.write(delay_dir / f"delay_{ms}.wav", ir, sr, subtype="FLOAT")
    generator = torch.Generator().manual_seed(0)
    count = 16
    offset = noise_offsets(count, generator=generator)
    rooms = impulse_response(
        NoiseBank("low").windows(offset, sr, dtype=torch.float32),
        NoiseBank("high").windows(offset, sr, dtype=torch.float32),
        sr=sr,
        rt60=0.1 + 0.9 * torch.rand(count, generator=generator),
        damping=0.7 * torch.rand(count, generator=generator),
        pre_delay_s=0.02 * torch.rand(count, generator=generator),
    )
    for i, ir in enumerate(rooms.numpy()):
        soundfile.write(room_dir / f"room_{i}.wav", ir, sr, subtype="FLOAT")
    return delay_dir, room_dir


def audiomentations_chain(
    source: np.ndarray, args: argparse.Namespace, delay_dir: Path, room_dir: Path
) -> Callable[[int], object]:
    import audiomentations as am

    chain = am.Compose(
        [
            am.PolarityInversion(p=0.8),
            am.AddGaussianSNR(min_snr_db=40.0, max_snr_db=80.0, p=0.01),
            am.Gain(min_gain_db=-20.0, max_gain_db=-1.0, p=0.3),
            am.OneOf(
                [
                    am.HighPassFilter(200, 1200, min_rolloff=12, max_rolloff=12, p=1.0),
                    am.LowPassFilter(2200, 4000, min_rolloff=12, max_rolloff=12, p=1.0),
                ],
                p=0.8,
            ),
            am.ApplyImpulseResponse(str(delay_dir), p=0.3, leave_length_unchanged=True),
            am.PitchShift(min_semitones=-5.0, max_semitones=5.0, p=0.6),
            am.ApplyImpulseResponse(str(room_dir), p=0.6, leave_length_unchanged=True),
        ]
    )
    crop_range = source.shape[-1] - args.num_samples

    def run(seed: int) -> object:
        random.seed(seed)  # audiomentations draws from random and numpy's global generators
        np.random.seed(seed)  # noqa: NPY002 (the peer reads the legacy global generator)
        crops = random.Random(seed)

        def view(row: np.ndarray) -> np.ndarray:
            offset = crops.randint(0, crop_range)
            return chain(row[offset : offset + args.num_samples], sample_rate=args.sr)

        return [(view(row), view(row)) for row in source]

    return run


def torch_audiomentations_chain(
    source: torch.Tensor, args: argparse.Namespace, delay_dir: Path, room_dir: Path
) -> Callable[[int], object]:
    import soundfile
    import torch_audiomentations as ta

    def impulse_responses(folder: Path, p: float) -> ta.ApplyImpulseResponse:
        transform = ta.ApplyImpulseResponse(
            str(folder), p=p, sample_rate=args.sr, output_type="tensor"
        )
        # Its file loader needs torchcodec through torchaudio; hand it the IRs in memory.
        transform.ir_paths = [
            {
                "samples": torch.from_numpy(soundfile.read(path, dtype="float32")[0])[None],
                "sample_rate": args.sr,
            }
            for path in sorted(folder.glob("*.wav"))
        ]
        return transform

    common = {"sample_rate": args.sr, "output_type": "tensor"}
    chain = ta.Compose(
        [
            ta.PolarityInversion(p=0.8, **common),
            ta.AddColoredNoise(
                min_snr_in_db=40.0,
                max_snr_in_db=80.0,
                min_f_decay=0.0,
                max_f_decay=0.0,
                p=0.01,
                **common,
            ),
            ta.Gain(min_gain_in_db=-20.0, max_gain_in_db=-1.0, p=0.3, **common),
            # Its OneOf picks the filter kind once per batch; cut-offs are per example.
            ta.OneOf(
                [
                    ta.HighPassFilter(200, 1200, p=0.8, **common),
                    ta.LowPassFilter(2200, 4000, p=0.8, **common),
                ],
                output_type="tensor",
            ),
            impulse_responses(delay_dir, 0.3),
            ta.PitchShift(-5.0, 5.0, p=0.6, **common),
            impulse_responses(room_dir, 0.6),
        ],
        output_type="tensor",
    )
    crop_range = source.shape[-1] - args.num_samples

    def crop() -> torch.Tensor:
        offsets = torch.randint(crop_range + 1, (source.shape[0],)).tolist()
        return torch.stack([row[o : o + args.num_samples] for row, o in zip(source, offsets)])

    def run(seed: int) -> object:
        torch.manual_seed(seed)  # it draws from torch's global generator
        return chain(crop()[:, None]), chain(crop()[:, None])

    return run


def available(module: str) -> bool:
    try:
        importlib.import_module(module)
    except Exception:  # a peer that fails to import is reported as missing, not fatal
        return False
    return True


def version(module: str) -> str:
    try:
        return str(importlib.import_module(module).__version__)
    except Exception:
        return "not available"
