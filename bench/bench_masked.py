"""Masked modelling on a CPU: pretrain each recipe, evaluate it, tabulate beside the baselines.

For each recipe (and the contrastive reference), in a run folder under ``--runs``:
``musicssl pretrain RECIPE --out RUNS/NAME`` unless the run exists, then
``musicssl evaluate RUNS/NAME --out REPORTS/NAME --seeds N`` unless the report exists. Prints
one markdown table of every task's headline metric (mean over seeds) for each run beside the
same encoder with random weights and the MFCC and log-mel baselines, the steps and minutes
each run trained, and the pretraining throughput (clips per second: forward, backward and
optimiser step of the method on batches of the recipe's size, data already in memory).

    OMP_WAIT_POLICY=PASSIVE python bench/bench_masked.py --runs runs --reports reports
    python bench/bench_masked.py --throughput-only --threads 2 --throughput-steps 10
    python bench/bench_masked.py --throughput-only --patches 12x16 12x8 12x4   # ViT patch sizes
"""

from __future__ import annotations

import argparse
import csv
import json
import subprocess
import sys
import time
from pathlib import Path

import torch

from musicssl import checkpoint
from musicssl.recipe import Recipe, recipe_path
from musicssl.train import build_parts

RECIPES = {
    "mae": "mae-vit-cpu",
    "bestrq": "bestrq-vit-cpu",
    "simclr": "simclr-shortchunk-cpu",
}
MUSICSSL = str(Path(sys.executable).with_name("musicssl"))


def run_and_report(name: str, recipe: str, runs: Path, reports: Path, seeds: int) -> dict:
    run, report = runs / name, reports / name
    if not checkpoint.is_run(run):
        subprocess.run([MUSICSSL, "pretrain", recipe, "--out", str(run)], check=True)
    if not (report / "results.json").is_file():
        command = [MUSICSSL, "evaluate", str(run), "--out", str(report), "--seeds", str(seeds)]
        subprocess.run(command, check=True)
    results: dict = json.loads((report / "results.json").read_text())
    return results


def trained(run: Path) -> tuple[int, float, float]:
    """(steps, minutes, mean logged views per second) of a run; the minutes run from the
    recipe's writing to the last checkpoint's (wall clock, setup included)."""
    with open(run / "metrics.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    minutes = (checkpoint.latest(run).stat().st_mtime - (run / "recipe.yaml").stat().st_mtime) / 60
    rates = [float(row["views_per_second"]) for row in rows if row.get("views_per_second")]
    return int(rows[-1]["step"]), minutes, sum(rates) / max(1, len(rates))


def throughput(
    recipe_name: str, *, steps: int, threads: int, overrides: list[str] | None = None
) -> float:
    """Clips per second of the recipe (with ``overrides``): augmentation chain, method forward
    and backward, optimiser step, on random crops already in memory (median step after one
    warm-up)."""
    torch.set_num_threads(threads)
    recipe = Recipe.load(recipe_path(recipe_name), overrides)
    torch.manual_seed(0)
    parts = build_parts(recipe)
    method, optimizer = parts.method, parts.optimizer
    length = int(recipe.encoder.options.get("input_samples", 59049))
    crops = 0.1 * torch.randn(method.num_views * recipe.train.batch_size, length)
    generator = torch.Generator().manual_seed(0)
    times = []
    for step in range(steps + 1):
        start = time.perf_counter()
        with torch.no_grad():
            views, _ = parts.chain(crops, generator=generator)
        loss = method(*views.chunk(method.num_views))["loss"]
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        method.after_optimizer_step(step + 1, steps + 1)
        if step:  # the first step warms up
            times.append(time.perf_counter() - start)
    times.sort()
    return recipe.train.batch_size / times[len(times) // 2]


def table(all_results: dict[str, dict], runs: Path) -> str:
    tasks = list(next(iter(all_results.values()))["tasks"])
    columns = ["recipe", "steps", "minutes"] + tasks
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]

    def cells(tasks_scores: dict) -> list[str]:
        out = []
        for task in tasks:
            scores = tasks_scores.get(task) or {}
            value = next(iter(scores.values()), None) if scores else None
            out.append(f"{value['mean']:.3f}" if value else "-")
        return out

    for name, results in all_results.items():
        steps, minutes, _ = trained(runs / name)
        heads = {t: {v["main"]: v["metrics"][v["main"]]} for t, v in results["tasks"].items()}
        lines.append(
            "| " + " | ".join([RECIPES[name], str(steps), f"{minutes:.1f}"] + cells(heads)) + " |"
        )
        random = results.get("baselines", {}).get("baseline:random", {})
        lines.append(
            "| " + " | ".join([f"{RECIPES[name]}, random weights", "0", "-"] + cells(random)) + " |"
        )
    baselines = next(iter(all_results.values())).get("baselines", {})
    for label in ("baseline:mfcc", "baseline:logmel"):
        lines.append("| " + " | ".join([label, "-", "-"] + cells(baselines.get(label, {}))) + " |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=Path, default=Path("runs"))
    parser.add_argument("--reports", type=Path, default=Path("reports"))
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--throughput-steps", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--throughput-only", action="store_true",
                        help="only the clips per second of each recipe, no runs")  # fmt: skip
    parser.add_argument("--patches", nargs="+", metavar="BINSxFRAMES",
                        help="with --throughput-only: the ViT recipes with each of these patch "
                             "sizes (e.g. 12x8) instead of their own")  # fmt: skip
    args = parser.parse_args()
    if args.throughput_only:
        for recipe in RECIPES.values():
            vit = Recipe.load(recipe_path(recipe)).encoder.name == "spectrogram_vit"
            for patch in args.patches if args.patches and vit else [None]:
                overrides = [f"encoder.options.patch=[{patch.replace('x', ',')}]"] if patch else []
                rate = throughput(recipe, steps=args.throughput_steps, threads=args.threads,
                                  overrides=overrides)  # fmt: skip
                shape = f" {patch} patches" if patch else ""
                print(f"{recipe}{shape}: {rate:.1f} clips/s ({args.threads} threads)")
        return
    results = {name: run_and_report(name, recipe, args.runs, args.reports, args.seeds)
               for name, recipe in RECIPES.items()}  # fmt: skip
    print(table(results, args.runs))
    print()
    for name, recipe in RECIPES.items():
        _, _, logged = trained(args.runs / name)
        rate = throughput(recipe, steps=args.throughput_steps, threads=args.threads)
        print(f"{recipe}: {rate:.1f} clips/s alone ({args.threads} threads); "
              f"{logged:.1f} views/s logged during the run")  # fmt: skip


if __name__ == "__main__":
    main()
