"""The data verbs: ``corpus build`` (the built-in corpus), ``data index`` (a manifest of a
folder of audio) and ``data pack`` (a store of it), each declared beside the call it feeds.
"""

from __future__ import annotations

import argparse
from typing import Any

from musicssl.cli_options import (
    Verb,
    existing_file,
    existing_folder,
    given,
    non_negative_int,
    output_file,
    output_folder,
    positive_int,
)


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
    from musicssl.builtin import build_corpus

    summary = build_corpus(args.out, **given(args, "size", "seed", "workers"))
    print(_described_build(summary))


def _described_build(summary: dict[str, Any]) -> str:
    """A finished build's summary (``build_corpus``'s dict) as lines a person reads."""
    from musicssl.splits import describe_splits

    def listed(counts: dict[str, int]) -> str:
        return ", ".join(f"{name} {count:,}" for name, count in counts.items())

    how = "built before, reused" if summary.get("cached") else "built"
    hours = float(summary.get("total_seconds", 0.0)) / 3600
    return "\n".join([
        f"corpus: {summary.get('out_dir', '?')} ({summary.get('num_clips', 0):,} clips, "
        f"{hours:.1f} h; {how})",
        f"splits: {describe_splits(summary.get('splits', {}))}",
        f"styles: {listed(summary.get('styles', {}))}",
        f"monophonic clips, with an f0 track: {summary.get('monophonic', 0):,}; test clips "
        f"rendered by other instruments (transfer/): {summary.get('transfer_clips', 0):,}",
        f"manifest: {summary.get('manifest', '?')}",
    ])  # fmt: skip


def add_data_index(verbs: Any) -> None:
    index = Verb(
        verbs.add_parser(
            "index",
            help="index a folder of audio into a JSON-lines manifest, with splits",
            description="Walk FOLDER for audio (wav, flac, ogg, opus, mp3, aiff, au), decode "
            "each file once to check it, and write a manifest (path, duration, sr, channels, "
            "split). Corrupt, empty, truncated, silent or non-audio files go to the bad-files "
            "report with the reason and never stop the run, as does a second path to the "
            "same file or a copy of one (kept once). Re-running on a grown folder "
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
        type=_splits_source,
        metavar="TABLE",
        help="each file's split from a manifest with 'split', or a .csv/.tsv with 'path' and "
        "'split' columns (paths relative to TABLE's folder or to FOLDER), or from a standard "
        "data set's own split, DATASET=ROOT[,OPTION=VALUE] as evaluate --tasks names it "
        "(gtzan=FOLDER: its test clips are never pretrained on); a file it does not name "
        "gets no split",
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
        "--labels",
        type=existing_file,
        metavar="TABLE",
        help="labels of your own: a .csv/.tsv/.jsonl with 'path' and any other columns "
        "(caption, style, ...), each copied into its file's row and so into the store: "
        "captions for the audio-text recipes, a label for train.probe_every (it may be the "
        "--splits table)",
    )
    index.option(
        "--workers",
        type=positive_int,
        metavar="N",
        help="files decoded at once (default: %(default)s)",
    )
    index.parser.set_defaults(run=run_data_index)


def _splits_source(text: str) -> str:
    """``--splits``: a table or manifest that exists, or a standard data set's name and folder."""
    from musicssl.evaluate.task_specs import is_dataset_spec

    return text if is_dataset_spec(text) else existing_file(text)


def run_data_index(args: argparse.Namespace) -> None:
    from musicssl.corpus import index_folder
    from musicssl.evaluate.task_specs import dataset_splits, is_dataset_spec

    options = given(args, "out", "bad", "splits", "split_by", "labels", "workers")
    if is_dataset_spec(str(options.get("splits", ""))):
        options["splits"] = dataset_splits(options["splits"])
    print(index_folder(args.folder, **options))


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
