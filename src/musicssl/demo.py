"""``musicssl demo``: the whole path on a laptop CPU, from nothing to a report.

Builds the small built-in corpus (once; later runs reuse it), pretrains the
``simclr-key-tempo-cpu`` recipe (SimCLR on a short-chunk log-mel CNN beside STONE key and
tempo-equivariant branches) for a wall-clock budget, and evaluates the result on every
built-in task of the usual test split beside the MFCC, log-mel and random-weights
baselines. A second run with the same ``--out`` reuses the finished pretraining (or resumes
an interrupted one, with the budget it began with) and the cached embeddings.
"""

from __future__ import annotations

import math
import os
import sys
import time
from pathlib import Path

from musicssl.plural import counted
from musicssl.recipe import DEFAULT_CORPUS, Recipe

DEMO_RECIPE = "simclr-key-tempo-cpu"
# Steps a minute of the demo's budget may take: a little above what 2 cores of an Intel Xeon
# train (882 steps in seven minutes), so that a longer --minutes trains longer, and the
# budget, not the recipe's step count, ends the run.
STEPS_PER_MINUTE = 150


def with_builtin_store(recipe: Recipe, *, progress: bool = True) -> Recipe:
    """The recipe itself if it names a store; else the built-in corpus, built and packed.

    The corpus is built at ``data.corpus`` (``data.corpus_size``) and packed at the encoder's
    rate into ``<corpus>/store-<sr>``; both are reused once complete.
    """
    if recipe.data.store:
        return recipe
    from musicssl.builtin import build_corpus
    from musicssl.encoders import build_encoder
    from musicssl.pack import pack

    sr = build_encoder(recipe.encoder.name, **recipe.encoder.options).sample_rate
    corpus = Path(recipe.data.corpus)
    if progress and not (corpus / "manifest.jsonl").is_file():  # a long job: say where first
        print(f"data.corpus: no built-in corpus in {corpus.resolve()}; building the "
              f"{recipe.data.corpus_size} one there (minutes; data.store=STORE trains on "
              "your own)", file=sys.stderr, flush=True)  # fmt: skip
    build_corpus(corpus, size=recipe.data.corpus_size, seed=0, progress=progress)
    store = corpus / f"store-{sr}"
    pack(corpus / "manifest.jsonl", out=store, sr=sr, progress=progress)
    recipe.data.store = str(store)
    return recipe


def run_demo(
    *,
    out: str | os.PathLike = "runs/demo",
    corpus: str | os.PathLike = DEFAULT_CORPUS,
    minutes: float = 7.0,
    seeds: int = 5,
    corpus_size: str = "small",
    cache: str | os.PathLike | None = None,
    progress: bool = True,
) -> Path:
    """Corpus → pretraining for ``minutes`` → evaluation report; returns the report path.

    Args:
        out: the demo's folder: ``run/`` (pretraining) and ``report/``.
        corpus: where the built-in corpus lives (built on first use).
        minutes: pretraining budget (wall clock); more gives a better encoder.
        seeds: probe fits per task.
        corpus_size: built-in corpus size (the tests use "tiny").
        cache: embeddings cache folder (default: ``evaluate``'s).
    """
    from musicssl.builtin import build_corpus
    from musicssl.errors import MusicSSLError
    from musicssl.evaluate.report.folder import check_out
    from musicssl.evaluate.run import evaluate

    began = time.perf_counter()
    out_dir, corpus_dir = Path(out), Path(corpus)
    try:  # before any work: the report is written last
        check_out(out_dir / "report")
    except MusicSSLError as error:
        raise MusicSSLError(f"--out {out_dir}: {error}") from None
    _say(f"1/3 built-in corpus: {corpus_dir} (built once, then reused)")
    try:
        build_corpus(corpus_dir, size=corpus_size, seed=0, progress=progress)
    except MusicSSLError as error:
        raise MusicSSLError(f"{error}; for the demo: --corpus-size or --corpus DIR") from None

    run = out_dir / "run"
    _pretrain(run, corpus=corpus_dir, corpus_size=corpus_size, minutes=minutes,
              progress=progress)  # fmt: skip

    _say("3/3 evaluating it on every built-in task, beside the baselines")
    report = out_dir / "report"
    evaluate(str(run), out=report, corpus=corpus_dir, seeds=seeds, cache=cache, progress=progress)
    minutes_taken = (time.perf_counter() - began) / 60
    _say(f"done in {minutes_taken:.1f} minutes. Report: {report / 'report.html'}")
    _say(f"(also {report / 'report.md'} and {report / 'results.json'})")
    return report / "report.html"


def _pretrain(run: Path, *, corpus: Path, corpus_size: str, minutes: float, progress: bool) -> None:
    """Step 2: pretrain the demo's recipe into ``run``; a run there goes on as it began, and a
    finished one is kept as it is."""
    from musicssl.checkpoint import is_run
    from musicssl.recipe import recipe_path
    from musicssl.run_state import finished_step
    from musicssl.train import pretrain

    if is_run(run):
        recipe = Recipe.load(run / "recipe.yaml")
        if (step := finished_step(run, recipe.train)) is not None:
            _say(f"2/3 pretraining: {run} finished at step {step}; a new --out trains a new run")
            return
        began_with = recipe.train.minutes or 0.0
        if began_with != minutes:
            _say(f"note: {run} began with --minutes {began_with:g} and goes on so; "
                 f"give a new --out to train for {counted(minutes, 'minute')}")  # fmt: skip
            minutes = began_with
    else:
        recipe = Recipe.load(
            recipe_path(DEMO_RECIPE),
            [
                f"data.corpus={corpus}",
                f"data.corpus_size={corpus_size}",
                f"train.minutes={minutes}",
                f"train.steps={max(1000, math.ceil(minutes * STEPS_PER_MINUTE))}",
                "train.probe_every=100",
                # The tiny corpus has 12 training clips: a smoke test, in batches that fit.
                *(["train.batch_size=8"] if corpus_size == "tiny" else []),
            ],
        )
    recipe = with_builtin_store(recipe, progress=progress)
    _say(f"2/3 pretraining {DEMO_RECIPE} for about {minutes:g} minutes: {run}")
    pretrain(recipe, out=run, resume=is_run(run), progress=progress)


def _say(text: str) -> None:
    print(f"[demo] {text}", flush=True)
