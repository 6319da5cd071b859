"""The ``index`` and ``search`` verbs: text-to-music and audio-to-music search (faiss)."""

from __future__ import annotations

import argparse
from typing import Any

from musicssl.cli_options import (
    Verb,
    default_of,
    device_name,
    existing_file,
    existing_folder,
    given,
    model_folder,
    output_folder,
    positive_int,
)


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
            "their cosine scores. --text needs a run with a text tower (CLAP, SLAP), or a "
            "LAION-CLAP (hf:FOLDER), whose embeddings INDEX holds: the text and the clips meet "
            "in its joint space. "
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
        type=model_folder,
        metavar="RUN",
        help="the run (or checkpoint, or hf:FOLDER) that embedded INDEX's clips",
    )
    search.option(
        "-k", "--k", type=positive_int, metavar="N", help="clips to print (default: %(default)s)"
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
