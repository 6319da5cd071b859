"""The ``pitch``, ``key`` and ``tempo`` verbs: read-outs of an equivariant run."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from musicssl.cli_options import (
    Verb,
    device_name,
    existing_file,
    existing_folder,
    existing_path,
    given,
    output_file,
    positive_int,
)
from musicssl.errors import MusicSSLError


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
    from musicssl.pitch import check_csv_out, load, write_csv

    check_csv_out(Path(args.out))  # before any work
    model = load(args.checkpoint, **given(args, "device", "hop_length"))
    track = model.pitch(audio.load(args.audio, sr=model.sample_rate), model.sample_rate)
    write_csv(args.out, track)
    print(f"{len(track.f0)} frames: {args.out}")


def add_key(verbs: Any) -> None:
    _add_readout(
        verbs,
        "key",
        "musicssl.readouts:load_key",
        "a stone run: key-cpu, or the demo's simclr-key-tempo-cpu",
        "the key",
    )


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
    read_count, skipped = 0, 0
    for given_path in map(Path, args.audio):
        found = [given_path] if given_path.is_file() else sorted(find_audio(given_path))
        for path in found:
            try:
                value = read(audio.load(path, sr=model.sample_rate), model.sample_rate)
            except MusicSSLError as error:
                reason = str(error) if str(error).startswith(str(path)) else f"{path}: {error}"
                if path == given_path:  # a file named on the command line: stop here
                    raise MusicSSLError(reason) from None
                print(f"musicssl: skipped {reason}", file=sys.stderr)
                skipped += 1
                continue
            print(f"{path}\t{value:.1f}" if isinstance(value, float) else f"{path}\t{value}")
            read_count += 1
    if read_count == 0:
        raise MusicSSLError(
            f"{args.verb}: no audio could be read ({skipped} files skipped)"
            if skipped
            else f"{args.verb}: no audio files in {' '.join(args.audio)}"
        )
