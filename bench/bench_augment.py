"""Benchmark: CLMR's augmentation chain, two views of a batch, against peer libraries.

Times musicssl's batched chain (``clmr_chain``) making two views of a (48, 59049) batch at
22.05 kHz beside the closest equivalent chains in ``audiomentations`` (per example, numpy on
CPU) and ``torch-audiomentations`` (batched torch, per-example parameters), and the
tempo-preserving pitch shift alone against ``librosa.effects.pitch_shift``. Prints a table and
writes ``bench/results/augment_<device>.md``.

Bench-only dependencies (never package dependencies): audiomentations, librosa, and
torch-audiomentations with its julius, torch-pitch-shift, primePy and torchaudio. Any that is
missing is skipped and the report says so. torchaudio must match the local torch build; its
PyPI wheel is built for CUDA, so a CPU-only torch needs it installed without its compiled
extension (the peer only uses its pure-PyTorch resampling and phase vocoder), e.g.::

    pip install --no-deps --target .cache/bench-peers torchaudio torch-audiomentations \
        torch-pitch-shift julius primePy && rm .cache/bench-peers/torchaudio/lib/*.so

and ``--peer-path .cache/bench-peers`` puts that directory on ``sys.path``.

OpenMP's wait policy is PASSIVE unless ``OMP_WAIT_POLICY`` says otherwise (see ``main``).

Usage::

    python bench/bench_augment.py                    # CPU, 2 torch threads
    python bench/bench_augment.py --device cuda      # GPU; audiomentations stays on CPU
"""

from __future__ import annotations

import argparse
import importlib
import os
import platform
import random
import resource
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from musicssl.augment import Compose, PitchShift, clmr_chain
from musicssl.augment.noise import NoiseBank, noise_offsets
from musicssl.augment.reverb import impulse_response
from musicssl.runtime import keep_freed_memory

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
            lambda seed, t=transform, x=x: t(x, generator=torch.Generator().manual_seed(seed)),
            repeats=repeats,
            device=source.device,
            statistic="median",
        )
        costs[key] = seconds * 1000 / source.shape[0]
        x, _ = transform(x, generator=generator)
    return costs


def audiomentations_chain(
    source: np.ndarray, args: argparse.Namespace, delay_dir: Path, room_dir: Path
) -> Callable[[], object]:
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
) -> Callable[[], object]:
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
                lambda seed, s=shift: s.apply(x_device, params),
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


def main() -> None:
    if not {"OMP_WAIT_POLICY", "GOMP_SPINCOUNT"} & os.environ.keys():
        # The runtime the musicssl command sets up (musicssl.runtime): OpenMP reads its wait
        # policy when torch loads, so start afresh with it.
        os.environ["OMP_WAIT_POLICY"] = "PASSIVE"
        os.execv(sys.executable, [sys.executable, *sys.argv])
    keeps_memory = keep_freed_memory()
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
    args = parser.parse_args()

    if Path(args.peer_path).is_dir():
        sys.path.insert(0, str(Path(args.peer_path).resolve()))
    device = torch.device(args.device)
    torch.set_num_threads(args.threads)
    load_before = os.getloadavg()
    busy_before, mine_before = busy_cpu_seconds()
    wall_before = time.perf_counter()
    source_np = synthetic_music(args.batch_size, args.source_samples, sr=args.sr, seed=0)
    source = torch.from_numpy(source_np)
    views = 2 * args.batch_size

    rows: list[tuple[str, str, float]] = []
    notes: list[str] = []
    other_kind = "tape" if args.pitch_kind == "preserve_tempo" else "preserve_tempo"
    with tempfile.TemporaryDirectory() as folder:
        delay_dir, room_dir = write_impulse_responses(Path(folder), sr=args.sr)
        # Ours and audiomentations in the same rounds, so that their ratio sees one load.
        contenders = [
            (
                f"musicssl clmr_chain, {kind} pitch (batched)",
                str(device),
                ours(source_on, args, kind),
            )
            for kind, source_on in (
                (args.pitch_kind, source.to(device)),
                (other_kind, source.to(device)),
            )
        ]
        if available("audiomentations"):
            run = audiomentations_chain(source_np, args, delay_dir, room_dir)
            contenders.append(("audiomentations (per example)", "cpu", run))
        else:
            notes.append("audiomentations: not installed, skipped.")
        seconds_each = timed_together(
            [run for _, _, run in contenders],
            repeats=args.repeats,
            device=device,
            statistic=args.statistic,
        )
        rows += [(name, where, secs) for (name, where, _), secs in zip(contenders, seconds_each)]
        faults = page_faults_per_run(contenders[0][2], repeats=args.repeats)
        if available("torch_audiomentations"):
            run = torch_audiomentations_chain(source.to(device), args, delay_dir, room_dir)
            seconds = timed(run, repeats=args.peer_repeats, device=device, statistic=args.statistic)
            rows.append(("torch-audiomentations (batched)", str(device), seconds))
        else:
            notes.append("torch-audiomentations: not importable (needs torchaudio), skipped.")
    chain = clmr_chain(args.sr, num_samples=args.num_samples, pitch_kind=args.pitch_kind)
    breakdown = ours_breakdown(chain, source.to(device), repeats=args.repeats)
    pitch = pitch_shift_costs(args, device)
    load_after = os.getloadavg()
    busy_after, mine_after = busy_cpu_seconds()
    wall = time.perf_counter() - wall_before
    others = (busy_after - busy_before) - (mine_after - mine_before)

    header = "| chain | device | two views of the batch (ms) | ms per view |"
    lines = [header, "|---|---|---:|---:|"]
    for name, where, secs in rows:
        lines.append(f"| {name} | {where} | {secs * 1000:.0f} | {secs * 1000 / views:.2f} |")
    ratio_lines = []
    for ours_name, _, ours_secs in rows[:2]:
        for peer_name, _, peer_secs in rows[2:]:
            ratio_lines.append(
                f"- {ours_name} is {peer_secs / ours_secs:.1f}x as fast as {peer_name}"
            )
    breakdown_lines = ["| musicssl transform (CLMR p) | ms per view (median) |", "|---|---:|"]
    breakdown_lines += [f"| {name} | {ms:.2f} |" for name, ms in breakdown.items()]
    pitch_lines = ["| pitch shift (p = 1) | ms per 2.7 s view |", "|---|---:|"]
    pitch_lines += [f"| {name} | {ms:.2f} |" for name, ms in pitch.items()]
    command = "python " + " ".join(sys.argv)
    report = "\n".join(
        [
            f"# Augmentation benchmark ({device.type})",
            "",
            f"CLMR chain, two views of a batch of {args.batch_size} x {args.num_samples} samples "
            f"at {args.sr} Hz (cropped from {args.source_samples}), {args.statistic} of "
            f"{args.repeats} runs (torch-audiomentations: {args.peer_repeats}) after two warm-up "
            "runs; musicssl and audiomentations timed in the same interleaved rounds. Round i "
            "seeds every chain's random choices with i, so each is timed on the same series of "
            "draws in every benchmark run.",
            "",
            *lines,
            "",
            *ratio_lines,
            "",
            *breakdown_lines,
            "",
            *pitch_lines,
            "",
            f"- machine: {machine()}"
            + (f"; {torch.cuda.get_device_name(device)}" if device.type == "cuda" else ""),
            f"- load average (1, 5, 15 min) before: {load_before[0]:.2f}, {load_before[1]:.2f}, "
            f"{load_before[2]:.2f}; after: {load_after[0]:.2f}, {load_after[1]:.2f}, "
            f"{load_after[2]:.2f}; other processes used {others:.0f} CPU-seconds during the "
            f"{wall:.0f} s run ({100 * others / wall / (os.cpu_count() or 1):.0f}% of the "
            "machine)",
            f"- torch {torch.__version__}, {args.threads} intra-op threads, OMP_WAIT_POLICY="
            f"{os.environ.get('OMP_WAIT_POLICY')}, glibc keeping freed memory: {keeps_memory} "
            f"(as the musicssl command runs, see musicssl.runtime): {faults:.0f} page faults "
            f"per pass of the musicssl chain; audiomentations "
            f"{version('audiomentations')}; torch-audiomentations "
            f"{version('torch_audiomentations')}; torchaudio {version('torchaudio')}; "
            f"librosa {version('librosa')}; numpy {np.__version__}",
            f"- command: `{command}`",
            "- peers' chains: polarity inversion, white noise (AddGaussianSNR / AddColoredNoise "
            "with f_decay 0), gain, high- or low-pass (one of two, 12 dB/octave), delay as an "
            "impulse response with one echo, pitch shift (audiomentations: signalsmith_stretch; "
            "torch-audiomentations: torch-pitch-shift), reverb as synthetic room impulse "
            "responses (fully wet); CLMR's probabilities throughout. Cropping by slicing.",
            *[f"- {note}" for note in notes],
            "",
        ]
    )
    print(report)
    out = Path(args.out or f"bench/results/augment_{device.type}.md")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(report)
    print(f"written to {out}")


if __name__ == "__main__":
    main()
