"""Front ends beside librosa: CQT and log-mel of one batch, time as a ratio (ours / librosa).

The same audio (``--batch-size`` clips of ``--seconds`` s of noise at 16 kHz) goes through
``musicssl.features.CQT`` and ``librosa.cqt`` (252 bins from C1, 36 per octave, hop 256),
and through ``musicssl.features.LogMel`` and ``librosa.feature.melspectrogram`` +
``power_to_db`` (128 bands, n_fft 512, hop 256). Rounds alternate ours and librosa's, so
the load of other jobs on the shared cores falls on both; each row is the median over the
rounds. Writes the table to ``--out`` (bench/results/frontends_cpu.md).

    .venv/bin/python bench/bench_frontends.py
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import time
from collections.abc import Callable
from importlib.metadata import version
from pathlib import Path

import librosa
import numpy as np
import torch

from musicssl.features import C1_HZ, CQT, LogMel, nnaudio_cqt
from musicssl.files import write_text

SR = 16000
HOP = 256
CQT_BINS, CQT_BINS_PER_OCTAVE = 252, 36
N_FFT, N_MELS = 512, 128


def cases(audio: np.ndarray) -> dict[str, tuple[Callable[[], object], Callable[[], object]]]:
    """For each front end: (ours, librosa's), each computing the whole batch."""
    x = torch.from_numpy(audio)
    cqt = CQT(sr=SR, hop_length=HOP, n_bins=CQT_BINS, bins_per_octave=CQT_BINS_PER_OCTAVE)
    log_mel = LogMel(sr=SR, n_fft=N_FFT, hop_length=HOP, n_mels=N_MELS)

    def librosa_cqt() -> object:
        magnitude = np.abs(
            librosa.cqt(
                audio,
                sr=SR,
                hop_length=HOP,
                fmin=C1_HZ,
                n_bins=CQT_BINS,
                bins_per_octave=CQT_BINS_PER_OCTAVE,
            )
        )
        return librosa.amplitude_to_db(magnitude, ref=1.0, amin=1e-5, top_db=None)

    def librosa_mel() -> object:
        power = librosa.feature.melspectrogram(
            y=audio, sr=SR, n_fft=N_FFT, hop_length=HOP, n_mels=N_MELS, pad_mode="constant"
        )
        return librosa.power_to_db(power, ref=1.0, amin=1e-10, top_db=None)

    def ours(module: torch.nn.Module) -> Callable[[], object]:
        def run() -> object:
            with torch.no_grad():
                return module(x)

        return run

    # nnAudio's own forward pass (the low-pass by a strided conv1d), magnitudes only: what
    # CQT's FFT low-pass saves.
    nnaudio = nnaudio_cqt(
        sr=SR, hop_length=HOP, fmin=C1_HZ, n_bins=CQT_BINS, bins_per_octave=CQT_BINS_PER_OCTAVE
    )
    return {
        f"CQT, {CQT_BINS} bins from C1, {CQT_BINS_PER_OCTAVE}/octave": (ours(cqt), librosa_cqt),
        "the same by nnAudio's CQT2010v2 forward (magnitude)": (ours(nnaudio), librosa_cqt),
        f"log-mel, {N_MELS} bands, n_fft {N_FFT}": (ours(log_mel), librosa_mel),
    }


def seconds(run: Callable[[], object]) -> float:
    start = time.perf_counter()
    run()
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--threads", type=int, default=1, help="torch threads")
    parser.add_argument("--out", type=Path, default=Path("bench/results/frontends_cpu.md"))
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    rng = np.random.default_rng(0)
    audio = (0.1 * rng.standard_normal((args.batch_size, int(args.seconds * SR)))).astype(
        np.float32
    )
    rows = []
    for label, (ours, theirs) in cases(audio).items():
        ours(), theirs()  # warm-up: kernels, librosa's filter caches and compiled code
        ours_times, their_times = [], []
        for _ in range(args.rounds):
            ours_times.append(seconds(ours))
            their_times.append(seconds(theirs))
        mine, reference = statistics.median(ours_times), statistics.median(their_times)
        rows.append(f"| {label} | {mine:.3f} | {reference:.3f} | {mine / reference:.2f} |")
        print(rows[-1], flush=True)

    cpu = platform.processor() or platform.machine()
    lines = [
        "# Front ends beside librosa on CPU",
        "",
        "Command (from the repository root):",
        "",
        "    .venv/bin/python bench/bench_frontends.py",
        "",
        f"One batch of {args.batch_size} clips x {args.seconds:g} s of noise at {SR} Hz, hop "
        f"{HOP};\nmedian seconds over {args.rounds} alternating rounds after a warm-up. Ours "
        f"runs on torch with {args.threads} thread(s),\nlibrosa on numpy's FFT (one thread). "
        "Both give decibels. A ratio below 1 means ours is faster.",
        "",
        "| front end | ours (s) | librosa (s) | ours / librosa |",
        "|---|---:|---:|---:|",
        *rows,
        "",
        f"Machine: {cpu}, {os.cpu_count()} CPUs visible (shared with other jobs), load "
        f"average {os.getloadavg()[0]:.2f} at the end;\ntorch {torch.__version__}, librosa "
        f"{version('librosa')}, nnAudio {version('nnAudio')}, numpy {np.__version__}.",
        "",
    ]
    write_text(args.out, "\n".join(lines))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
