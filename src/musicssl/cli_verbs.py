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
            description="Cut each file of INPUT (a folder of audio, a manifest .jsonl or a "
            "store) into windows of the encoder's training crop, encode them in batches and "
            "mean-pool to one vector per file: an .npz with 'names' (paths relative to INPUT) "
            "and 'emb'. Files of any length work: audio is streamed, memory stays bounded by "
            "--batch-size windows. Bad files are skipped and listed.",
        ),
        "musicssl.embed:embed_files",
    )
    embed.option(
        "checkpoint", type=existing_folder, metavar="CKPT", help="checkpoint, or run (its latest)"
    )
    embed.option("input", type=existing_path, metavar="INPUT", help="folder, manifest or store")
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
    from musicssl.embed import embed_files, load

    model = load(args.checkpoint, **given(args, "device", "readout"))
    summary = embed_files(
        model, args.input, **given(args, "out", "hop", "layers", "frames", "batch_size")
    )
    print(f"embedded {summary['embedded']} files, skipped {summary['skipped']}: {args.out}")


def add_evaluate(verbs: Any) -> None:
    evaluate = Verb(
        verbs.add_parser(
            "evaluate",
            help="probe a frozen encoder (or any embeddings) on every task; write a report",
            description="Embed every file the tasks need with SOURCE (cached by content "
            "hash), fit linear and MLP probes on the train split (chosen on valid, several "
            "seeds), score the test split, and write results.json, report.md and report.html "
            "(offline, with plots) to --out, beside the baselines. SOURCE is a checkpoint or "
            "run folder, an .npz of embeddings from any system ('names' relative to the "
            "corpus's audio folder, 'emb'), or baseline:NAME (mfcc, logmel, tempogram, random).",
        ),
        "musicssl.evaluate.run:evaluate",
    )
    evaluate.option(
        "source", type=_source, metavar="SOURCE", help="checkpoint, run, .npz or baseline:NAME"
    )
    evaluate.option(
        "--out", required=True, type=output_folder, metavar="DIR", help="report folder to write"
    )
    evaluate.option(
        "--corpus",
        type=output_folder,
        default=Default(_default_corpus),
        metavar="DIR",
        help="built-in corpus; the small one is built there if missing (default: %(default)s)",
    )
    evaluate.option(
        "--tasks",
        nargs="+",
        metavar="TASK",
        help="built-in tasks by name (style key ...; style@transfer, or transfer for all: "
        "tested on the corpus's renders by other instruments), DATASET=ROOT for a standard "
        "data set in "
        "its usual layout (gtzan=/data/gtzan), or a .csv/.jsonl of path + label(s) "
        "(default: every built-in task)",
    )
    evaluate.option(
        "--seeds",
        type=positive_int,
        metavar="N",
        help="probe fits per task: scores are mean ± std over them (default: %(default)s)",
    )
    evaluate.option("--layers", choices=["all"], help="also probe every encoder layer")
    evaluate.option(
        "--readout",
        choices=["mean", "freq"],
        help="the layers' vectors: mean over frames, or freq: frequency bins kept "
        "(default: %(default)s)",
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
        default=Default(_default_cache),
        metavar="DIR",
        help="embeddings and baseline results (default: %(default)s; $MUSICSSL_CACHE sets it)",
    )
    evaluate.option(
        "--device", type=device_name, help="cpu, cuda, cuda:N or mps (default: %(default)s)"
    )
    evaluate.parser.set_defaults(run=run_evaluate, uses_torch=True)


def _source(text: str) -> str:
    return text if text.startswith("baseline:") else existing_path(text)


def _baseline(text: str) -> str:
    from musicssl.evaluate.baselines import BASELINES

    if text != "none" and text not in BASELINES:
        raise argparse.ArgumentTypeError(f"{text!r}: give {', '.join(BASELINES)} or none")
    return text


def _default_corpus() -> Any:
    from musicssl.recipe import DEFAULT_CORPUS

    return DEFAULT_CORPUS


def _default_cache() -> Any:
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
    from musicssl.files import folder_lock

    check_out(args.out)  # before the lock makes the folder
    with folder_lock(args.out, busy="another musicssl evaluate is writing this report now"):
        evaluate(args.source, **options)
    out = Path(args.out)
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


def add_index(verbs: Any) -> None:
    index = Verb(
        verbs.add_parser(
            "index",
            help="index an .npz of clip embeddings for search (faiss)",
            description="Write an index folder of ours from an embeddings .npz ('names', "
            "'emb'; from `musicssl embed`): the vectors, the names and an exact cosine "
            "faiss index, for `musicssl search`. An existing index at --out is replaced; any "
            "other non-empty folder is refused.",
        ),
        "musicssl.search:build_index",
    )
    index.option("embeddings", type=existing_file, metavar="EMB.npz", help="clip embeddings")
    index.option(
        "--out", required=True, type=output_folder, metavar="INDEX", help="index folder to write"
    )
    index.parser.set_defaults(run=run_index)


def run_index(args: argparse.Namespace) -> None:
    from musicssl.search import build_index

    about = build_index(args.embeddings, out=args.out)
    print(f"indexed {about['count']} clips of {about['dim']} dimensions: {args.out}")


def add_search(verbs: Any) -> None:
    search = Verb(
        verbs.add_parser(
            "search",
            help="the clips of an index nearest a text or an audio file",
            description="Print the --k clips of INDEX nearest the query, best first, with "
            "their cosine scores. --text needs a run with a text tower (CLAP, SLAP) whose "
            "embeddings INDEX holds: the text and the clips meet in the run's joint space. "
            "--audio embeds the file with the run's encoder.",
        ),
        "musicssl.search:search_text",
    )
    search.option("index", type=existing_folder, metavar="INDEX", help="from `musicssl index`")
    query = search.parser.add_mutually_exclusive_group(required=True)
    search.option("--text", group=query, default=None, metavar="TEXT", help="a description")
    search.option(
        "--audio", group=query, default=None, type=existing_file, metavar="FILE", help="a clip"
    )
    search.option(
        "--run",
        dest="checkpoint",  # args.run is the verb's function
        required=True,
        type=existing_folder,
        metavar="RUN",
        help="the run (or checkpoint) that embedded INDEX's clips",
    )
    search.option(
        "--k", type=positive_int, metavar="N", help="clips to print (default: %(default)s)"
    )
    search.option(
        "--device",
        type=device_name,
        default=default_of("musicssl.embed:load", "device"),
        help="cpu, cuda, cuda:N or mps (default: %(default)s)",
    )
    search.parser.set_defaults(run=run_search, uses_torch=True)


def run_search(args: argparse.Namespace) -> None:
    from musicssl.embed import load
    from musicssl.search import load_index, search_audio, search_text

    index = load_index(args.index)
    model = load(args.checkpoint, **given(args, "device"))
    if args.text is not None:
        found = search_text(index, model, args.text, **given(args, "k"))
    else:
        found = search_audio(index, model, args.audio, **given(args, "k"))
    for rank, (name, score) in enumerate(found, start=1):
        print(f"{rank:>3}  {score:+.4f}  {name}")


def add_pitch(verbs: Any) -> None:
    pitch = Verb(
        verbs.add_parser(
            "pitch",
            help="f0 of monophonic audio with a run trained by the pesto recipe",
            description="Load RUN (a pesto_cnn run, calibrated on synthetic harmonic tones), "
            "read the pitch of every CQT frame of AUDIO and write a CSV of time (s), f0 (Hz) "
            "and confidence (probability within a semitone of the peak, 0 to 1).",
        ),
        "musicssl.pitch:load",
    )
    pitch.option("checkpoint", type=existing_folder, metavar="RUN", help="run or checkpoint folder")
    pitch.option("audio", type=existing_file, metavar="AUDIO", help="an audio file")
    pitch.option("--out", required=True, type=output_file, metavar="CSV", help="CSV to write")
    pitch.option(
        "--hop-length",
        type=positive_int,
        metavar="SAMPLES",
        help="samples between frames (default: the encoder's)",
    )
    pitch.option(
        "--device", type=device_name, help="cpu, cuda, cuda:N or mps (default: %(default)s)"
    )
    pitch.parser.set_defaults(run=run_pitch, uses_torch=True)


def run_pitch(args: argparse.Namespace) -> None:
    from musicssl import audio
    from musicssl.pitch import load, write_csv

    model = load(args.checkpoint, **given(args, "device", "hop_length"))
    track = model.pitch(audio.load(args.audio, sr=model.sample_rate), model.sample_rate)
    write_csv(args.out, track)
    print(f"{len(track.f0)} frames: {args.out}")


def add_key(verbs: Any) -> None:
    _add_readout(verbs, "key", "musicssl.readouts:load_key", "a stone (key-cpu) run", "the key")


def add_tempo(verbs: Any) -> None:
    _add_readout(
        verbs, "tempo", "musicssl.readouts:load_tempo", "a tempo (tempo-cpu) run", "the tempo (BPM)"
    )


def _add_readout(verbs: Any, name: str, loader: str, kind: str, what: str) -> None:
    verb = Verb(
        verbs.add_parser(
            name,
            help=f"print {what} of each audio file with {kind}",
            description=f"Load RUN ({kind}, calibrated on synthetic audio made in code) and "
            f"print {what} of each file of AUDIO (files, or folders searched recursively), "
            "one line per file: path, a tab, the value. Unreadable files in a folder are "
            "named on stderr and skipped.",
        ),
        loader,
    )
    verb.option("checkpoint", type=existing_folder, metavar="RUN", help="run or checkpoint folder")
    verb.option("audio", nargs="+", type=existing_path, metavar="AUDIO", help="files or folders")
    verb.option(
        "--device", type=device_name, help="cpu, cuda, cuda:N or mps (default: %(default)s)"
    )
    verb.parser.set_defaults(run=run_readout, uses_torch=True)


def run_readout(args: argparse.Namespace) -> None:
    import sys

    from musicssl import audio
    from musicssl.corpus import find_audio
    from musicssl.readouts import load_key, load_tempo

    read: Any
    if args.verb == "key":
        model: Any = load_key(args.checkpoint, **given(args, "device"))
        read = model.key
    else:
        model = load_tempo(args.checkpoint, **given(args, "device"))
        read = model.tempo
    for given_path in map(Path, args.audio):
        found = [given_path] if given_path.is_file() else sorted(find_audio(given_path))
        for path in found:
            try:
                value = read(audio.load(path, sr=model.sample_rate), model.sample_rate)
            except MusicSSLError as error:
                if path == given_path:  # a file named on the command line: stop here
                    raise
                print(f"musicssl: skipped {error}", file=sys.stderr)
                continue
            print(f"{path}\t{value:.1f}" if isinstance(value, float) else f"{path}\t{value}")


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
        default=Default(_default_cache),
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
