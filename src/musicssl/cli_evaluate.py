"""The ``evaluate`` and ``compare`` verbs: probing protocol and reports."""

from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path
from typing import Any

from musicssl.cli_options import (
    Default,
    Verb,
    corpus_folder,
    device_name,
    existing_folder,
    existing_path,
    given,
    model_folder,
    output_folder,
    positive_int,
)
from musicssl.errors import MusicSSLError

EVALUATE_DESCRIPTION = (
    "Embed every file the tasks need with SOURCE (cached by content hash), fit linear and MLP "
    "probes on the train split (chosen on valid, several seeds), score the test split, and "
    "write results.json, report.md and report.html (offline, with plots) to --out, beside the "
    "baselines. SOURCE is a checkpoint or run folder; hf:FOLDER, an audio model saved by "
    "Hugging Face (the wav2vec 2.0 family: wav2vec2, HuBERT, WavLM, data2vec-audio, "
    "UniSpeech; MERT; LAION-CLAP, with zero-shot scores; AST), beside random weights of its "
    "own architecture; an .npz of "
    "embeddings from any system ('names' relative to the folder of each task's audio, the "
    "corpus's audio folder or a table's folder, or to a folder above it, or absolute; 'emb'); "
    "or baseline:NAME (mfcc, logmel, tempogram, random). Table paths lie under the table's "
    "folder."
)


def add_evaluate(verbs: Any) -> None:
    evaluate = Verb(
        verbs.add_parser(
            "evaluate",
            help="probe a frozen encoder (or any embeddings) on every task; write a report",
            description=EVALUATE_DESCRIPTION,
        ),
        "musicssl.evaluate.run:evaluate",
    )
    evaluate.option(
        "source",
        type=_source,
        metavar="SOURCE",
        help="checkpoint, run, hf:FOLDER, .npz or baseline:NAME",
    )
    evaluate.option(
        "--out", required=True, type=output_folder, metavar="DIR", help="report folder to write"
    )
    evaluate.option(
        "--corpus",
        type=corpus_folder,
        default=Default(_default_corpus),
        metavar="DIR",
        help="built-in corpus folder; when not given, the small one is built at %(default)s if "
        "missing",
    )
    evaluate.option(
        "--tasks",
        nargs="+",
        metavar="TASK",
        help="built-in tasks by name (style key ...; style@transfer, or transfer for all: "
        "tested on the corpus's renders by other instruments), DATASET=ROOT[,OPTION=VALUE] "
        "for a standard data set in its usual layout (gtzan=/data/gtzan; options: "
        "gtzan lists=DIR, giantsteps_key train_root=DIR, mtg_jamendo split=N subset=NAME "
        "audio_dir=DIR, nsynth max_train=N), or a .csv, .tsv or .jsonl table of path + "
        "label(s), its paths relative to the table's folder "
        "(default: every built-in task on the usual test split, without the transfer ones)",
    )
    evaluate.option(
        "--seeds",
        type=positive_int,
        metavar="N",
        help="probe fits per task: scores are mean ± std over them (default: %(default)s)",
    )
    evaluate.option(
        "--layers",
        choices=["all"],
        help="also probe every encoder layer (pitch: each layer's frames), and those of "
        "baseline:random when it is among --baselines; layers of one width also as a "
        "weighted sum, its weights learned on train and stopped on valid",
    )
    evaluate.option(
        "--readout",
        choices=["mean", "freq"],
        help="the layers' vectors: mean over frames, or freq: mean over time of a CNN's "
        "2-D maps, frequency bins kept; encoders without 2-D maps (the transformers) read "
        "the mean either way (default: %(default)s)",
    )
    evaluate.option(
        "--baselines",
        nargs="+",
        type=_baseline,
        metavar="NAME",
        help="set beside SOURCE in the report (each cached), or none (default: %(default)s)",
    )
    evaluate.option(
        "--cache",
        type=output_folder,
        default=Default(default_cache_folder),
        metavar="DIR",
        help="embeddings and baseline results (default: %(default)s; $MUSICSSL_CACHE sets it)",
    )
    evaluate.option(
        "--device", type=device_name, help="cpu, cuda, cuda:N or mps (default: %(default)s)"
    )
    evaluate.parser.set_defaults(run=run_evaluate, uses_torch=True)


def _source(text: str) -> str:
    if text[:3].lower() == "hf:":
        return model_folder(text)
    return text if text.startswith("baseline:") else existing_path(text)


def _baseline(text: str) -> str:
    from musicssl.evaluate.baselines import BASELINES

    if text != "none" and text not in BASELINES:
        raise argparse.ArgumentTypeError(f"{text!r}: give {', '.join(BASELINES)} or none")
    return text


def _default_corpus() -> Any:
    from musicssl.recipe import DEFAULT_CORPUS

    return DEFAULT_CORPUS


def default_cache_folder() -> Any:
    from musicssl.evaluate.run import default_cache

    return default_cache()


def run_evaluate(args: argparse.Namespace) -> None:
    from musicssl.evaluate.run import evaluate

    names = (
        "out", "corpus", "tasks", "seeds", "layers", "readout", "baselines", "cache", "device"
    )  # fmt: skip
    options = given(args, *names)
    if options.get("baselines") == ["none"]:
        options["baselines"] = []
    from musicssl.evaluate.report.folder import check_out
    from musicssl.evaluate.report.tables import STEADY_SEEDS
    from musicssl.files import folder_lock, missing_folders, remove_empty
    from musicssl.run_state import unfinished_note

    check_out(args.out)  # before the lock makes the folder
    if "cache" not in options:  # the default (or $MUSICSSL_CACHE's) checked as --cache is
        try:
            output_folder(str(default_cache_folder()))
        except argparse.ArgumentTypeError as error:
            raise MusicSSLError(
                f"cache {error}; give --cache DIR (or set MUSICSSL_CACHE)"
            ) from None
    if options.get("seeds", STEADY_SEEDS) < STEADY_SEEDS:
        print(f"note: --seeds {options['seeds']} is too few for the report's noise rule (its ± "
              f"values, marks and verdicts); {STEADY_SEEDS} or more steady them",
              file=sys.stderr, flush=True)  # fmt: skip
    if (note := unfinished_note(args.source, "evaluate")) is not None:
        print(note, file=sys.stderr, flush=True)
    out = Path(args.out)
    made = missing_folders(out)
    try:
        with folder_lock(out, busy="another musicssl evaluate is writing this report now"):
            evaluate(args.source, **options)
    except BaseException:  # refused, interrupted, or a bug: nothing of it is left
        if made and out.is_dir() and {path.name for path in out.iterdir()} <= {".lock"}:
            shutil.rmtree(out, ignore_errors=True)  # it holds nothing but our lock
            remove_empty(made[1:])  # and the parents this call made
        raise
    print(f"results: {out / 'results.json'}\nreport: {out / 'report.html'} ({out / 'report.md'})")


def add_compare(verbs: Any) -> None:
    compare = Verb(
        verbs.add_parser(
            "compare",
            help="one table over several evaluation folders",
            description="Print each task's headline score (mean ± std over seeds) for every "
            "folder written by `musicssl evaluate`; marks the best and the scores within "
            "noise of it.",
        ),
        "musicssl.evaluate.report.compare:compare_table",
    )
    compare.option("dirs", nargs="+", type=existing_folder, metavar="DIR", help="with results.json")
    compare.parser.set_defaults(run=run_compare)


def run_compare(args: argparse.Namespace) -> None:
    from musicssl.evaluate.report.compare import compare_table

    print(compare_table(args.dirs))
