"""Does a short CPU pretraining learn something? Style probe of each recipe vs random weights.

For each recipe (by default the four ``*-shortchunk-cpu`` recipes, on the small built-in
corpus): pretrain, embed every clip of
the corpus with the frozen encoder, fit a logistic-regression probe on composer/style (train
split, regularisation chosen on the valid split) and report accuracy on the test split, beside
the same encoder with random weights.

    python bench/bench_pretrain.py [--recipes NAME ...] [--out FILE] [key=value ...]
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np
import torch
from sklearn.linear_model import LogisticRegression
from sklearn.preprocessing import StandardScaler

from musicssl.builtin import build_corpus
from musicssl.checkpoint import is_run
from musicssl.checkpoint import latest as latest_checkpoint
from musicssl.demo import with_builtin_store
from musicssl.embed import Model, load
from musicssl.encoders import build_encoder
from musicssl.pack import pack
from musicssl.recipe import DEFAULT_CORPUS, Recipe, recipe_path
from musicssl.runtime import configure_cpu_runtime
from musicssl.store import SampleStore
from musicssl.train import pretrain

ROOT = Path(__file__).resolve().parent.parent
METHODS = ("simclr", "byol", "vicreg", "barlow")


def load_state_step(run: Path) -> int:
    """The step the run ended at (a time budget may end it before train.steps)."""
    return int(latest_checkpoint(run).name.removeprefix("step-"))


def embed_store(model: Model, store: SampleStore) -> np.ndarray:
    return np.stack([model.embed(store.clip(i), store.sr).clip for i in range(len(store))])


def style_probe(embeddings: np.ndarray, rows: list[dict]) -> float:
    """Test accuracy of a logistic regression on style, C chosen on the valid split."""
    splits = np.array([row["split"] for row in rows])
    labels = np.array([row["style"] for row in rows])
    train, valid, test = (splits == name for name in ("train", "valid", "test"))
    scaler = StandardScaler().fit(embeddings[train])
    features = scaler.transform(embeddings)
    best, best_c = -1.0, 1.0
    for c in (0.01, 0.1, 1.0, 10.0):
        probe = LogisticRegression(C=c, max_iter=3000).fit(features[train], labels[train])
        score = probe.score(features[valid], labels[valid])
        if score > best:
            best, best_c = score, c
    probe = LogisticRegression(C=best_c, max_iter=3000).fit(
        features[train | valid], labels[train | valid]
    )
    return float(probe.score(features[test], labels[test]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--recipes", nargs="+", default=[f"{m}-shortchunk-cpu" for m in METHODS])
    parser.add_argument("--corpus", default=DEFAULT_CORPUS)
    parser.add_argument("--runs", default="runs/bench")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "pretrain_cpu.md")
    parser.add_argument("overrides", nargs="*", help="recipe overrides for every recipe")
    args = parser.parse_args()
    # "--recipes byol train.steps=700" puts the override among the recipes (nargs="+" takes
    # every word after it): words with "=" are overrides wherever they stand.
    args.overrides += [word for word in args.recipes if "=" in word]
    args.recipes = [word for word in args.recipes if "=" not in word]
    configure_cpu_runtime()  # as the musicssl command runs (OpenMP's policy comes from the env)
    torch.set_flush_denormal(True)

    build_corpus(args.corpus, size="small", seed=0)
    results = []
    resumed = []
    for name in args.recipes:
        path = recipe_path(name)
        recipe = Recipe.load(path, [f"data.corpus={args.corpus}", *args.overrides])
        recipe = with_builtin_store(recipe)
        name = path.stem
        run = Path(args.runs) / name
        began = time.perf_counter()
        if is_run(run):
            print(f"{name}: resuming the run in {run} (an empty --runs folder trains afresh)")
            resumed.append(name)
            pretrain(recipe, out=run, resume=True)
        else:
            pretrain(recipe, out=run)
        minutes = (time.perf_counter() - began) / 60
        model = load(run)
        store_path = Path(args.corpus) / f"store-{model.sample_rate}"
        pack(Path(args.corpus) / "manifest.jsonl", out=store_path, sr=model.sample_rate)
        store = SampleStore(store_path)
        trained = style_probe(embed_store(model, store), store.rows)
        torch.manual_seed(0)
        random_encoder = build_encoder(recipe.encoder.name, **recipe.encoder.options)
        random = style_probe(embed_store(Model(random_encoder), store), store.rows)
        steps = int(load_state_step(run))
        results.append((name, recipe.method.name, steps, minutes, trained, random))
        print(f"{name}: trained {trained:.3f}, random {random:.3f}, {minutes:.1f} min")

    lines = [
        "# Short CPU pretraining: style probe accuracy vs the same encoder with random weights",
        "",
        f"Machine: {platform.machine()}, {os.cpu_count()} cores, torch {torch.__version__}, "
        f"{torch.get_num_threads()} threads. Small built-in corpus (seed 0); each recipe "
        "as shipped; logistic regression on clip embeddings (mean over windows), train "
        "split (C chosen on valid), accuracy on the test split.",
        f"Command: `{command()}`",
        "",
        "| recipe | method | steps | minutes | probe accuracy | random-init accuracy | gain |",
        "|---|---|---:|---:|---:|---:|---:|",
    ]
    for name, method, steps, minutes, trained, random in results:
        lines.append(
            f"| {name} | {method} | {steps} | {minutes:.1f} | {trained:.3f} | "
            f"{random:.3f} | {100 * (trained - random):+.1f} pts |"
        )
    if resumed:
        lines += [
            "",
            f"Resumed from earlier runs in {args.runs} (minutes count this invocation only): "
            + ", ".join(resumed),
        ]
    text = "\n".join(lines) + "\n"
    print(text)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(text)


def command() -> str:
    """This invocation as a shell command, with OpenMP's wait policy where it was set."""
    policy = os.environ.get("OMP_WAIT_POLICY")
    prefix = f"OMP_WAIT_POLICY={policy} " if policy else ""
    return prefix + "python " + " ".join(sys.argv)


if __name__ == "__main__":
    main()
