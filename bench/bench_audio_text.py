"""Audio-text pretraining on a CPU: CLAP beside SLAP at a small and a larger batch.

Each row (``METHOD:BATCH``, or ``METHOD:BATCHxK`` for K accumulated micro-batches of BATCH a
step) pretrains ``METHOD-shortchunk-cpu`` on the train split of the small built-in corpus for
the same number of training clips (``--clips``; steps = clips / (BATCH * K)), then embeds every
clip and scores on the test split (held-out pieces and their captions):

- text-to-audio and audio-to-text retrieval of each clip's own caption: recall@1/5/10, mAP
  (one relevant item per query), beside chance;
- zero-shot style, mode and instrument family from the fixed prompts (``evaluate.prompts``),
  beside chance and beside a logistic-regression probe on the same (encoder) embeddings;
- how much each method keeps at its smallest batch of what it reaches at its largest.

Runs are judged by fixed steps, not wall clock; CPU minutes are the training process's
(``data.workers=0``, so the loading is counted too). Run it with ``OMP_NUM_THREADS=1``.

    OMP_NUM_THREADS=1 python bench/bench_audio_text.py --corpus DIR --runs EMPTY_DIR
        [--rows clap:8 clap:64 slap:8 slap:8x8 slap:64] [--clips 16000] [--out FILE]
"""

from __future__ import annotations

import argparse
import json
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


def parse_row(text: str) -> tuple[str, int, int]:
    """``clap:8`` -> (clap, 8, 1); ``slap:8x8`` -> (slap, 8, 8)."""
    method, _, size = text.partition(":")
    batch, _, accumulate = size.partition("x")
    return method, int(batch), int(accumulate or 1)


def train_row(args: argparse.Namespace, store_path: Path, row: tuple[str, int, int]) -> tuple:
    """Pretrain one row (or reuse its finished run); returns (run, steps, CPU minutes)."""
    method, batch, accumulate = row
    steps = args.clips // (batch * accumulate)
    overrides = [f"data.corpus={args.corpus}", f"data.store={store_path}", "data.workers=0",
                 f"train.batch_size={batch}", f"train.accumulate={accumulate}",
                 f"train.steps={steps}", "train.minutes=null", f"train.seed={args.seed}",
                 f"train.checkpoint_every={steps}", f"data.corpus_size={args.size}"]  # fmt: skip
    recipe = Recipe.load(recipe_path(f"{method}-shortchunk-cpu"), overrides)
    name = f"{method}-b{batch}" + (f"x{accumulate}" if accumulate > 1 else "")
    run = Path(args.runs) / name
    cpu_file = Path(args.runs) / f"{name}.cpu.json"
    if not is_run(run):
        began = time.process_time()
        pretrain(recipe, out=run)
        cpu_file.write_text(json.dumps({"cpu_seconds": time.process_time() - began}))
    minutes = json.loads(cpu_file.read_text())["cpu_seconds"] / 60
    return run, int(latest_checkpoint(run).name.removeprefix("step-")), minutes


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--corpus", required=True)
    parser.add_argument("--size", default="small", help="built-in corpus size to build there")
    parser.add_argument("--runs", default="runs/bench-audio-text")
    parser.add_argument("--rows", nargs="+", default=["clap:8", "clap:64", "slap:8", "slap:8x8",
                                                      "slap:64"])  # fmt: skip
    parser.add_argument("--clips", type=int, default=16000, help="training clips of each run")
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
    if not (store_path / "clips.jsonl").is_file():
        pack(corpus / "manifest.jsonl", out=store_path, sr=16000)
    Path(args.runs).mkdir(parents=True, exist_ok=True)
    store = SampleStore(store_path)
    rows = store.rows
    test = [i for i, row in enumerate(rows) if row["split"] == "test"]
    results = []
    for text in args.rows:
        method, batch, accumulate = parse_row(text)
        run, steps, minutes = train_row(args, store_path, (method, batch, accumulate))
        model = load(run)
        clips = embed_store(model, store)
        scores = retrieval(model, clips[test], [str(rows[i]["caption"]) for i in test])
        names = {str(row["path"]).removeprefix("audio/"): clips[i] for i, row in enumerate(rows)}
        zero = zero_shot_results(model, corpus, names)
        probes = {task: probe_hit(clips, rows, task) for task in TASKS}
        results.append((method, batch, accumulate, steps, minutes, scores, zero, probes))
        print(f"{run.name}: {steps} steps, {minutes:.1f} CPU min, {scores}", flush=True)

    text = report(results, args, num_test=len(test))
    print(text)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(text)


def batch_cell(batch: int, accumulate: int) -> str:
    return f"{batch * accumulate} ({batch} x {accumulate} acc.)" if accumulate > 1 else str(batch)


def machine() -> str:
    model = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return (f"{model}, {os.cpu_count()} cores shared with other jobs, torch {torch.__version__}, "
            f"{torch.get_num_threads()} thread")  # fmt: skip


def keeps(results: list) -> list[str]:
    """Each method's smallest-batch row against each of its rows of a larger effective batch."""
    lines = []
    for method in dict.fromkeys(r[0] for r in results):
        own = [r for r in results if r[0] == method]
        small = min(own, key=lambda r: r[1] * r[2])
        for large in [r for r in own if r[1] * r[2] > small[1] * small[2]]:
            cells = []
            for direction in ("T->A", "A->T"):
                for metric in ("recall@10", "map"):
                    a, b = small[5][direction][metric], large[5][direction][metric]
                    cells.append(f"{a:.3f} / {b:.3f} ({(a / b - 1) * 100:+.0f}%)")
            batches = f"{batch_cell(small[1], small[2])} vs {batch_cell(large[1], large[2])}"
            lines.append(f"| {method} | {batches} | " + " | ".join(cells) + " |")
    return lines


def report(results: list, args: argparse.Namespace, *, num_test: int) -> str:
    chance = retrieval_chance(num_test, 1)
    lines = [
        "# Audio-text pretraining on a CPU: CLAP and SLAP, retrieval and zero-shot",
        "",
        f"Machine: {machine()}.",
        "",
        f"Command: `{command()}`",
        "",
        f"Small built-in corpus (format 2, seed 0), captions drawn per clip. Each run trains "
        f"on {args.clips} clips of the train split (steps x batch; the same learning-rate "
        f"schedule over its steps), seed {args.seed}; the short-chunk CNN audio tower and a "
        f"2-layer text transformer with its own tokenizer (recipes `clap-shortchunk-cpu`, "
        f"`slap-shortchunk-cpu`). `B (b x k acc.)`: k micro-batches of b accumulated into one "
        f"optimiser step. Scores on the {num_test} test clips (held-out pieces) and their "
        f"captions; one run per row. CPU minutes: the training process's, one thread.",
        "",
        "## Retrieval of each clip's own caption (test split)",
        "",
        "| method | batch | steps | CPU min | T→A R@1 | R@5 | R@10 | mAP | A→T R@1 | R@5 | R@10 "
        "| mAP |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for method, batch, accumulate, steps, minutes, scores, _, _ in results:
        cells = [
            f"{scores[d][m]:.3f}"
            for d in ("T->A", "A->T")
            for m in ("recall@1", "recall@5", "recall@10", "map")
        ]
        lines.append(
            f"| {method} | {batch_cell(batch, accumulate)} | {steps} | {minutes:.1f} | "
            + " | ".join(cells)
            + " |"
        )
    chance_cells = [f"{chance[m]:.3f}" for m in ("recall@1", "recall@5", "recall@10", "map")]
    lines.append("| chance | | | | " + " | ".join(chance_cells * 2) + " |")
    lines += [
        "",
        "## What the small batch loses",
        "",
        "The smallest batch's score / the larger batch's (change).",
        "",
        "| method | batches | T→A R@10 | T→A mAP | A→T R@10 | A→T mAP |",
        "|---|---|---:|---:|---:|---:|",
        *keeps(results),
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
    for method, batch, accumulate, _, _, _, zero, probes in results:
        cells = []
        for task in TASKS:
            result = zero[f"zeroshot_{task}"]
            cells += [f"{result.headline.mean:.3f}", f"{probes[task]:.3f}"]
        lines.append(f"| {method} | {batch_cell(batch, accumulate)} | " + " | ".join(cells) + " |")
    zero = results[0][6]
    chances = [zero[f"zeroshot_{t}"].chance[zero[f"zeroshot_{t}"].main] for t in TASKS]
    lines.append("| chance | | " + " | ".join(f"{c:.3f} | " for c in chances) + " |")
    return "\n".join(lines) + "\n"


def command() -> str:
    prefix = "".join(f"{name}={os.environ[name]} " for name in ("OMP_NUM_THREADS",
                     "OMP_WAIT_POLICY") if name in os.environ)  # fmt: skip
    return prefix + "python " + " ".join(sys.argv)


if __name__ == "__main__":
    main()
