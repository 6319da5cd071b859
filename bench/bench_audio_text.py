"""Audio-text pretraining on a CPU: CLAP beside SLAP at a small and a larger batch.

For each method (``clap-shortchunk-cpu``, ``slap-shortchunk-cpu``) and batch size: pretrain on
the train split of the small built-in corpus for the same wall-clock budget, embed every clip,
and score on the test split (held-out pieces and their captions):

- text-to-audio and audio-to-text retrieval of each clip's own caption: recall@1/5/10, mAP
  (one relevant item per query), beside chance;
- zero-shot style, mode and instrument family from the fixed prompts (``evaluate.prompts``),
  beside chance and beside a logistic-regression probe on the same (encoder) embeddings.

    python bench/bench_audio_text.py --corpus DIR --runs EMPTY_DIR [--batches 8 32]
        [--minutes 5] [--methods clap slap] [--out FILE]
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
from musicssl.embed import Model, load
from musicssl.evaluate.metrics import retrieval_chance, retrieval_metrics
from musicssl.evaluate.prompts import PROMPTS_VERSION
from musicssl.evaluate.zeroshot import TASKS, targets, zero_shot_results
from musicssl.pack import pack
from musicssl.recipe import Recipe, recipe_path
from musicssl.runtime import configure_cpu_runtime
from musicssl.store import SampleStore
from musicssl.train import pretrain

ROOT = Path(__file__).resolve().parent.parent


def embed_store(model: Model, store: SampleStore) -> np.ndarray:
    return np.stack([model.embed(store.clip(i), store.sr).clip for i in range(len(store))])


def retrieval(model: Model, clips: np.ndarray, captions: list[str]) -> dict[str, dict]:
    """T->A and A->T scores of each clip's own caption among the test clips."""
    audio = model.project_audio(clips)
    text = np.concatenate(
        [model.embed_text(captions[i : i + 64]) for i in range(0, len(captions), 64)]
    )
    out = {}
    for name, similarity in (("T->A", text @ audio.T), ("A->T", audio @ text.T)):
        order = np.argsort(-similarity, axis=1)
        relevance = order == np.arange(len(order))[:, None]
        out[name] = retrieval_metrics(relevance, num_relevant=np.ones(len(order)))
    return out


def probe_hit(embeddings: np.ndarray, rows: list[dict], task: str) -> float:
    """Test accuracy (hit@1 for families) of a logistic regression, C chosen on valid."""
    splits = np.array([row["split"] for row in rows])
    truth = targets(rows, task)
    classes = sorted({c for wanted in truth for c in wanted})
    # One label per clip to fit: the first family (the top voice's) for the family task.
    labels = np.array([wanted[0] for wanted in truth])
    train, valid, test = (splits == name for name in ("train", "valid", "test"))
    features = StandardScaler().fit(embeddings[train]).transform(embeddings)

    def score(probe: LogisticRegression, mask: np.ndarray) -> float:
        predicted = probe.predict(features[mask])
        wanted = [w for w, keep in zip(truth, mask) if keep]
        return float(np.mean([p in w for p, w in zip(predicted, wanted)]))

    fits = {
        c: LogisticRegression(C=c, max_iter=3000).fit(features[train], labels[train])
        for c in (0.01, 0.1, 1.0)
    }
    best = max(fits, key=lambda c: score(fits[c], valid))
    assert set(fits[best].classes_) <= set(classes)
    return score(fits[best], test)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--corpus", required=True)
    parser.add_argument("--size", default="small", help="built-in corpus size to build there")
    parser.add_argument("--runs", default="runs/bench-audio-text")
    parser.add_argument("--methods", nargs="+", default=["clap", "slap"])
    parser.add_argument("--batches", nargs="+", type=int, default=[8, 32])
    parser.add_argument("--minutes", type=float, default=5.0)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--out", type=Path, default=ROOT / "bench" / "results" / "audio_text_cpu.md"
    )
    args = parser.parse_args()
    configure_cpu_runtime()
    torch.set_flush_denormal(True)
    corpus = Path(args.corpus)
    if not (corpus / "manifest.jsonl").is_file():  # a finished corpus is used as it is
        build_corpus(corpus, size=args.size, seed=0)
    store_path = corpus / "store-16000"  # the rate of the short-chunk CNN recipes
    pack(corpus / "manifest.jsonl", out=store_path, sr=16000)

    rows_out = []
    store = None
    embedded: dict[str, np.ndarray] = {}
    for method in args.methods:
        for batch in args.batches:
            overrides = [f"data.corpus={args.corpus}", f"train.batch_size={batch}",
                         f"train.minutes={args.minutes}", "train.steps=5000",
                         f"train.seed={args.seed}", "train.checkpoint_every=500",
                         f"data.corpus_size={args.size}", "data.workers=1"]  # fmt: skip
            overrides.append(f"data.store={store_path}")
            recipe = Recipe.load(recipe_path(f"{method}-shortchunk-cpu"), overrides)
            run = Path(args.runs) / f"{method}-b{batch}"
            began = time.perf_counter()
            if not is_run(run):
                pretrain(recipe, out=run)
            minutes = (time.perf_counter() - began) / 60
            steps = int(latest_checkpoint(run).name.removeprefix("step-"))
            store = SampleStore(recipe.data.store)
            model = load(run)
            clips = embed_store(model, store)
            embedded[run.name] = clips
            rows = store.rows
            test = [i for i, row in enumerate(rows) if row["split"] == "test"]
            scores = retrieval(model, clips[test], [str(rows[i]["caption"]) for i in test])
            names = {
                str(row["path"]).removeprefix("audio/"): clips[i] for i, row in enumerate(rows)
            }
            zero = zero_shot_results(model, Path(args.corpus), names)
            probes = {task: probe_hit(clips, rows, task) for task in TASKS}
            rows_out.append((method, batch, steps, minutes, scores, zero, probes, len(test)))
            print(f"{run.name}: {steps} steps, {minutes:.1f} min, {scores}", flush=True)

    text = report(rows_out, args)
    print(text)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(text)


def report(results: list, args: argparse.Namespace) -> str:
    num_test = results[0][-1]
    chance = retrieval_chance(num_test, 1)
    lines = [
        "# Audio-text pretraining on a CPU: CLAP and SLAP, retrieval and zero-shot",
        "",
        f"Machine: {platform.machine()}, {os.cpu_count()} cores (shared with other jobs), "
        f"torch {torch.__version__}, {torch.get_num_threads()} threads.",
        "",
        f"Command: `{command()}`",
        "",
        f"Small built-in corpus (seed 0), captions drawn per clip; each run trains on the train "
        f"split for {args.minutes:g} minutes of wall clock (seed {args.seed}); the short-chunk "
        f"CNN audio tower and a 2-layer text transformer with its own tokenizer. Scores on the "
        f"{num_test} test clips (held-out pieces) and their captions; one run per cell.",
        "",
        "## Retrieval of each clip's own caption (test split)",
        "",
        "| method | batch | steps | minutes | T→A R@1 | R@5 | R@10 | mAP | A→T R@1 | R@5 | R@10 "
        "| mAP |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for method, batch, steps, minutes, scores, _, _, _ in results:
        cells = [
            f"{scores[d][m]:.3f}"
            for d in ("T->A", "A->T")
            for m in ("recall@1", "recall@5", "recall@10", "map")
        ]
        lines.append(
            f"| {method} | {batch} | {steps} | {minutes:.1f} | " + " | ".join(cells) + " |"
        )
    chance_cells = [f"{chance[m]:.3f}" for m in ("recall@1", "recall@5", "recall@10", "map")]
    lines.append("| chance | | | | " + " | ".join(chance_cells * 2) + " |")
    lines += [
        "",
        f"## Zero-shot (prompts v{PROMPTS_VERSION}) beside a linear probe on the same "
        "embeddings (test split)",
        "",
        "Family: a clip is right when its top family is one it plays (hit@1).",
        "",
        "| method | batch | style zero-shot | style probe | mode zero-shot | mode probe "
        "| family zero-shot | family probe |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for method, batch, _, _, _, zero, probes, _ in results:
        cells = []
        for task in TASKS:
            result = zero[f"zeroshot_{task}"]
            cells += [f"{result.headline.mean:.3f}", f"{probes[task]:.3f}"]
        lines.append(f"| {method} | {batch} | " + " | ".join(cells) + " |")
    zero = results[0][5]
    chances = [zero[f"zeroshot_{t}"].chance[zero[f"zeroshot_{t}"].main] for t in TASKS]
    lines.append("| chance | | " + " | ".join(f"{c:.3f} | " for c in chances) + " |")
    return "\n".join(lines) + "\n"


def command() -> str:
    policy = os.environ.get("OMP_WAIT_POLICY")
    prefix = f"OMP_WAIT_POLICY={policy} " if policy else ""
    return prefix + "python " + " ".join(sys.argv)


if __name__ == "__main__":
    main()
