"""The ``musicssl`` command: a thin shell over the package's functions."""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence

from musicssl.errors import MusicSSLError
from musicssl.runtime import configure_cpu_runtime

DESCRIPTION = """\
musicssl: self-supervised learning of music audio representations.

Typical path on the built-in corpus:
  musicssl corpus build --out data/corpus           # render the labelled built-in corpus
  musicssl data index data/corpus/audio --out data/m.jsonl
  musicssl data pack data/m.jsonl --out data/store  # decode once into a memory-mapped store
  musicssl pretrain clmr --out runs/clmr            # a packaged recipe, or a YAML file
  musicssl evaluate runs/clmr --out reports/clmr    # every built-in task, beside baselines
  musicssl compare reports/clmr reports/byol

Or all of it at once, on a laptop CPU in about a quarter of an hour:
  musicssl demo
"""


def _corpus_build(args: argparse.Namespace) -> None:
    from musicssl.builtin import build_corpus

    summary = build_corpus(args.out, size=args.size, seed=args.seed, workers=args.workers)
    print(json.dumps(summary, indent=2))


def _data_index(args: argparse.Namespace) -> None:
    from musicssl.corpus import index_folder

    print(index_folder(args.folder, out=args.out, bad=args.bad, workers=args.workers))


def _data_pack(args: argparse.Namespace) -> None:
    from musicssl.store import pack

    print(pack(args.manifest, out=args.out, sr=args.sr, workers=args.workers))


def _pretrain(args: argparse.Namespace) -> None:
    from pathlib import Path

    from musicssl.recipe import Recipe, recipe_path
    from musicssl.train import pretrain

    if args.resume:
        if args.recipe or args.overrides:
            raise MusicSSLError("--resume continues a run with its own recipe: give only RUN_DIR")
        run = Path(args.resume)
        recipe = Recipe.load(run / "recipe.yaml")
        checkpoint = pretrain(recipe, out=run, resume=True)
    else:
        if not args.recipe or not args.out:
            raise MusicSSLError("give a RECIPE and --out RUN_DIR (or --resume RUN_DIR)")
        recipe = Recipe.load(recipe_path(args.recipe), args.overrides)
        checkpoint = pretrain(recipe, out=args.out)
    # Under DDP every process returns here; one line is enough.
    if os.environ.get("RANK", "0") == "0" and os.environ.get("LOCAL_RANK", "0") == "0":
        print(f"checkpoint: {checkpoint}")


def _embed(args: argparse.Namespace) -> None:
    from musicssl.embed import embed_files, load

    model = load(args.checkpoint, device=args.device)
    window = model.window_samples / model.sample_rate
    if args.window is not None and abs(args.window - window) > 1e-3:
        raise MusicSSLError(
            f"this encoder takes windows of {window:.3f} s ({model.window_samples} samples at "
            f"{model.sample_rate} Hz); drop --window or give that value"
        )
    summary = embed_files(
        model,
        args.input,
        out=args.out,
        hop=args.hop,
        layers=args.layer,
        frames=args.frames,
        batch_size=args.batch_size,
    )
    print(f"embedded {summary['embedded']} files, skipped {summary['skipped']}: {args.out}")


def _evaluate(args: argparse.Namespace) -> None:
    from musicssl.evaluate.run import evaluate

    evaluate(
        args.source,
        out=args.out,
        corpus=args.corpus,
        tasks=args.tasks,
        seeds=args.seeds,
        layers=args.layers,
        baselines=[] if args.baselines == ["none"] else args.baselines,
        cache=args.cache,
        device=args.device,
    )
    print(
        f"results: {args.out}/results.json\nreport: {args.out}/report.html ({args.out}/report.md)"
    )


def _compare(args: argparse.Namespace) -> None:
    from musicssl.evaluate.compare import compare_table

    print(compare_table(args.dirs))


def _demo(args: argparse.Namespace) -> None:
    from musicssl.demo import run_demo

    run_demo(
        out=args.out,
        corpus=args.corpus,
        minutes=args.minutes,
        seeds=args.seeds,
        corpus_size=args.corpus_size,
        cache=args.cache,
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="musicssl",
        description=DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    verbs = parser.add_subparsers(dest="verb", metavar="VERB", required=True)

    corpus = verbs.add_parser("corpus", help="the built-in labelled music corpus")
    corpus_verbs = corpus.add_subparsers(dest="action", metavar="ACTION", required=True)
    build = corpus_verbs.add_parser(
        "build",
        help="render the built-in corpus (scores from music21, General MIDI SoundFont)",
        description="Render real compositions from music21's score corpus with the General MIDI "
        "SoundFont that ships inside pretty_midi: DIR/audio/*.wav (16 kHz mono, ~10 s clips) and "
        "a labelled DIR/manifest.jsonl (style, key, tempo, metre, instruments, caption, split; "
        "f0 for monophonic clips). Deterministic for a seed; an existing build is reused.",
    )
    build.add_argument("--out", required=True, metavar="DIR", help="folder to write")
    build.add_argument(
        "--size",
        default="small",
        choices=["tiny", "small", "full"],
        help="tiny: tests (<1 min); small: ~2,000 clips (default); full: larger",
    )
    build.add_argument("--seed", type=int, default=0, help="seed of every random choice")
    build.add_argument(
        "--workers", type=int, default=None, help="processes rendering at once (default: all cores)"
    )
    build.set_defaults(run=_corpus_build)

    data = verbs.add_parser("data", help="index folders of audio and pack them into a store")
    data_verbs = data.add_subparsers(dest="action", metavar="ACTION", required=True)
    index = data_verbs.add_parser(
        "index",
        help="index a folder of audio into a JSON-lines manifest",
        description="Walk FOLDER for audio (wav, flac, ogg, opus, mp3, aiff, au), decode each "
        "file once to check it, and write a manifest (path, duration, sr, channels). Corrupt, "
        "empty, truncated, silent or non-audio files go to the bad-files report with the reason "
        "and never stop the run. Re-running on a grown folder decodes only new or changed files.",
    )
    index.add_argument(
        "folder", metavar="FOLDER", help="folder of audio files (searched recursively)"
    )
    index.add_argument(
        "--out", required=True, metavar="MANIFEST", help="manifest to write (.jsonl)"
    )
    index.add_argument(
        "--bad",
        default=None,
        metavar="REPORT",
        help="bad-files report (default: MANIFEST with .bad.jsonl)",
    )
    index.add_argument("--workers", type=int, default=4, help="files decoded at once")
    index.set_defaults(run=_data_index)

    pack = data_verbs.add_parser(
        "pack",
        help="decode a manifest once into a memory-mapped sample store",
        description="Decode every clip of MANIFEST to mono int16 at --sr into one memory-mapped "
        "file, so that a random crop during training is a slice instead of a decode. Written "
        "atomically; an interrupted pack resumes where it stopped when run again.",
    )
    pack.add_argument("manifest", metavar="MANIFEST", help="JSON-lines manifest")
    pack.add_argument("--out", required=True, metavar="STORE", help="store folder to write")
    pack.add_argument("--sr", type=int, default=16000, help="sample rate of the store in Hz")
    pack.add_argument("--workers", type=int, default=2, help="clips decoded at once")
    pack.set_defaults(run=_data_pack)

    pretrain = verbs.add_parser(
        "pretrain",
        help="pretrain an encoder with an SSL recipe",
        description="Pretrain the encoder of RECIPE (e.g. recipes/clmr.yaml) with its SSL "
        "method on its data (the built-in corpus unless data.store is set). Settings are "
        "overridden as key=value: size=full, train.steps=2000, encoder.options.width=64, "
        "data.store=PATH. Writes checkpoints (safetensors + recipe), metrics.csv and "
        "TensorBoard logs to RUN_DIR; a killed run continues with --resume RUN_DIR.",
    )
    pretrain.add_argument("recipe", nargs="?", metavar="RECIPE", help="recipe YAML file")
    pretrain.add_argument("overrides", nargs="*", metavar="KEY=VALUE", help="recipe overrides")
    pretrain.add_argument("--out", metavar="RUN_DIR", help="run folder to create")
    pretrain.add_argument("--resume", metavar="RUN_DIR", help="continue this run")
    pretrain.set_defaults(run=_pretrain)

    embed = verbs.add_parser(
        "embed",
        help="embed audio with a trained encoder into an .npz",
        description="Cut each file of INPUT (a folder of audio, a manifest .jsonl or a store) "
        "into windows, encode them in batches and mean-pool to one vector per file: an .npz "
        "with 'names' (paths relative to INPUT) and 'emb'. Files of any length work: audio is "
        "streamed, memory stays bounded by --batch-size windows. Bad files are skipped.",
    )
    embed.add_argument("checkpoint", metavar="CKPT", help="checkpoint folder or run folder")
    embed.add_argument("input", metavar="INPUT", help="folder, manifest or store")
    embed.add_argument("--out", required=True, help="the .npz to write")
    embed.add_argument(
        "--window",
        type=float,
        default=None,
        help="window length in seconds (default and only value: the encoder's training crop)",
    )
    embed.add_argument(
        "--hop",
        type=float,
        default=None,
        help="seconds between windows (default: the window, no overlap)",
    )
    embed.add_argument(
        "--layer",
        default=None,
        metavar="N|all",
        help="also pool encoder layer N (or every layer: layer_K arrays)",
    )
    embed.add_argument(
        "--frames",
        action="store_true",
        help="also write frame tracks: frames, frame_times (s), frame_offsets",
    )
    embed.add_argument("--batch-size", type=int, default=16, help="windows encoded at once")
    embed.add_argument("--device", default="cpu", help="cpu or cuda")
    embed.set_defaults(run=_embed)

    evaluate = verbs.add_parser(
        "evaluate",
        help="probe a frozen encoder (or any embeddings) on every task; write a report",
        description="Embed every file the tasks need with SOURCE (cached by content hash), "
        "fit linear and MLP probes on the train split (chosen on valid, several seeds), score "
        "the test split, and write results.json, report.md and report.html (offline, with "
        "plots) to --out, beside the baselines. SOURCE is a checkpoint or run folder, an .npz "
        "of embeddings from any system ('names' relative to the corpus's audio folder, "
        "'emb'), or baseline:mfcc, baseline:logmel, baseline:random.",
    )
    evaluate.add_argument("source", metavar="SOURCE", help="checkpoint, run, .npz or baseline:NAME")
    evaluate.add_argument("--out", required=True, help="folder for results.json and the report")
    evaluate.add_argument(
        "--corpus",
        default=None,
        help="built-in corpus folder (default data/corpus; the small corpus is built if missing)",
    )
    evaluate.add_argument(
        "--tasks",
        nargs="+",
        default=None,
        metavar="TASK",
        help="built-in tasks (style key tempo instrument pitch same_piece degraded_copy), "
        "DATASET=ROOT (gtzan, magnatagatune, nsynth, giantsteps_key, mtg_jamendo) or a "
        ".csv/.jsonl of path + label(s); default: every built-in task",
    )
    evaluate.add_argument("--seeds", type=int, default=5, help="probe fits per task")
    evaluate.add_argument(
        "--layers", choices=["all"], default=None, help="also probe every encoder layer"
    )
    evaluate.add_argument(
        "--baselines",
        nargs="+",
        default=["mfcc", "logmel", "random"],
        metavar="NAME",
        help="baselines in the report (cached): mfcc logmel random, or none",
    )
    evaluate.add_argument("--cache", default=None, help="cache folder (default ~/.cache/musicssl)")
    evaluate.add_argument("--device", default="cpu", help="cpu or cuda, for embedding")
    evaluate.set_defaults(run=_evaluate)

    compare = verbs.add_parser(
        "compare",
        help="one table over several evaluation folders",
        description="Print each task's headline score (mean ± std over seeds) for every "
        "folder written by `musicssl evaluate`; marks the best and the scores within noise "
        "of it.",
    )
    compare.add_argument("dirs", nargs="+", metavar="DIR", help="folders with results.json")
    compare.set_defaults(run=_compare)

    demo = verbs.add_parser(
        "demo",
        help="corpus, CLMR pretraining and evaluation report, end to end on a CPU",
        description="Build the small built-in corpus (once), pretrain CLMR at its cpu size "
        "for --minutes, evaluate it on every built-in task beside the MFCC, log-mel and "
        "random-weights baselines, and print where the report is. About a quarter of an hour "
        "on 2 CPU cores from nothing; a rerun reuses what is done.",
    )
    demo.add_argument("--out", default="runs/demo", help="demo folder (run/ and report/)")
    demo.add_argument("--corpus", default="data/corpus", help="built-in corpus folder")
    demo.add_argument(
        "--minutes", type=float, default=7.0, help="pretraining budget; more learns more"
    )
    demo.add_argument("--seeds", type=int, default=5, help="probe fits per task")
    demo.add_argument(
        "--corpus-size",
        choices=["tiny", "small"],
        default="small",
        help="built-in corpus size (tiny: a smoke test in about a minute)",
    )
    demo.add_argument("--cache", default=None, help="cache folder (default ~/.cache/musicssl)")
    demo.set_defaults(run=_demo)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    # Sleeping OpenMP waiters and a glibc that keeps freed memory (see musicssl.runtime);
    # OpenMP reads its setting once, when torch loads: before any verb imports it.
    configure_cpu_runtime()
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    # key=value overrides may also follow options: `pretrain R.yaml --out X train.steps=5`.
    if extra and args.verb == "pretrain" and all("=" in e and not e.startswith("-") for e in extra):
        args.overrides = [*args.overrides, *extra]
    elif extra:
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    try:
        args.run(args)
    except MusicSSLError as error:
        print(f"musicssl: error: {error}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("musicssl: interrupted", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
