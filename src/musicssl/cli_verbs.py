"""The ``musicssl`` verbs: ``add_VERB`` declares its options, ``run_VERB`` calls the library.

Options take their defaults from the library function's signature (``cli_options.Verb``);
only the options a user gave are passed on (``given``).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import sys
import textwrap
from pathlib import Path
from typing import TYPE_CHECKING, Any

from musicssl.cli_data import add_corpus_build, add_data_index, add_data_pack
from musicssl.cli_evaluate import add_compare, add_evaluate, default_cache_folder
from musicssl.cli_options import (
    Default,
    Verb,
    corpus_folder,
    default_of,
    device_name,
    existing_folder,
    existing_path,
    given,
    layer_choice,
    model_folder,
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
from musicssl.plural import counted

if TYPE_CHECKING:
    from musicssl.recipe import Recipe


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
    packaged = packaged_recipes()
    width = max(map(len, packaged)) + 1
    recipes = "\n".join(f"  {name:<{width}} {text}" for name, text in packaged.items())
    settings = "\n".join(
        textwrap.fill(
            f"{section}: {', '.join(names)}",
            width=88,
            initial_indent="  ",
            subsequent_indent="    ",
        )  # fmt: skip
        for section, names in _setting_names().items()
    )
    pretrain = Verb(
        verbs.add_parser(
            "pretrain",
            help="pretrain an encoder with an SSL recipe",
            formatter_class=argparse.RawDescriptionHelpFormatter,
            description=f"{about}\n\npackaged recipes:\n{recipes}\n\nsettings (key=value; a "
            "part's own options as encoder.options.NAME,\nmethod.options.NAME or "
            f"augment.options.NAME):\n{settings}",
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


def _setting_names() -> dict[str, list[str]]:
    """The settings of each section of a recipe, by name (``musicssl.recipe``'s dataclasses)."""
    import dataclasses

    from musicssl.recipe import DataSettings, OptimSettings, TrainSettings

    kinds = {"data": DataSettings, "optim": OptimSettings, "train": TrainSettings}
    return {section: [f.name for f in dataclasses.fields(kind)] for section, kind in kinds.items()}


def run_pretrain(args: argparse.Namespace) -> None:
    if args.resume:
        run, recipe = Path(args.resume), _resumed_recipe(args)
        if recipe is None:  # finished: said so, and nothing to do
            from musicssl.checkpoint import latest

            print(f"checkpoint: {latest(run)}")
            return
    else:
        run, recipe = Path(args.out or ""), _new_recipe(args)
    from musicssl.checkpoint import check_new_run, is_run
    from musicssl.demo import with_builtin_store
    from musicssl.files import folder_lock, missing_folders, remove_empty
    from musicssl.processes import is_first_process
    from musicssl.train import build_parts, pretrain
    from musicssl.train_devices import check_accelerator

    # Refuse a missing device and bad part options before the built-in corpus is built.
    check_accelerator(recipe.train)
    build_parts(recipe, start=not args.resume)
    first = is_first_process()  # the others neither check nor lock
    if not args.resume and first:
        check_new_run(run)
    recipe = with_builtin_store(recipe)
    made = missing_folders(run) if first and not args.resume else []
    with contextlib.ExitStack() as stack:
        if first:
            busy = "another musicssl pretrain is writing this run now"
            stack.enter_context(folder_lock(run, busy=busy))
            if not args.resume:
                check_new_run(run)  # again, now that no other process can write it
        try:
            checkpoint = pretrain(recipe, out=run, resume=bool(args.resume))
        except BaseException as error:
            # Refused, or failed as it began (a method of one's own, say): before a checkpoint,
            # leave nothing. Interrupted: only while the folder holds nothing but our lock (a
            # run's first files resume from step 0).
            bare = run.is_dir() and {path.name for path in run.iterdir()} <= {".lock"}
            if made and not is_run(run) and (isinstance(error, Exception) or bare):
                shutil.rmtree(run, ignore_errors=True)
                remove_empty(made[1:])  # nor the parents this call made
            raise
    # Under DDP every process gets here; one line is enough.
    if first:
        print(f"checkpoint: {checkpoint}")


def _resumed_recipe(args: argparse.Namespace) -> Recipe | None:
    """The recipe of the run ``--resume`` names, its store checked (or moved); None, after
    saying how to train longer, when the run has finished."""
    from musicssl.checkpoint import check_resumable, check_unchanged_recipe, is_run
    from musicssl.recipe import Recipe
    from musicssl.run_state import finished_note

    given_now = [*([args.recipe] if args.recipe else []), *args.overrides]
    moved = given_now[0].partition("=")[2] if len(given_now) == 1 else None
    if given_now and not (moved and given_now[0].startswith("data.store=")):
        raise MusicSSLError(
            "--resume continues a run with its own recipe and settings: give only RUN_DIR, "
            "or data.store=STORE where its store has moved (to train longer, start a new run "
            f"from it: musicssl pretrain RECIPE train.init_from={args.resume} --out NEW_RUN)"
        )
    run = Path(args.resume)
    check_resumable(run)
    recipe = Recipe.load(run / "recipe.yaml")
    check_unchanged_recipe(run, recipe)
    if is_run(run) and (note := finished_note(run, recipe.train)) is not None:
        print(note, flush=True)  # before the store is looked for and any process starts
        return None
    if moved:  # the same store (its identity is checked), in another place
        recipe.data.store = os.path.abspath(os.path.expanduser(moved))
    elif recipe.data.store and not os.path.isdir(recipe.data.store):
        raise MusicSSLError(
            f"{recipe.data.store}: the store {run} trains on is not there; if it has moved, "
            f"give its new place: musicssl pretrain --resume {run} data.store=STORE"
        )
    return recipe


def _new_recipe(args: argparse.Namespace) -> Recipe:
    """The recipe of a new run, its paths made absolute: the run keeps where its data is,
    whatever folder it is resumed from."""
    from musicssl.recipe import Recipe
    from musicssl.run_state import anchored

    if not args.recipe or not args.out:
        raise MusicSSLError("give a RECIPE and --out RUN_DIR (or --resume RUN_DIR)")
    if "=" in args.recipe:
        raise MusicSSLError(f"{args.recipe}: give the RECIPE first, then key=value overrides")
    return anchored(Recipe.load(args.recipe, args.overrides))


def add_embed(verbs: Any) -> None:
    embed = Verb(
        verbs.add_parser(
            "embed",
            help="embed audio with a trained encoder into an .npz",
            description="Cut each file of INPUT (an audio file, a folder of audio, a manifest "
            ".jsonl or a store) into windows of the encoder's training crop, encode them in "
            "batches and mean-pool to one vector per file: an .npz with 'names' (a folder's "
            "files relative to it; a manifest's or a store's rows by their own 'path', which is "
            "relative to the manifest's folder) and 'emb'. Files of any length work: audio is "
            "streamed, memory stays bounded by --batch-size windows. Bad files are skipped and "
            "listed.",
        ),
        "musicssl.embed_folder:embed_files",
    )
    embed.option(
        "checkpoint",
        type=model_folder,
        metavar="CKPT",
        help="checkpoint, run (its latest), or hf:FOLDER: an audio model saved by Hugging Face "
        "(the wav2vec 2.0 family: wav2vec2, HuBERT, WavLM, data2vec-audio, UniSpeech; MERT; "
        "LAION-CLAP; AST), read offline",
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
        "--layers",
        dest="layers",
        type=layer_choice,
        metavar="N|all",
        help="also pool encoder layer N (e.g. 3: array layer_3; -1: the last), or every layer "
        "(--layers all, as evaluate spells it)",
    )
    embed.option(
        "--readout",
        choices=["mean", "freq"],
        default=default_of("musicssl.embed:load", "readout"),
        help="a layer's vector: mean over frames, or freq: mean over time of the 2-D maps, "
        "frequency bins kept (short-chunk CNN; encoders without 2-D maps, the transformers, "
        "read the mean either way) (default: %(default)s)",
    )
    embed.option(
        "--frames",
        action="store_true",
        help="also write frame tracks: frames, frame_times (each frame's centre in s, the "
        "encoder's frame hop apart within a window), frame_offsets; one track per "
        "file in time order, of the last layer (or of --layer N); with --layer all, also "
        "frames_layer_K: each layer's frames averaged onto the last layer's",
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
    from musicssl.run_state import unfinished_note

    if (note := unfinished_note(args.checkpoint, "embed")) is not None:
        print(note, file=sys.stderr, flush=True)
    model = load(args.checkpoint, **given(args, "device", "readout"))
    summary = embed_files(
        model, args.input, **given(args, "out", "hop", "layers", "frames", "batch_size")
    )
    print(f"embedded {counted(summary['embedded'], 'file')}, skipped {summary['skipped']}: "
          f"{args.out}")  # fmt: skip


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
        type=corpus_folder,
        metavar="DIR",
        help="built-in corpus, built once (default: %(default)s)",
    )
    demo.option(
        "--minutes",
        type=positive_float,
        metavar="MINUTES",
        help="pretraining budget of a new --out; more learns more (default: %(default)s)",
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
