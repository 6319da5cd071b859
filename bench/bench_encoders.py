"""Training throughput of the encoders on this CPU: views per second for one training step.

One step is forward + backward + Adam update on a batch of ``--batch-size`` crops (each crop
is one view). The loss is a stand-in (mean square of the embeddings); the SSL losses cost
next to nothing beside the encoder. Reports wall-clock and CPU-time rates: on a shared
machine the CPU-time rate is the steadier estimate of what the step costs. Prints a markdown
table (also written to ``--out``); bench/results/encoder_throughput_cpu.md holds a run.

    .venv/bin/python bench/bench_encoders.py --threads 1
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from musicssl.encoders import build_encoder


@dataclass
class Case:
    label: str
    encoder: str
    num_samples: int
    kwargs: dict[str, Any] = field(default_factory=dict)


CASES = [
    Case("SampleCNN full (CLMR), 3^10 @ 22.05 kHz = 2.68 s", "sample_cnn", 59049),
    Case(
        "SampleCNN small: 8 blocks, widths 64-256, 3^9 @ 16 kHz = 1.23 s",
        "sample_cnn",
        19683,
        {"num_blocks": 8, "channels": (64, 64, 64, 128, 128, 128, 128, 128, 256, 256)},
    ),
    Case(
        "SampleCNN small: 8 blocks, widths 32-128, 3^9 @ 16 kHz = 1.23 s",
        "sample_cnn",
        19683,
        {"num_blocks": 8, "channels": (32, 32, 32, 64, 64, 64, 64, 64, 128, 128)},
    ),
    Case(
        "SampleCNN tiny: 7 blocks, widths 32-128, 3^8 @ 8 kHz = 0.82 s",
        "sample_cnn",
        6561,
        {"num_blocks": 7, "channels": (32, 32, 32, 64, 64, 64, 64, 128, 128), "sample_rate": 8000},
    ),
    Case(
        "ShortChunkCNN channels=16 (emb 64), 128 mels, 3.69 s @ 16 kHz",
        "short_chunk_cnn",
        59049,
        {"channels": 16},
    ),
    Case(
        "ShortChunkCNN channels=32 (emb 128), 128 mels, 3.69 s @ 16 kHz",
        "short_chunk_cnn",
        59049,
        {"channels": 32},
    ),
    Case(
        "ShortChunkCNN channels=128 (Won et al., emb 512), 3.69 s @ 16 kHz",
        "short_chunk_cnn",
        59049,
        {"channels": 128},
    ),
]


def time_steps(case: Case, *, batch_size: int, min_seconds: float, max_steps: int) -> dict:
    torch.manual_seed(0)
    encoder = build_encoder(case.encoder, **case.kwargs)
    encoder.train()
    optimiser = torch.optim.Adam(encoder.parameters(), lr=1e-4)
    x = 0.1 * torch.randn(batch_size, case.num_samples)

    def step() -> None:
        loss = encoder(x).pow(2).mean()
        optimiser.zero_grad(set_to_none=True)
        loss.backward()
        optimiser.step()

    step()  # warm-up: allocations, Adam state
    walls: list[float] = []
    cpus: list[float] = []
    start = time.perf_counter()
    while len(walls) < max_steps and (time.perf_counter() - start < min_seconds or len(walls) < 2):
        wall, cpu = time.perf_counter(), time.process_time()
        step()
        walls.append(time.perf_counter() - wall)
        cpus.append(time.process_time() - cpu)
    wall_step = statistics.median(walls)
    cpu_step = statistics.median(cpus)
    return {
        "case": case,
        "params": sum(p.numel() for p in encoder.parameters()),
        "steps": len(walls),
        "wall_step": wall_step,
        "cpu_step": cpu_step,
        "views_wall": batch_size / wall_step,
        "views_cpu": batch_size / cpu_step,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--min-seconds", type=float, default=8.0)
    parser.add_argument("--max-steps", type=int, default=20)
    parser.add_argument("--only", help="run only cases whose label contains this text")
    parser.add_argument("--out", type=Path, help="write the markdown table here")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    lines = [
        f"torch {torch.__version__}, {args.threads} thread(s), batch {args.batch_size}, "
        f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs visible, "
        f"load average before: {os.getloadavg()[0]:.2f}",
        "",
        "| encoder and crop | params | steps | s/step (wall) | views/s (wall) "
        "| views/s (CPU time) |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    print("\n".join(lines), flush=True)
    for case in CASES:
        if args.only and args.only not in case.label:
            continue
        result = time_steps(
            case,
            batch_size=args.batch_size,
            min_seconds=args.min_seconds,
            max_steps=args.max_steps,
        )
        line = (
            f"| {case.label} | {result['params'] / 1e6:.2f} M | {result['steps']} "
            f"| {result['wall_step']:.2f} | {result['views_wall']:.1f} "
            f"| {result['views_cpu']:.1f} |"
        )
        print(line, flush=True)
        lines.append(line)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
