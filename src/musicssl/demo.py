"""``musicssl demo``: the whole path on a laptop CPU, from nothing to a report.

Builds the small built-in corpus (once; later runs reuse it), pretrains CLMR at its ``cpu``
size for a wall-clock budget, and evaluates the result on every built-in task beside the
MFCC, log-mel and random-weights baselines. A second run with the same ``--out`` reuses the
finished pretraining (or resumes an interrupted one) and the cached embeddings.
"""

from __future__ import annotations

import os
import time
from pathlib import Path


def run_demo(
    *,
    out: str | os.PathLike = "runs/demo",
    corpus: str | os.PathLike = "data/corpus",
    minutes: float = 7.0,
    seeds: int = 5,
    corpus_size: str = "small",
    cache: str | os.PathLike | None = None,
    progress: bool = True,
) -> Path:
    """Corpus → CLMR pretraining for ``minutes`` → evaluation report; returns the report path.

    Args:
        out: the demo's folder: ``run/`` (pretraining) and ``report/``.
        corpus: where the built-in corpus lives (built on first use).
        minutes: pretraining budget (wall clock); more gives a better encoder.
        seeds: probe fits per task.
        corpus_size: built-in corpus size (the tests use "tiny").
        cache: embeddings cache folder (default: ``evaluate``'s).
    """
    from musicssl.builtin import build_corpus
    from musicssl.evaluate.run import evaluate
    from musicssl.recipe import Recipe, recipe_path
    from musicssl.train import pretrain

    began = time.perf_counter()
    out_dir, corpus_dir = Path(out), Path(corpus)
    _say(f"1/3 built-in corpus: {corpus_dir} (built once, then reused)")
    build_corpus(corpus_dir, size=corpus_size, seed=0, progress=progress)

    run = out_dir / "run"
    recipe = Recipe.load(
        recipe_path("clmr"),
        [
            "size=cpu",
            f"data.corpus={corpus_dir}",
            f"data.corpus_size={corpus_size}",
            f"train.minutes={minutes}",
            "train.probe_every=100",
            # The tiny corpus has 12 training clips: a smoke test, in batches that fit.
            *(["train.batch_size=8"] if corpus_size == "tiny" else []),
        ],
    )
    _say(f"2/3 pretraining CLMR for about {minutes:g} minutes: {run}")
    pretrain(recipe, out=run, resume=(run / "latest").is_file(), progress=progress)

    _say("3/3 evaluating it on every built-in task, beside the baselines")
    report = out_dir / "report"
    evaluate(str(run), out=report, corpus=corpus_dir, seeds=seeds, cache=cache, progress=progress)
    minutes_taken = (time.perf_counter() - began) / 60
    _say(f"done in {minutes_taken:.1f} minutes. Report: {report / 'report.html'}")
    _say(f"(also {report / 'report.md'} and {report / 'results.json'})")
    return report / "report.html"


def _say(text: str) -> None:
    print(f"[demo] {text}", flush=True)
