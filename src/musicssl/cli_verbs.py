"""The ``musicssl`` verbs: ``add_VERB`` declares its options, ``run_VERB`` calls the library.

Options take their defaults from the library function's signature (``cli_options.Verb``);
only the options a user gave are passed on (``given``).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import textwrap
from pathlib import Path
from typing import Any

from musicssl.cli_evaluate import add_compare, add_evaluate, default_cache_folder
from musicssl.cli_options import (
    Default,
    Verb,
    cuda_problem,
    default_of,
    device_name,
    existing_file,
    existing_folder,
    existing_path,
    given,
    layer_choice,
    non_negative_int,
    output_file,
    output_folder,
    override,
    positive_float,
    positive_int,
    recipe_file,
)
from musicssl.cli_readouts import add_key, add_pitch, add_tempo
from musicssl.cli_search import add_index, add_search
from musicssl.errors import MusicSSLError


def add_corpus_build(verbs: Any) -> None:
    from musicssl.builtin import SIZES

    sizes = ", ".join(f"{name} ({_clips(spec):,} clips)" for name, spec in SIZES.items())
    build = Verb(
        verbs.add_parser(
            "build",
            help="render the built-in corpus (scores from music21, General MIDI SoundFont)",
            description="Render real compositions from music21's score corpus with the General "
            "MIDI SoundFont that ships inside pretty_midi: DIR/audio/*.wav (16 kHz mono, ~10 s "
            "clips) and a labelled DIR/manifest.jsonl (style, key, tempo, metre, instruments, "
            "caption, split by piece; f0 for monophonic clips). Deterministic for a seed; a "
            "finished build of the same size and seed is reused, an interrupted one continues.",
        ),
        "musicssl.builtin:build_corpus",
    )
    build.option(
        "--out", required=True, type=output_folder, metavar="DIR", help="folder to render into"
    )
    build.option("--size", choices=list(SIZES), help=f"{sizes} (default: %(default)s)")
    build.option(
        "--seed",
        type=non_negative_int,
        metavar="N",
        help="seed of every random choice (default: %(default)s)",
    )
    build.option(
        "--workers", type=positive_int, metavar="N", help="processes at once (default: all cores)"
    )
    build.parser.set_defaults(run=run_corpus_build)


def _clips(spec: Any) -> int:
    return sum(pieces * clips for pieces, clips in spec.per_style.values())


def run_corpus_build(args: argparse.Namespace) -> None:
    import json

    from musicssl.builtin import build_corpus

    summary = build_corpus(args.out, **given(args, "size", "seed", "workers"))
    print(json.dumps(summary, indent=2))


def add_data_index(verbs: Any) -> None:
    index = Verb(
        verbs.add_parser(
            "index",
            help="index a folder of audio into a JSON-lines manifest, with splits",
            description="Walk FOLDER for audio (wav, flac, ogg, opus, mp3, aiff, au), decode "
            "each file once to check it, and write a manifest (path, duration, sr, channels, "
            "split). Corrupt, empty, truncated, silent or non-audio files go to the bad-files "
            "report with the reason and never stop the run. Re-running on a grown folder "
            "decodes only new or changed files. Splits travel with the data, so that "
            "pretraining never reads test audio: from --splits, or --split-by, or else the "
            "manifest beside FOLDER (as the built-in corpus lays out), or else the previous "
            "index at MANIFEST.",
        ),
        "musicssl.corpus:index_folder",
    )
    index.option(
        "folder",
        type=existing_folder,
        metavar="FOLDER",
        help="folder of audio, searched recursively",
    )
    index.option(
        "--out",
        required=True,
        type=output_file,
        metavar="MANIFEST",
        help="manifest to write, e.g. mine.jsonl",
    )
    index.option(
        "--bad",
        type=output_file,
        metavar="REPORT",
        help="bad-files report (default: MANIFEST's name with .bad.jsonl)",
    )
    splits = index.parser.add_mutually_exclusive_group()
    index.option(
        "--splits",
        group=splits,
        type=existing_file,
        metavar="TABLE",
        help="each file's split from a manifest with 'split', or a .csv/.tsv with 'path' and "
        "'split' columns (paths relative to TABLE's folder or to FOLDER)",
    )
    index.option(
        "--split-by",
        group=splits,
        metavar="GROUP",
        help="a stable hash split, 80/10/10 train/valid/test, keeping each group together: "
        "parent (the file's folder: one album), prefix:SEP (the name up to its last SEP: "
        "prefix:_ keeps piece_take1.wav with piece_take2.wav) or file",
    )
    index.option(
        "--workers",
        type=positive_int,
        metavar="N",
        help="files decoded at once (default: %(default)s)",
    )
    index.parser.set_defaults(run=run_data_index)


def run_data_index(args: argparse.Namespace) -> None:
    from musicssl.corpus import index_folder

    print(index_folder(args.folder, **given(args, "out", "bad", "splits", "split_by", "workers")))


def add_data_pack(verbs: Any) -> None:
    pack = Verb(
        verbs.add_parser(
            "pack",
            help="decode a manifest once into a memory-mapped sample store",
            description="Decode every clip of MANIFEST to mono int16 at --sr into one "
            "memory-mapped file, so that a random crop during training is a slice instead of "
            "a decode. Labels and splits travel into the store. Written atomically; an "
            "interrupted pack resumes where it stopped when run again.",
        ),
        "musicssl.pack:pack",
    )
    pack.option("manifest", type=existing_file, metavar="MANIFEST", help="JSON-lines manifest")
    pack.option(
        "--out", required=True, type=output_folder, metavar="STORE", help="store folder to write"
    )
    pack.option(
        "--sr",
        type=positive_int,
        metavar="HZ",
        help="the store's sample rate: the encoder's (default: %(default)s)",
    )
    pack.option(
        "--workers",
        type=positive_int,
        metavar="N",
        help="clips decoded at once (default: %(default)s)",
    )
    pack.parser.set_defaults(run=run_data_pack)


def run_data_pack(args: argparse.Namespace) -> None:
    from musicssl.pack import pack

    print(pack(args.manifest, **given(args, "out", "sr", "workers")))


def add_pretrain(verbs: Any) -> None:
    from musicssl.recipe import packaged_recipes

    about = textwrap.fill(
        "Pretrain the encoder of RECIPE with its SSL method on its data: data.store=STORE "
        "(from `musicssl data pack`), or else the built-in corpus, built and packed on first "
        "use. Only the clips of data.splits train (default: the train split), so evaluation "
        "never scores audio the encoder saw. Settings are overridden as key=value, e.g. "
        "train.steps=2000 train.batch_size=64 data.store=data/store. Writes checkpoints "
        "(safetensors + recipe), metrics.csv and TensorBoard logs to RUN_DIR; a killed run "
        "continues with --resume RUN_DIR.",
        width=88,
    )
    recipes = "\n".join(f"  {name:<24} {text}" for name, text in packaged_recipes().items())
    pretrain = Verb(
        verbs.add_parser(
            "pretrain",
            help="pretrain an encoder with an SSL recipe",
            formatter_class=argparse.RawDescriptionHelpFormatter,
            description=f"{about}\n\npackaged recipes:\n{recipes}",
        ),
        "musicssl.train:pretrain",
    )
    pretrain.option(
        "recipe",
        nargs="?",
        type=recipe_file,
        metavar="RECIPE",
        help="a packaged recipe (above) or a YAML file",
    )
    pretrain.option(
        "overrides",
        nargs="*",
        type=override,
        metavar="KEY=VALUE",
        help="settings to change, e.g. train.steps=2000",
    )
    run = pretrain.parser.add_mutually_exclusive_group()
    pretrain.option(
        "--out",
        group=run,
        default=None,
        type=output_folder,
        metavar="RUN_DIR",
        help="run folder to create",
    )
    pretrain.option(
        "--resume",
        group=run,
        default=None,
        type=existing_folder,
        metavar="RUN_DIR",
        help="continue this run, with its own recipe",
    )
    pretrain.parser.set_defaults(run=run_pretrain, uses_torch=True)


def run_pretrain(args: argparse.Namespace) -> None:
    from musicssl.recipe import Recipe

    if args.resume:
        if args.recipe or args.overrides:
            raise MusicSSLError(
                "--resume continues a run with its own recipe and settings: give only RUN_DIR "
                "(to train longer, start a new run)"
            )
        run = Path(args.resume)
        from musicssl.checkpoint import check_resumable

        check_resumable(run)
        recipe = Recipe.load(run / "recipe.yaml")
    else:
        if not args.recipe or not args.out:
            raise MusicSSLError("give a RECIPE and --out RUN_DIR (or --resume RUN_DIR)")
        if "=" in args.recipe:
            raise MusicSSLError(f"{args.recipe}: give the RECIPE first, then key=value overrides")
        run = Path(args.out)
        recipe = Recipe.load(args.recipe, args.overrides)
    accelerator, devices = recipe.train.accelerator, recipe.train.devices
    if accelerator in ("cuda", "gpu"):
        problem = cuda_problem(int(devices) if devices.isdigit() else 1)
        if problem:
            raise MusicSSLError(
                f"train.accelerator={accelerator}: CUDA is not available on this machine "
                f"({problem}); pick a CPU recipe (musicssl pretrain --help) or pass "
                "train.accelerator=cpu"
            )
    from musicssl.checkpoint import check_new_run
    from musicssl.demo import with_builtin_store
    from musicssl.files import folder_lock
    from musicssl.train import build_parts, pretrain

    build_parts(recipe)  # refuse bad part options before the built-in corpus is built
    first = os.environ.get("LOCAL_RANK", "0") == "0"  # DDP's children neither check nor lock
    if not args.resume and first:
        check_new_run(run)
    recipe = with_builtin_store(recipe)
    with contextlib.ExitStack() as stack:
        if first:
            busy = "another musicssl pretrain is writing this run now"
            stack.enter_context(folder_lock(run, busy=busy))
            if not args.resume:
                check_new_run(run)  # again, now that no other process can write it
        checkpoint = pretrain(recipe, out=run, resume=bool(args.resume))
    # Under DDP every process gets here; one line is enough.
    if os.environ.get("RANK", "0") == "0" and os.environ.get("LOCAL_RANK", "0") == "0":
        print(f"checkpoint: {checkpoint}")


def add_embed(verbs: Any) -> None:
    embed = Verb(
        verbs.add_parser(
            "embed",
            help="embed audio with a trained encoder into an .npz",
            description="Cut each file of INPUT (an audio file, a folder of audio, a manifest "
            ".jsonl or a store) into windows of the encoder's training crop, encode them in "
            "batches and mean-pool to one vector per file: an .npz with 'names' (paths relative "
            "to INPUT) "
            "and 'emb'. Files of any length work: audio is streamed, memory stays bounded by "
            "--batch-size windows. Bad files are skipped and listed.",
        ),
        "musicssl.embed_folder:embed_files",
    )
    embed.option(
        "checkpoint", type=existing_folder, metavar="CKPT", help="checkpoint, or run (its latest)"
    )
    embed.option(
        "input", type=existing_path, metavar="INPUT", help="audio file, folder, manifest or store"
    )
    embed.option("--out", required=True, type=output_file, metavar="NPZ", help="the .npz to write")
    embed.option(
        "--hop",
        type=positive_float,
        metavar="SECONDS",
        help="between window starts, e.g. 1.0 to overlap (default: the window: no overlap)",
    )
    embed.option(
        "--layer",
        dest="layers",
        type=layer_choice,
        metavar="N|all",
        help="also pool encoder layer N (e.g. 3: array layer_3), or every layer",
    )
    embed.option(
        "--readout",
        choices=["mean", "freq"],
        default=default_of("musicssl.embed:load", "readout"),
        help="a layer's vector: mean over frames, or freq: mean over time of the 2-D maps, "
        "frequency bins kept (short-chunk CNN) (default: %(default)s)",
    )
    embed.option(
        "--frames",
        action="store_true",
        help="also write frame tracks: frames, frame_times (s), frame_offsets",
    )
    embed.option(
        "--batch-size",
        type=positive_int,
        metavar="N",
        help="windows encoded at once (default: %(default)s)",
    )
    embed.option(
        "--device",
        type=device_name,
        default=default_of("musicssl.embed:load", "device"),
        help="cpu, cuda, cuda:N or mps (default: %(default)s)",
    )
    embed.parser.set_defaults(run=run_embed, uses_torch=True)


def run_embed(args: argparse.Namespace) -> None:
    from musicssl.embed import load
    from musicssl.embed_folder import embed_files

    model = load(args.checkpoint, **given(args, "device", "readout"))
    summary = embed_files(
        model, args.input, **given(args, "out", "hop", "layers", "frames", "batch_size")
    )
    print(f"embedded {summary['embedded']} files, skipped {summary['skipped']}: {args.out}")


def add_demo(verbs: Any) -> None:
    from musicssl.builtin import SIZES

    demo = Verb(
        verbs.add_parser(
            "demo",
            help="corpus, pretraining and evaluation report, end to end on a CPU",
            description="Build the small built-in corpus (once), pretrain the demo's CPU "
            "recipe on its train split for --minutes, evaluate it on every built-in task beside "
            "the MFCC, log-mel and random-weights baselines, and print where the report is. "
            "About a quarter of an hour on 2 CPU cores from nothing; a rerun reuses what is "
            "done.",
        ),
        "musicssl.demo:run_demo",
    )
    demo.option(
        "--out",
        type=output_folder,
        metavar="DIR",
        help="demo folder: run/, report/ (default: %(default)s)",
    )
    demo.option(
        "--corpus",
        type=output_folder,
        metavar="DIR",
        help="built-in corpus, built once (default: %(default)s)",
    )
    demo.option(
        "--minutes",
        type=positive_float,
        metavar="MINUTES",
        help="pretraining budget; more learns more (default: %(default)s)",
    )
    demo.option(
        "--seeds", type=positive_int, metavar="N", help="probe fits per task (default: %(default)s)"
    )
    demo.option(
        "--corpus-size",
        choices=list(SIZES),
        help="tiny is a smoke test of about a minute (default: %(default)s)",
    )
    demo.option(
        "--cache",
        type=output_folder,
        default=Default(default_cache_folder),
        metavar="DIR",
        help="embeddings and baseline results (default: %(default)s; $MUSICSSL_CACHE sets it)",
    )
    demo.parser.set_defaults(run=run_demo, uses_torch=True)


def run_demo(args: argparse.Namespace) -> None:
    from musicssl.demo import run_demo

    run_demo(**given(args, "out", "corpus", "minutes", "seeds", "corpus_size", "cache"))


def add_verbs(verbs: Any) -> None:
    """Every verb, under the command's subparsers ``verbs``."""
    corpus = verbs.add_parser("corpus", help="the built-in labelled music corpus")
    add_corpus_build(corpus.add_subparsers(dest="action", metavar="ACTION", required=True))
    data = verbs.add_parser("data", help="index folders of audio and pack them into a store")
    data_verbs = data.add_subparsers(dest="action", metavar="ACTION", required=True)
    add_data_index(data_verbs)
    add_data_pack(data_verbs)
    add_pretrain(verbs)
    add_embed(verbs)
    add_evaluate(verbs)
    add_compare(verbs)
    add_index(verbs)
    add_search(verbs)
    add_pitch(verbs)
    add_key(verbs)
    add_tempo(verbs)
    add_demo(verbs)
