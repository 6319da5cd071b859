"""Benchmark: CLMR's augmentation chain, two views of a batch, against peer libraries.

Times musicssl's batched chain (``clmr_chain``) making two views of a (48, 59049) batch at
22.05 kHz beside the closest equivalent chains in ``audiomentations`` (per example, numpy on
CPU) and ``torch-audiomentations`` (batched torch, per-example parameters), and the
tempo-preserving pitch shift alone against ``librosa.effects.pitch_shift``. Prints a table and
writes ``bench/results/augment_<device>.md``.

The peers (``augment_peers``) are bench-only dependencies, installed into a folder of their
own that ``--peer-path`` puts on ``sys.path``, beside the project's environment and its torch.
torchaudio must match the local torch build; its PyPI wheel is built for CUDA, so a CPU-only
torch needs it without its compiled extension (the peer only uses its pure-PyTorch resampling
and phase vocoder)::

    pip install --target .cache/bench-peers audiomentations librosa
    pip install --no-deps --target .cache/bench-peers torchaudio torch-audiomentations \
        torch-pitch-shift julius primePy && rm .cache/bench-peers/torchaudio/lib/*.so

(then remove the copies of numpy and scipy that the first line puts there: the environment's
own serve).

OpenMP's wait policy is PASSIVE unless ``OMP_WAIT_POLICY`` says otherwise (see ``main``).

Usage::

    python bench/bench_augment.py                    # CPU, 2 torch threads
    python bench/bench_augment.py --device cuda      # GPU; audiomentations stays on CPU
"""

from __future__ import annotations

import argparse
import os
import platform
import resource
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import torch

from augment_peers import (
    audiomentations_chain,
    available,
    synthetic_music,
    torch_audiomentations_chain,
    version,
    write_impulse_responses,
)
from musicssl.augment import Compose, PitchShift, clmr_chain
from musicssl.runtime import keep_freed_memory


def synchronise(device: torch.device) -> None:
    """Wait for the device's queued work (a no-op on the CPU)."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def timed_together(
    runs: list[Callable[[int], object]], *, repeats: int, device: torch.device, statistic: str
) -> list[float]:
    """Wall time of each run in seconds, in interleaved rounds after two warm-up rounds.

    Two, because our fused kernels compile on their first calls (a batch of one example gets
    a version of its own; see ``musicssl.augment.fused``): training pays that once.

    Interleaving gives every run the same share of whatever else the machine is doing. Round
    i calls every run with seed i: a chain redraws its random choices (which transforms apply
    to which examples) from that seed, so each contender is timed on the same series of draws
    in every benchmark run, and none is timed on a single lucky or unlucky one. The statistic
    is the ``median`` (a typical draw) or the ``min`` (for runs whose work does not depend on
    the seed: the round least disturbed by other processes, as ``timeit`` advises).
    """
    for run in runs:
        run(repeats)  # draws no timed round makes
        run(repeats + 1)
    synchronise(device)
    times: list[list[float]] = [[] for _ in runs]
    for seed in range(repeats):
        for run, run_times in zip(runs, times):
            start = time.perf_counter()
            run(seed)
            synchronise(device)
            run_times.append(time.perf_counter() - start)
    pick = min if statistic == "min" else statistics.median
    return [pick(run_times) for run_times in times]


def timed(
    run: Callable[[int], object], *, repeats: int, device: torch.device, statistic: str
) -> float:
    """Wall time of one run in seconds (see ``timed_together``)."""
    return timed_together([run], repeats=repeats, device=device, statistic=statistic)[0]


def ours(
    source: torch.Tensor, args: argparse.Namespace, pitch_kind: str
) -> Callable[[int], object]:
    chain = clmr_chain(args.sr, num_samples=args.num_samples, pitch_kind=pitch_kind)
    generator = torch.Generator()  # parameters are drawn on the host

    def run(seed: int) -> object:
        generator.manual_seed(seed)
        # Both views in one pass, as train.py makes them; each example draws its own crop.
        views, _ = chain(torch.cat([source, source]), generator=generator)
        return views.chunk(2)

    return run


def page_faults_per_run(run: Callable[[int], object], *, repeats: int) -> float:
    """Minor page faults of this process per run: memory faulted in afresh, not reused."""
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    for seed in range(repeats):
        run(seed)
    return (resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before) / repeats


def ours_breakdown(chain: Compose, source: torch.Tensor, *, repeats: int) -> dict[str, float]:
    """Milliseconds per view spent in each transform of ``chain``, at its probabilities.

    Each timed run draws afresh, so the median (not the luckiest draw) summarises them.
    """
    generator = torch.Generator().manual_seed(0)  # parameters are drawn on the host
    costs = {}
    x = source
    for key, transform in zip(chain.keys, chain.transforms):
        seconds = timed(
            seeded_run(transform, x),
            repeats=repeats,
            device=source.device,
            statistic="median",
        )
        costs[key] = seconds * 1000 / source.shape[0]
        x, _ = transform(x, generator=generator)
    return costs


def seeded_run(transform: torch.nn.Module, x: torch.Tensor) -> Callable[[int], object]:
    """A run of ``transform`` on ``x`` that draws its parameters from the seed it is given."""
    return lambda seed: transform(x, generator=torch.Generator().manual_seed(seed))


def pitch_shift_costs(args: argparse.Namespace, device: torch.device) -> dict[str, float]:
    """Milliseconds per 2.7 s view: ours (batched, 1 and N threads) and per-example peers."""
    x = torch.from_numpy(synthetic_music(args.batch_size, args.num_samples, sr=args.sr, seed=1))
    semitones = np.random.default_rng(2).uniform(-5, 5, args.batch_size)
    params = {  # host tensors, as sample_params draws them
        "applied": torch.ones(args.batch_size, dtype=torch.bool),
        "semitones": torch.from_numpy(semitones).float(),
    }
    costs: dict[str, float] = {}
    per_view = 1000 / args.batch_size
    x_device = x.to(device)
    for kind in ("preserve_tempo", "tape"):
        shift = PitchShift(sr=args.sr, kind=kind)
        threads = (1, args.threads) if device.type == "cpu" else (args.threads,)
        for count in threads:
            torch.set_num_threads(count)
            seconds = timed(
                lambda seed: shift.apply(x_device, params),  # noqa: B023 (called before shift changes)
                repeats=args.repeats,
                device=device,
                statistic=args.statistic,
            )
            costs[f"musicssl {kind}, batched, {count} thread(s)"] = seconds * per_view
    torch.set_num_threads(args.threads)
    if available("librosa"):
        import librosa

        rows = x.numpy()[: args.peer_examples]

        def run_librosa(seed: int) -> object:
            return [
                librosa.effects.pitch_shift(r, sr=args.sr, n_steps=s)
                for r, s in zip(rows, semitones)
            ]

        seconds = timed(
            run_librosa, repeats=args.repeats, device=torch.device("cpu"), statistic=args.statistic
        )
        costs["librosa.effects.pitch_shift, per example"] = seconds * 1000 / len(rows)
    if available("audiomentations"):
        import audiomentations as am

        shift = am.PitchShift(min_semitones=-5.0, max_semitones=5.0, p=1.0)
        rows = x.numpy()[: args.peer_examples]
        seconds = timed(
            lambda seed: [shift(r, sample_rate=args.sr) for r in rows],
            repeats=args.repeats,
            device=torch.device("cpu"),
            statistic=args.statistic,
        )
        costs["audiomentations PitchShift (signalsmith), per example"] = seconds * 1000 / len(rows)
    return costs


def busy_cpu_seconds() -> tuple[float, float]:
    """CPU seconds spent so far by the whole machine (from /proc/stat) and by this process."""
    import resource

    own = resource.getrusage(resource.RUSAGE_SELF)
    mine = own.ru_utime + own.ru_stime
    try:
        with open("/proc/stat") as stat:
            fields = [int(v) for v in stat.readline().split()[1:]]
        machine_total = (sum(fields[:8]) - fields[3] - fields[4]) / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError):
        machine_total = float("nan")
    return machine_total, mine


def machine() -> str:
    cpu = platform.processor() or "unknown CPU"
    try:
        with open("/proc/cpuinfo") as info:
            cpu = next(line.split(":", 1)[1].strip() for line in info if "model name" in line)
    except (OSError, StopIteration):
        pass
    return f"{cpu}, {os.cpu_count()} logical CPUs, {platform.system()} {platform.release()}"


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=2, help="torch intra-op threads")
    parser.add_argument("--batch-size", type=int, default=48)
    parser.add_argument("--num-samples", type=int, default=59049)
    parser.add_argument("--source-samples", type=int, default=88200, help="length cropped from")
    parser.add_argument("--sr", type=int, default=22050)
    parser.add_argument("--pitch-kind", default="preserve_tempo")
    parser.add_argument("--repeats", type=int, default=15, help="timed rounds, seeds 0, 1, ...")
    parser.add_argument(
        "--peer-repeats", type=int, default=2, help="timed runs of torch-audiomentations"
    )
    parser.add_argument(
        "--statistic",
        choices=("min", "median"),
        default="median",
        help="summary of the timed rounds: median (a typical draw of the chains' random "
        "choices) or min (the luckiest draw in the least disturbed round)",
    )
    parser.add_argument(
        "--peer-examples",
        type=int,
        default=24,
        help="examples timed in the per-example pitch-shift comparison",
    )
    parser.add_argument(
        "--peer-path",
        default=".cache/bench-peers",
        help="extra sys.path entry holding bench-only peers, if it exists",
    )
    parser.add_argument("--out", default=None, help="markdown report (default bench/results/)")
    return parser.parse_args()


def chains(
    args: argparse.Namespace, device: torch.device
) -> tuple[list[tuple[str, str, float]], float, list[str]]:
    """Seconds per two views of the batch for each chain, the page faults of a pass of ours,
    and notes on the peers that were skipped."""
    source_np = synthetic_music(args.batch_size, args.source_samples, sr=args.sr, seed=0)
    source = torch.from_numpy(source_np).to(device)
    other_kind = "tape" if args.pitch_kind == "preserve_tempo" else "preserve_tempo"
    notes = []
    with tempfile.TemporaryDirectory() as folder:
        delay_dir, room_dir = write_impulse_responses(Path(folder), sr=args.sr)
        # Ours and audiomentations in the same rounds, so that their ratio sees one load.
        contenders = [
            (f"musicssl clmr_chain, {kind} pitch (batched)", str(device), ours(source, args, kind))
            for kind in (args.pitch_kind, other_kind)
        ]
        if available("audiomentations"):
            run = audiomentations_chain(source_np, args, delay_dir, room_dir)
            contenders.append(("audiomentations (per example)", "cpu", run))
        else:
            notes.append("audiomentations: not installed, skipped.")
        seconds = timed_together(
            [run for _, _, run in contenders],
            repeats=args.repeats,
            device=device,
            statistic=args.statistic,
        )
        rows = [(name, where, secs) for (name, where, _), secs in zip(contenders, seconds)]
        faults = page_faults_per_run(contenders[0][2], repeats=args.repeats)
        if available("torch_audiomentations"):
            run = torch_audiomentations_chain(source, args, delay_dir, room_dir)
            secs = timed(run, repeats=args.peer_repeats, device=device, statistic=args.statistic)
            rows.append(("torch-audiomentations (batched)", str(device), secs))
        else:
            notes.append("torch-audiomentations: not importable (needs torchaudio), skipped.")
    return rows, faults, notes


def table(header: tuple[str, ...], rows: Sequence[Sequence[object]]) -> list[str]:
    """A markdown table: text columns left, numbers right (floats to two decimals)."""
    align = ["---:" if isinstance(cell, (int, float)) else "---" for cell in rows[0]]
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join(align) + "|"]
    for row in rows:
        cells = [f"{cell:.2f}" if isinstance(cell, float) else str(cell) for cell in row]
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def report(
    args: argparse.Namespace,
    device: torch.device,
    rows: list[tuple[str, str, float]],
    breakdown: dict[str, float],
    pitch: dict[str, float],
    conditions: list[str],
) -> str:
    """The results page: the tables, the machine and the command."""
    views = 2 * args.batch_size
    chain_rows = [
        (name, where, round(secs * 1000), secs * 1000 / views) for name, where, secs in rows
    ]
    ratios = [
        f"- {ours_name} is {peer_secs / ours_secs:.1f}x as fast as {peer_name}"
        for ours_name, _, ours_secs in rows[:2]
        for peer_name, _, peer_secs in rows[2:]
    ]
    cpu_name = f"; {torch.cuda.get_device_name(device)}" if device.type == "cuda" else ""
    return "\n".join(
        [
            f"# Augmentation benchmark ({device.type})",
            "",
            f"CLMR chain, two views of a batch of {args.batch_size} x {args.num_samples} samples "
            f"at {args.sr} Hz (cropped from {args.source_samples}), {args.statistic} of "
            f"{args.repeats} rounds (torch-audiomentations: {args.peer_repeats}) after two "
            "warm-up rounds; musicssl and audiomentations timed in the same interleaved rounds. "
            "Round i seeds every chain's random choices with i, so each is timed on the same "
            "series of draws in every run.",
            "",
            *table(("chain", "device", "two views of the batch (ms)", "ms per view"), chain_rows),
            "",
            *ratios,
            "",
            *table(
                ("musicssl transform (CLMR p)", "ms per view (median)"), list(breakdown.items())
            ),
            "",
            *table(("pitch shift (p = 1)", "ms per 2.7 s view"), list(pitch.items())),
            "",
            f"- machine: {machine()}{cpu_name}; torch {torch.__version__}, {args.threads} "
            "intra-op threads",
            *conditions,
            f"- command: `python {' '.join(sys.argv)}`",
            "- peers' chains: polarity inversion, white noise (AddGaussianSNR / AddColoredNoise "
            "with f_decay 0), gain, high- or low-pass (one of two, 12 dB/octave), delay as an "
            "impulse response with one echo, pitch shift (audiomentations: signalsmith_stretch; "
            "torch-audiomentations: torch-pitch-shift), reverb as synthetic room impulse "
            "responses (fully wet); CLMR's probabilities throughout. Cropping by slicing.",
            "",
        ]
    )


def main() -> None:
    if not {"OMP_WAIT_POLICY", "GOMP_SPINCOUNT"} & os.environ.keys():
        # The runtime the musicssl command sets up (musicssl.runtime): OpenMP reads its wait
        # policy when torch loads, so start afresh with it.
        os.environ["OMP_WAIT_POLICY"] = "PASSIVE"
        os.execv(sys.executable, [sys.executable, *sys.argv])
    keeps_memory = keep_freed_memory()
    args = parse_args()
    if Path(args.peer_path).is_dir():
        sys.path.insert(0, str(Path(args.peer_path).resolve()))
    device = torch.device(args.device)
    torch.set_num_threads(args.threads)
    busy_before, mine_before = busy_cpu_seconds()
    wall_before = time.perf_counter()

    rows, faults, notes = chains(args, device)
    chain = clmr_chain(args.sr, num_samples=args.num_samples, pitch_kind=args.pitch_kind)
    source = synthetic_music(args.batch_size, args.source_samples, sr=args.sr, seed=0)
    breakdown = ours_breakdown(chain, torch.from_numpy(source).to(device), repeats=args.repeats)
    pitch = pitch_shift_costs(args, device)

    busy_after, mine_after = busy_cpu_seconds()
    wall = time.perf_counter() - wall_before
    others = (busy_after - busy_before) - (mine_after - mine_before)
    conditions = [
        f"- while it ran, other processes used {100 * others / wall / (os.cpu_count() or 1):.0f}%"
        " of the machine",
        f"- OMP_WAIT_POLICY={os.environ.get('OMP_WAIT_POLICY')}, glibc keeping freed memory: "
        f"{keeps_memory} (as the musicssl command runs, see musicssl.runtime): {faults:.0f} page "
        "faults per pass of the musicssl chain",
        f"- audiomentations {version('audiomentations')}; torch-audiomentations "
        f"{version('torch_audiomentations')}; torchaudio {version('torchaudio')}; librosa "
        f"{version('librosa')}; numpy {np.__version__}",
        *[f"- {note}" for note in notes],
    ]
    text = report(args, device, rows, breakdown, pitch, conditions)
    print(text)
    out = Path(args.out or f"bench/results/augment_{device.type}.md")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(text)
    print(f"written to {out}")


if __name__ == "__main__":
    main()
