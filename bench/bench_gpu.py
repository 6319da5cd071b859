"""Benchmark: on one GPU, CLMR's augmentation chain beside the model step it has to feed.

In one run on one device, for two views of a batch of 48 crops of 59049 samples at 22.05 kHz
(96 views), as the training loop makes them:

1. host syncs: one pass of the chain per pitch kind under
   ``torch.cuda.set_sync_debug_mode("warn")``; every synchronising call is counted and located;
2. musicssl's chain (``build_chain("clmr")``, both pitch kinds), and the time per transform;
3. torch-audiomentations' closest chain on the same device (``bench_augment``'s), if importable;
4. one training step of the full CLMR recipe (SampleCNN, SimCLR head, NT-Xent, AdamW) on those
   96 views under bf16 autocast: eager, compiled, compiled with CUDA graphs (``--modes``;
   ``train.compile=true`` trains with the last on a GPU);
5. chain and step together, synchronised after each and back to back as training runs them
   (step alone and chain + step taking turns): the chain's cost as the step sees it; the
   chain's kernel time from the profiler; and the host time to queue each, which decides
   whether the host keeps ahead of the device.

Prints a markdown report and writes ``bench/results/gpu.md`` (``--out``;
``bench/results/gpu_h100.md`` holds runs on an H100). On a CPU it runs too
(small sizes, for checking the script): ``python bench/bench_gpu.py --device cpu --batch-size 4
--modes eager --repeats 2 --out /tmp/gpu.md``.

    python bench/bench_gpu.py                        # CUDA
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
import traceback
import warnings
from collections.abc import Callable
from pathlib import Path

import torch

from bench_augment import (
    available,
    machine,
    ours_breakdown,
    synchronise,
    synthetic_music,
    timed,
    torch_audiomentations_chain,
    version,
    write_impulse_responses,
)
from musicssl.augment import build_chain
from musicssl.encoders import build_encoder
from musicssl.methods import build_method
from musicssl.recipe import Recipe, recipe_path


def steady_seconds(
    runs: list[Callable[[], object]], *, iterations: int, rounds: int, device: torch.device
) -> list[float]:
    """Seconds per call of each run called back to back, synchronised only at round ends.

    This is how the training loop runs: the host queues the next call's kernels while the
    device still works on the last, so host-side work hides behind device work as long as the
    host keeps ahead. The runs take turns, ``rounds`` times ``iterations`` calls each, and the
    median round of each is reported: turns give each the same share of the machine's moods.
    """
    for run in runs:
        run()
    synchronise(device)
    times: list[list[float]] = [[] for _ in runs]
    for _ in range(rounds):
        for run, run_times in zip(runs, times):
            start = time.perf_counter()
            for _ in range(iterations):
                run()
            synchronise(device)
            run_times.append((time.perf_counter() - start) / iterations)
    return [statistics.median(run_times) for run_times in times]


def host_seconds(run: Callable[[int], object], *, repeats: int, device: torch.device) -> float:
    """Median seconds the host spends in ``run(seed)`` before it returns, the device idle first.

    On a GPU this is the time to queue the call's kernels. Back to back, the training loop is
    as fast as the device only while the chain's and the step's host times together stay
    below the step's device time.
    """
    times = []
    for seed in range(repeats):
        synchronise(device)
        start = time.perf_counter()
        run(seed)
        times.append(time.perf_counter() - start)
    synchronise(device)
    return statistics.median(times)


def device_busy_seconds(run: Callable[[], object], device: torch.device) -> float:
    """Seconds the device spends in kernels during one call of ``run`` (from the profiler)."""
    if device.type != "cuda":
        return float("nan")
    from torch.profiler import ProfilerActivity, profile

    synchronise(device)
    with profile(activities=[ProfilerActivity.CUDA]) as prof:
        run()
        synchronise(device)
    return sum(event.self_device_time_total for event in prof.key_averages()) / 1e6


def host_syncs(run: Callable[[], object], device: torch.device) -> list[str]:
    """Where ``run`` made the host wait for the GPU: ``file:line: message`` per sync."""
    if device.type != "cuda":
        return []
    synchronise(device)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        torch.cuda.set_sync_debug_mode("warn")
        try:
            run()
        finally:
            torch.cuda.set_sync_debug_mode("default")
    found = [
        f"{Path(w.filename).name}:{w.lineno}: {str(w.message).splitlines()[0]}"
        for w in caught
        if "synchroniz" in str(w.message) and "prototype" not in str(w.message)
    ]
    if found:  # once more, stopping at the first sync, to print the whole stack
        torch.cuda.set_sync_debug_mode("error")
        try:
            run()
        except RuntimeError:
            print(traceback.format_exc(), flush=True)
        finally:
            torch.cuda.set_sync_debug_mode("default")
    return found


def two_views(chain: torch.nn.Module, x_a: torch.Tensor, x_b: torch.Tensor, seed: int) -> object:
    """Both views in one pass of the chain, as train.py makes them."""
    generator = torch.Generator().manual_seed(seed)  # drawn on the host, as in training
    with torch.no_grad():
        return chain(torch.cat([x_a, x_b]), generator=generator)[0].chunk(2)


def training_step(recipe: Recipe, device: torch.device, *, mode: str | None) -> Callable:
    """One optimiser step of the recipe's method on two given views, bf16 autocast.

    ``mode``: None runs eagerly; otherwise the networks are compiled in place with this
    ``torch.compile`` mode (train.py uses the default), the loss staying eager.
    """
    torch.manual_seed(0)
    encoder = build_encoder(recipe.encoder.name, **recipe.encoder.options)
    method = build_method(recipe.method.name, encoder, **recipe.method.options).to(device)
    optimizer = torch.optim.AdamW(
        method.parameters(), lr=recipe.optim.lr, weight_decay=recipe.optim.weight_decay
    )
    if mode is not None:
        for network in method.children():
            network.compile(mode=mode)

    def step(x_a: torch.Tensor, x_b: torch.Tensor) -> torch.Tensor:
        if mode == "reduce-overhead":
            torch.compiler.cudagraph_mark_step_begin()
        with torch.autocast(device.type, dtype=torch.bfloat16):
            loss = method(x_a, x_b)["loss"]
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        return loss.detach()

    return step


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--batch-size", type=int, default=48, help="view pairs per step")
    parser.add_argument("--recipe", default="clmr", help="recipe whose full size is stepped")
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--peer-repeats", type=int, default=3)
    parser.add_argument(
        "--modes",
        default="eager,compiled,cudagraphs",
        help="steps to time: eager, compiled (torch.compile's default mode), cudagraphs "
        "(its reduce-overhead mode, CUDA only)",
    )
    parser.add_argument("--out", default="bench/results/gpu.md")
    args = parser.parse_args()
    device = torch.device(args.device)
    torch.backends.cudnn.benchmark = True
    recipe = Recipe.load(recipe_path(args.recipe), ["size=full"])
    encoder_sr = int(recipe.encoder.options.get("sample_rate", 22050))
    num_samples = build_encoder(recipe.encoder.name, **recipe.encoder.options).input_samples
    views = 2 * args.batch_size
    started = time.perf_counter()

    def log(text: str) -> None:
        print(f"[{time.perf_counter() - started:6.1f} s] {text}", flush=True)

    crops = torch.from_numpy(
        synthetic_music(2 * args.batch_size, num_samples, sr=encoder_sr, seed=0)
    ).to(device)
    x_a, x_b = crops[: args.batch_size], crops[args.batch_size :]
    rows: list[tuple[str, float]] = []
    syncs: dict[str, list[str]] = {}
    busy: dict[str, float] = {}
    host: dict[str, float] = {}
    notes: list[str] = []
    chains = {
        kind: build_chain("clmr", sr=encoder_sr, pitch_kind=kind).to(device)
        for kind in ("preserve_tempo", "tape")
    }
    for kind, chain in chains.items():
        for seed in (0, 1):  # warm-up: FFT plans, noise bank, compiling the fused kernels
            two_views(chain, x_a, x_b, seed=seed)
        syncs[kind] = host_syncs(lambda c=chain: two_views(c, x_a, x_b, seed=2), device)
        seconds = timed(
            lambda seed, c=chain: two_views(c, x_a, x_b, seed=seed),
            repeats=args.repeats,
            device=device,
            statistic="median",
        )
        busy[kind] = device_busy_seconds(lambda c=chain: two_views(c, x_a, x_b, seed=3), device)
        host[f"one pass of the {kind} chain"] = host_seconds(
            lambda seed, c=chain: two_views(c, x_a, x_b, seed=seed),
            repeats=args.repeats,
            device=device,
        )
        rows.append((f"musicssl clmr chain, {kind} pitch", seconds))
        log(f"chain {kind}: {seconds * 1000:.1f} ms, host syncs: {syncs[kind]}")
    with torch.no_grad():
        costs = ours_breakdown(chains["preserve_tempo"], crops, repeats=args.repeats)
    log("breakdown done")

    peer_note = ""
    if available("torch_audiomentations"):
        peer_args = argparse.Namespace(sr=encoder_sr, num_samples=num_samples)
        # Its chain crops too (by slicing); hand it crops a little longer than needed.
        longer = torch.cat([x_a, x_a[:, : num_samples // 2]], dim=1)
        try:
            with tempfile.TemporaryDirectory() as folder:
                delay_dir, room_dir = write_impulse_responses(Path(folder), sr=encoder_sr)
                peer = torch_audiomentations_chain(longer, peer_args, delay_dir, room_dir)
                seconds = timed(peer, repeats=args.peer_repeats, device=device, statistic="median")
        except Exception as error:  # a peer's failure is reported, not fatal to the rest
            peer_note = f"torch-audiomentations failed: {type(error).__name__}: {error}"
            log(peer_note)
        else:
            rows.append(("torch-audiomentations, closest chain (per example)", seconds))
            log(f"peer: {seconds * 1000:.1f} ms")
    else:
        peer_note = "torch-audiomentations: not importable here, skipped."

    step_rows: list[tuple[str, float]] = []
    known = {
        "eager": ("eager", None),
        "compiled": ("compiled", "default"),
        "cudagraphs": ("compiled, CUDA graphs", "reduce-overhead"),
    }
    modes = [known[name] for name in args.modes.split(",")]
    chain = chains[recipe.augment.options.get("pitch_kind", "preserve_tempo")]
    for label, mode in modes:
        try:
            step = training_step(recipe, device, mode=mode)
            for _ in range(3):  # compilation, cuDNN autotuning, AdamW state
                step(x_a, x_b)
            synchronise(device)
            seconds = timed(
                lambda seed, s=step: s(x_a, x_b),
                repeats=args.repeats,
                device=device,
                statistic="median",
            )
            host[f"one {label} step"] = host_seconds(
                lambda seed, s=step: s(x_a, x_b), repeats=args.repeats, device=device
            )

            def both(seed: int = 4, s: Callable = step) -> None:
                views_a, views_b = two_views(chain, x_a, x_b, seed=seed)
                s(views_a, views_b)

            synced = timed(both, repeats=args.repeats, device=device, statistic="median")
            alone, together = steady_seconds(
                [lambda s=step: s(x_a, x_b), both], iterations=args.repeats, rounds=6, device=device
            )
        except Exception as error:  # one mode failing still reports the others
            log(f"step {label} failed: {type(error).__name__}: {error}")
            continue
        step_rows += [
            (f"{recipe.encoder.name} step, bf16 autocast, {label}", seconds),
            (f"chain + {label} step, synchronised after each", synced),
            (f"{label} step, back to back", alone),
            (f"chain + {label} step, back to back as in training", together),
        ]
        cost = together - alone
        notes.append(
            f"the chain's cost to the {label} step, back to back as in training: "
            f"{cost * 1000:+.1f} ms ({100 * cost / alone:+.0f}% of {alone * 1000:.1f} ms)"
        )
        log(
            f"step {label}: {seconds * 1000:.1f} ms; back to back {alone * 1000:.1f} ms, "
            f"with chain {together * 1000:.1f} ms"
        )
    memory = torch.cuda.max_memory_allocated(device) / 2**30 if device.type == "cuda" else 0.0

    step_ms = {name: seconds * 1000 for name, seconds in step_rows}
    # The reference step: the compiled one if it ran, else the first mode timed.
    reference_name = next(
        (name for name in step_ms if name.endswith(", compiled")), next(iter(step_ms), "")
    )
    reference = step_ms.get(reference_name, float("nan"))
    lines = [
        f"# Augmentation beside the model step ({device.type})",
        "",
        f"Two views of a batch of {args.batch_size} x {num_samples} samples at {encoder_sr} Hz "
        f"({views} views); median of {args.repeats} synchronised runs after a warm-up "
        f"(torch-audiomentations: {args.peer_repeats}).",
        "",
        f"| chain, {views} views | ms | ms per view | share of the model step |",
        "|---|---:|---:|---:|",
    ]
    for name, seconds in rows:
        ms = seconds * 1000
        lines.append(f"| {name} | {ms:.1f} | {ms / views:.3f} | {100 * ms / reference:.0f}% |")
    lines += ["", "| training step, same views | ms |", "|---|---:|"]
    lines += [f"| {name} | {ms:.1f} |" for name, ms in step_ms.items()]
    lines += ["", "| musicssl transform (CLMR p, preserve_tempo) | ms per view |", "|---|---:|"]
    lines += [f"| {name} | {ms:.3f} |" for name, ms in costs.items()]
    lines += [""]
    lines += [f"- {note}" for note in notes]
    for kind, seconds in busy.items():
        lines.append(
            f"- GPU busy in kernels during one pass of the {kind} chain (profiler): "
            f"{seconds * 1000:.2f} ms"
        )
    for what, seconds in host.items():
        lines.append(f"- host time to queue {what} (device idle before): {seconds * 1000:.2f} ms")
    for kind, found in syncs.items():
        where = "; ".join(sorted(set(found))) if found else "none"
        lines.append(f"- host syncs in one pass of the {kind} chain: {len(found)} ({where})")
    lines += [
        f"- the share of the model step is against the `{args.recipe}` recipe's full size: "
        f"{reference_name} ({reference:.1f} ms)",
        f"- peak GPU memory allocated: {memory:.1f} GiB" if device.type == "cuda" else "- CPU run",
        f"- machine: {machine()}"
        + (f"; {torch.cuda.get_device_name(device)}" if device.type == "cuda" else ""),
        f"- torch {torch.__version__}; torch-audiomentations {version('torch_audiomentations')};"
        f" torchaudio {version('torchaudio')}",
        f"- command: `python {' '.join(sys.argv)}`",
    ]
    if peer_note:
        lines.append(f"- {peer_note}")
    report = "\n".join(lines) + "\n"
    print(report)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(report)
    print(f"written to {out}")


if __name__ == "__main__":
    main()
