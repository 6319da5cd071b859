"""Cost of embedding every layer against one plain forward pass, on the same batch of windows.

For each encoder, three ways over the same ``--batch-size`` windows, in alternating rounds
(the machine is shared; a median of interleaved rounds keeps a slow spell from favouring one):

- forward: ``encoder(x)``, the clip embedding alone (eval mode, no autograd);
- all layers: ``Model.embed(signal, sr, layers="all", batch_size=B)`` on the windows laid end
  to end, so it encodes exactly that batch; it returns the clip and every layer's mean;
- one pass per layer: the clip plus ``forward_features(x, layer=k)`` for every ``k``, each from
  the input: the cost that ``forward_layers`` removes, shown for scale. It is slow, so it runs
  in the first ``--per-layer-rounds`` rounds only (its layers are warm from the others).

Writes the table to ``--out`` (default bench/results/embed_layers_cpu.md):

    .venv/bin/python bench/bench_embed_layers.py
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from musicssl.embed import Model
from musicssl.encoders import SampleCNN, ShortChunkCNN
from musicssl.files import write_text
from musicssl.runtime import configure_cpu_runtime

COMMAND = ".venv/bin/python bench/bench_embed_layers.py"


def cpu_model() -> str:
    """The processor's name as /proc/cpuinfo gives it (or "unknown")."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return "unknown"


def time_once(run: Callable[[], object]) -> tuple[float, float]:
    """Wall-clock and CPU seconds of one call."""
    wall, cpu = time.perf_counter(), time.process_time()
    run()
    return time.perf_counter() - wall, time.process_time() - cpu


def bench_encoder(
    label: str, encoder: torch.nn.Module, *, batch_size: int, rounds: int, per_layer_rounds: int
) -> dict:
    torch.manual_seed(0)
    model = Model(encoder)  # eval mode
    window = model.window_samples
    x = 0.1 * torch.randn(batch_size, window, generator=torch.Generator().manual_seed(1))
    signal = x.reshape(-1).numpy()  # the windows end to end: embed cuts exactly these

    @torch.no_grad()
    def forward() -> None:
        encoder(x)

    def all_layers() -> None:
        model.embed(signal, model.sample_rate, layers="all", batch_size=batch_size)

    @torch.no_grad()
    def one_pass_per_layer() -> None:
        encoder(x)
        for layer in range(model.num_layers):
            model.encoder.forward_features(x, layer=layer).mean(dim=-1)

    ways = {"forward": forward, "all layers": all_layers, "one pass per layer": one_pass_per_layer}
    # The Model API agrees with the plain pass on this batch (guards the comparison).
    with torch.no_grad():
        expected = encoder(x).mean(0).numpy()
    got = model.embed(signal, model.sample_rate, layers="all", batch_size=batch_size)
    np.testing.assert_allclose(got.clip, expected, rtol=1e-4, atol=1e-5)
    assert got.layers is not None and len(got.layers) == model.num_layers

    times: dict[str, list[tuple[float, float]]] = {name: [] for name in ways}
    forward()  # warm-up
    all_layers()
    for round_index in range(rounds):
        for name, run in ways.items():
            if name != "one pass per layer" or round_index < per_layer_rounds:
                times[name].append(time_once(run))
    medians = {
        name: tuple(statistics.median(column) for column in zip(*values))
        for name, values in times.items()
    }
    return {"label": label, "layers": model.num_layers, "medians": medians, "rounds": rounds}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument(
        "--per-layer-rounds", type=int, default=1, help="rounds that time one pass per layer"
    )
    parser.add_argument("--out", type=Path, default=Path("bench/results/embed_layers_cpu.md"))
    args = parser.parse_args()
    configure_cpu_runtime()  # as the musicssl command does (freed memory kept for reuse)
    torch.set_num_threads(args.threads)

    cases = [
        ("SampleCNN (CLMR: 9 blocks, 3^10 samples @ 22.05 kHz)", SampleCNN()),
        ("ShortChunkCNN (Won et al.: channels 128, 59049 samples @ 16 kHz)", ShortChunkCNN()),
    ]
    load_before = os.getloadavg()[0]
    rows = []
    for label, encoder in cases:
        result = bench_encoder(
            label,
            encoder,
            batch_size=args.batch_size,
            rounds=args.rounds,
            per_layer_rounds=args.per_layer_rounds,
        )
        (base_wall, base_cpu), (all_wall, all_cpu), (per_wall, per_cpu) = (
            result["medians"][name] for name in ("forward", "all layers", "one pass per layer")
        )
        row = (
            f"| {label} | {result['layers']} | {1000 * base_wall:.0f} / {1000 * base_cpu:.0f} "
            f"| {1000 * all_wall:.0f} / {1000 * all_cpu:.0f} "
            f"| {all_wall / base_wall:.2f}x / {all_cpu / base_cpu:.2f}x "
            f"| {1000 * per_wall:.0f} / {1000 * per_cpu:.0f} "
            f"| {per_wall / base_wall:.1f}x / {per_cpu / base_cpu:.1f}x |"
        )
        print(row, flush=True)
        rows.append(row)

    text = "\n".join(
        [
            "# Embedding every layer against one forward pass (CPU)",
            "",
            "Command (from the repository root):",
            "",
            f"    {COMMAND} --threads {args.threads} --batch-size {args.batch_size} "
            f"--rounds {args.rounds} --per-layer-rounds {args.per_layer_rounds}",
            "",
            f"Machine: {cpu_model()}, {os.cpu_count()} CPUs visible (shared with other jobs; "
            f"load average {load_before:.2f} before the run), torch {torch.__version__}, "
            f"{args.threads} thread(s); freed memory kept for reuse, as the `musicssl` command "
            "does (`musicssl.runtime.configure_cpu_runtime`).",
            "",
            f"One batch of {args.batch_size} windows (random weights, eval mode, no autograd). "
            "Milliseconds, wall clock / CPU time of the process (contention from other jobs "
            "inflates the first more), are medians of "
            f"{args.rounds} alternating rounds after one warm-up "
            f"({args.per_layer_rounds} for one pass per layer). "
            '*all layers* is `Model.embed(..., layers="all")` on those windows (the clip and '
            "every layer's mean over frames, from `forward_layers`: one pass); *one pass per "
            "layer* recomputes every layer from the input, for scale. Target: all layers "
            "within 1.5x of one forward pass.",
            "",
            "| encoder | layers | forward ms | all layers ms | all / forward "
            "| one pass per layer ms | one pass per layer / forward |",
            "|---|---:|---:|---:|---:|---:|---:|",
            *rows,
            "",
        ]
    )
    write_text(args.out, text)
    print(f"written: {args.out}")


if __name__ == "__main__":
    main()
