"""Paired comparison: CLMR's augmentation chain at two revisions of ``musicssl.augment``.

Both versions are loaded into one process (each revision's ``src/musicssl/augment`` as a package
of its own) and timed in alternating rounds on the same draws: round i seeds both chains with
i, and which version runs first alternates from round to round. The figure is the median of
the per-round ratios ``time(base) / time(candidate)``, with its quartiles: on a machine whose
speed drifts, or whose cores are shared, only a ratio taken within one round is steady.

A speed trick is worth its lines when the chain without it (``base``) takes at least 5% longer
than the chain with it: a ratio of 1.05 or more.

Usage::

    python bench/ab_augment.py HEAD~1 HEAD            # two commits
    python bench/ab_augment.py HEAD .                 # HEAD against the working tree
"""

from __future__ import annotations

import argparse
import importlib
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from types import ModuleType

import torch

from musicssl.runtime import keep_freed_memory

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = "src/musicssl/augment"


def load_revision(revision: str, folder: Path, name: str) -> ModuleType:
    """``musicssl.augment`` as it is at ``revision``, imported as ``name``.

    ``revision``: a git revision, "." for the working tree, or a folder holding the package's
    modules (a variant made by hand).
    """
    target = folder / name
    target.mkdir()
    if revision == "." or Path(revision).is_dir():
        where = ROOT / PACKAGE if revision == "." else Path(revision)
        files = {path.name: path.read_text() for path in where.glob("*.py")}
    else:
        listing = subprocess.run(
            ["git", "ls-tree", "--name-only", f"{revision}:{PACKAGE}"],
            cwd=ROOT,
            check=True,
            capture_output=True,
            text=True,
        ).stdout.split()
        files = {
            file: subprocess.run(
                ["git", "show", f"{revision}:{PACKAGE}/{file}"],
                cwd=ROOT,
                check=True,
                capture_output=True,
                text=True,
            ).stdout
            for file in listing
            if file.endswith(".py")
        }
    for file, text in files.items():
        (target / file).write_text(text.replace("musicssl.augment", name))
    return importlib.import_module(name)


def synthetic_batch(batch_size: int, num_samples: int, *, sr: int) -> torch.Tensor:
    """Harmonic tones with decaying envelopes and a little noise. Shape: (batch, samples)."""
    generator = torch.Generator().manual_seed(0)
    time_s = torch.arange(num_samples) / sr
    f0 = 80 * 2 ** (3.5 * torch.rand(batch_size, 4, 1, generator=generator))
    onset = time_s[-1] * torch.rand(batch_size, 4, 1, generator=generator)
    envelope = torch.where(time_s >= onset, torch.exp(-3 * (time_s - onset)), 0.0)
    harmonics = [envelope / k * torch.sin(2 * torch.pi * k * f0 * time_s) for k in range(1, 6)]
    tones = torch.stack(harmonics).sum(0).sum(1)  # five harmonics of four notes each
    tones += 0.01 * torch.randn(batch_size, num_samples, generator=generator)
    return 0.3 * tones / tones.abs().amax(dim=1, keepdim=True)


def main() -> None:
    if not {"OMP_WAIT_POLICY", "GOMP_SPINCOUNT"} & os.environ.keys():
        os.environ["OMP_WAIT_POLICY"] = "PASSIVE"  # as bench_augment.py and the command run
        os.execv(sys.executable, [sys.executable, *sys.argv])
    keep_freed_memory()
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "base", help="revision without the change ('.': the working tree; or a folder)"
    )
    parser.add_argument("candidate", nargs="?", default=".", help="revision with it")
    parser.add_argument("--kinds", nargs="+", default=["preserve_tempo", "tape"])
    parser.add_argument("--rounds", type=int, default=40)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=48)
    parser.add_argument("--num-samples", type=int, default=59049)
    parser.add_argument("--source-samples", type=int, default=88200)
    parser.add_argument("--sr", type=int, default=22050)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    source = synthetic_batch(args.batch_size, args.source_samples, sr=args.sr)
    batch = torch.cat([source, source])  # both views in one pass, as train.py makes them

    with tempfile.TemporaryDirectory() as folder:
        sys.path.insert(0, folder)
        versions = [
            load_revision(revision, Path(folder), f"augment_{tag}")
            for revision, tag in ((args.base, "base"), (args.candidate, "candidate"))
        ]
        for kind in args.kinds:
            chains = [
                version.clmr_chain(args.sr, num_samples=args.num_samples, pitch_kind=kind)
                for version in versions
            ]

            def run(chain: torch.nn.Module, seed: int) -> torch.Tensor:
                return chain(batch, generator=torch.Generator().manual_seed(seed))[0]

            outputs = [run(chain, args.rounds) for chain in chains]  # warm-up: compiles
            error = (outputs[1] - outputs[0]).norm(dim=1) / outputs[0].norm(dim=1)
            for chain in chains:
                run(chain, args.rounds + 1)
            ratios: list[float] = []
            seconds: list[list[float]] = [[], []]
            for seed in range(args.rounds):
                order = (0, 1) if seed % 2 == 0 else (1, 0)
                took = [0.0, 0.0]
                for which in order:
                    start = time.perf_counter()
                    run(chains[which], seed)
                    took[which] = time.perf_counter() - start
                    seconds[which].append(took[which])
                ratios.append(took[0] / took[1])
            low, mid, high = statistics.quantiles(ratios, n=4)
            print(
                f"{kind}: base/candidate {mid:.3f} (quartiles {low:.3f}-{high:.3f}, "
                f"{args.rounds} rounds); median ms base {1000 * statistics.median(seconds[0]):.1f}"
                f", candidate {1000 * statistics.median(seconds[1]):.1f}; largest relative "
                f"difference of an output row {float(error.max()):.2e}"
            )


if __name__ == "__main__":
    main()
