"""What transfers: trained runs beside their random weights and the hand-made baselines.

Every built-in task on the usual test split and on the transfer renders (the test clips
played by instrument families that pretraining never hears). For each run under ``--runs``
and for the same architecture with random weights, the clip embedding (``emb``) and the
layer chosen on valid (``--layers all``, probe tasks; retrieval has no valid split, so it
reads ``emb``) beside the MFCC, log-mel and tempogram statistics. One markdown table of
every task's headline metric (mean ± std over probe seeds), and the CPU minutes each
evaluation took.

    OMP_NUM_THREADS=1 python bench/bench_transfer.py --corpus data/corpus \\
        --runs runs/simclr-demo --out-dir runs/transfer-eval > bench/results/transfer_cpu.md
"""

from __future__ import annotations

import argparse
import json
import platform
import resource
import sys
from pathlib import Path

from musicssl.evaluate.run import evaluate

TASKS = ("style", "key", "tempo", "instrument", "pitch", "same_piece", "degraded_copy")
FEATURES = ("mfcc", "logmel", "tempogram")


def cpu_minutes() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return (usage.ru_utime + usage.ru_stime) / 60


def evaluated(
    source: str, out: Path, args: argparse.Namespace, baselines: tuple, reference=None
) -> dict:
    """The results of ``source`` (evaluated unless ``out`` holds them) and its CPU minutes."""
    results = out / "results.json"
    if not results.exists():
        before = cpu_minutes()
        evaluate(
            source,
            out=out,
            corpus=args.corpus,
            tasks=[*TASKS, "transfer"],
            seeds=args.seeds,
            layers="all",
            baselines=baselines,
            cache=args.out_dir / "cache",
            reference=reference,
        )
        (out / "cpu_minutes.txt").write_text(f"{cpu_minutes() - before:.1f}\n")
    minutes = out / "cpu_minutes.txt"
    data = json.loads(results.read_text())
    data["cpu_minutes"] = minutes.read_text().strip() if minutes.exists() else "?"
    return data


def score(task: dict | None, layer: str | None = None) -> tuple[float, float] | None:
    if task is None:
        return None
    metrics = task["metrics"] if layer is None else task["by_layer"][layer]
    summary = metrics[task["main"]]
    return summary["mean"], summary["std"]


def chosen(task: dict | None) -> tuple[str, tuple[float, float] | None]:
    """The layer chosen on valid and its score, or ``emb`` where there is none."""
    if task is None or not task.get("best_layer"):
        return "emb", score(task)
    return task["best_layer"], score(task, task["best_layer"])


def cell(value: tuple[float, float] | None, note: str = "") -> str:
    if value is None:
        return "-"
    return f"{value[0]:.3f} ± {value[1]:.3f}{note}"


def table(runs: dict[str, dict], random: dict) -> list[str]:
    names = [n for n in random["tasks"]]
    header = ["task", "metric"]
    for run in runs:
        header += [f"{run} emb", f"{run} chosen layer"]
    header += ["random emb", "random chosen layer", *FEATURES, "chance"]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    baselines = next(iter(runs.values()))["baselines"]
    for name in names:
        task = random["tasks"][name]
        row = [name, task["main"]]
        for results in runs.values():
            mine = results["tasks"].get(name)
            layer, value = chosen(mine)
            row += [cell(score(mine)), cell(value, f" ({layer})")]
        layer, value = chosen(task)
        row += [cell(score(task)), cell(value, f" ({layer})")]
        for feature in FEATURES:  # a baseline's entry holds its metrics' summaries
            summary = baselines.get(f"baseline:{feature}", {}).get(name, {}).get(task["main"])
            row.append(cell(None if summary is None else (summary["mean"], summary["std"])))
        row.append(f"{task['chance'][task['main']]:.3f}")
        lines.append("| " + " | ".join(row) + " |")
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--corpus", type=Path, required=True)
    parser.add_argument("--runs", type=Path, nargs="+", required=True)
    parser.add_argument("--out-dir", type=Path, required=True, help="reports and the cache")
    parser.add_argument("--seeds", type=int, default=3)
    args = parser.parse_args()
    args.out_dir.mkdir(parents=True, exist_ok=True)
    runs = {
        run.name: evaluated(str(run), args.out_dir / run.name, args, FEATURES) for run in args.runs
    }
    # The random weights of the first run's architecture (the runs share one encoder).
    random = evaluated(
        "baseline:random",
        args.out_dir / f"random-weights-{args.runs[0].name}",
        args,
        baselines=(),
        reference=args.runs[0],
    )
    print("| evaluation | CPU minutes |\n|---|---:|")
    for name, results in [*runs.items(), ("random weights", random)]:
        print(f"| {name} | {results['cpu_minutes']} |")
    print()
    print("\n".join(table(runs, random)))
    print(
        f"\nMachine: {platform.processor() or platform.machine()}, python {sys.version.split()[0]}"
    )


if __name__ == "__main__":
    main()
