"""The ``pitch``, ``key`` and ``tempo`` verbs: read-outs of an equivariant run."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from pathlib import Path
from typing import Any

from musicssl.cli_options import (
    Verb,
    device_name,
    existing_folder,
    given,
    output_file,
    output_folder,
    positive_int,
)
from musicssl.errors import MusicSSLError


def add_pitch(verbs: Any) -> None:
    pitch = Verb(
        verbs.add_parser(
            "pitch",
            help="f0 of monophonic audio with a run trained by the pesto recipe",
            description="Load RUN (a pesto-cpu run, calibrated on synthetic harmonic tones), "
            "read the pitch of every CQT frame of AUDIO and write a CSV of time (s), f0 (Hz) "
            "and confidence (probability within a semitone of the peak, 0 to 1); a silent frame "
            "(peak below -90 dBFS) reads f0 0 and confidence 0, as mir_eval reads unvoiced. "
            "One audio file: --out is its CSV. Several, or a folder (searched recursively): "
            "--out is a folder, and each file's CSV is its name with .csv added, in the "
            "subfolder the file has below the folder given; a file that cannot be read is "
            "named on stderr with the reason and skipped.",
        ),
        "musicssl.pitch:load",
    )
    pitch.option("checkpoint", type=existing_folder, metavar="RUN", help="run or checkpoint folder")
    pitch.option("audio", nargs="+", metavar="AUDIO", help="an audio file, or files or folders")
    pitch.option("--out", required=True, metavar="OUT",
                 help="the CSV to write (one file), or the folder of CSVs (several)")  # fmt: skip
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
    from musicssl.pitch import check_csv_out, csv_name, load, write_csv

    one = len(args.audio) == 1 and not Path(args.audio[0]).is_dir()
    out = Path(args.out)
    try:  # before any work
        (output_file if one else output_folder)(args.out)
    except argparse.ArgumentTypeError as error:
        several = "" if one else "; with several audio files --out names the folder of their CSVs"
        raise MusicSSLError(f"--out {error}{several}") from None
    if one:
        check_csv_out(out)
    try:
        model = load(args.checkpoint, **given(args, "device", "hop_length"))
    except MusicSSLError as error:
        if args.hop_length is None or "hop_length" not in str(error):
            raise
        raise MusicSSLError(f"--hop-length {args.hop_length}: {error}") from None
    written: dict[Path, Path] = {}

    def pitch_of(path: Path, below: Path | None) -> str:
        target = out if one else out / csv_name(path, below)
        if target in written:
            raise MusicSSLError(f"{path}: its CSV {target} is {written[target]}'s already")
        track = model.pitch(audio.load(path, sr=model.sample_rate), model.sample_rate)
        write_csv(target, track)
        written[target] = path
        return f"{len(track.f0)} frames: {target}"

    each_audio(args.audio, pitch_of, verb="pitch")


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
        verbs,
        "tempo",
        "musicssl.readouts:load_tempo",
        "a tempo run: tempo-cpu, or the demo's simclr-key-tempo-cpu",
        "the tempo (BPM) and the network's confidence in it (0 to 1: its tempo distribution's "
        "share within 3 percent; music with a beat reads 0.85 on average, noise and steady tones "
        "under 0.2)",
    )


def _add_readout(verbs: Any, name: str, loader: str, kind: str, what: str) -> None:
    verb = Verb(
        verbs.add_parser(
            name,
            help=f"print {what} of each audio file with {kind}",
            description=f"Load RUN ({kind}, calibrated on synthetic audio made in code) and "
            f"print {what} of each file of AUDIO (files, or folders searched recursively), "
            "one line per file: the path and the values, tab-separated. A file that cannot "
            "be read (or a path that is not there) is named on stderr with the reason and "
            "skipped.",
        ),
        loader,
    )
    verb.option("checkpoint", type=existing_folder, metavar="RUN", help="run or checkpoint folder")
    verb.option("audio", nargs="+", metavar="AUDIO", help="files or folders")
    verb.option(
        "--device", type=device_name, help="cpu, cuda, cuda:N or mps (default: %(default)s)"
    )
    if name == "key":
        verb.option(
            "--profiles",
            choices=["aarden", "krumhansl"],
            help="the key profiles matched: Aarden's pitch-class shares in folk songs, or "
            "Krumhansl and Kessler's listener ratings (default: %(default)s)",
        )
    verb.parser.set_defaults(run=run_readout, uses_torch=True)


def run_readout(args: argparse.Namespace) -> None:
    from musicssl import audio
    from musicssl.readouts import load_key, load_tempo

    read: Any
    if args.verb == "key":
        model: Any = load_key(args.checkpoint, **given(args, "device", "profiles"))
        read = model.key
    else:
        model = load_tempo(args.checkpoint, **given(args, "device"))

        def read(waveform: Any, sr: int) -> str:
            found = model.read(waveform, sr)
            return f"{found.bpm:.1f}\t{found.confidence:.2f}"

    def value_of(path: Path, below: Path | None) -> str:
        return f"{path}\t{read(audio.load(path, sr=model.sample_rate), model.sample_rate)}"

    each_audio(args.audio, value_of, verb=args.verb)


def each_audio(given_paths: list[str], read: Callable[[Path, Path | None], str], *,
               verb: str) -> None:  # fmt: skip
    """``read(file, folder it was found below or None)`` for each audio file of the paths
    given (folders searched recursively), printing what it returns; a file it cannot read
    is named on stderr with the reason and skipped, unless it is the one file given.

    Raises:
        MusicSSLError: no file could be read.
    """
    import sys

    from musicssl.corpus import find_audio

    read_count, skipped = 0, []
    for given_path in map(Path, given_paths):
        below = given_path if given_path.is_dir() else None
        for path in sorted(find_audio(given_path)) if below else [given_path]:
            try:
                if not path.is_file():  # a link to nowhere, a loop, a typo: no file there
                    raise MusicSSLError(f"{path}: no such file or folder")
                line = read(path, below)
            except MusicSSLError as error:
                skipped.append(
                    str(error) if str(error).startswith(str(path)) else f"{path}: {error}"
                )
                if given_paths == [str(path)]:  # the one file asked for: its reason is the error
                    raise MusicSSLError(skipped[-1]) from None
                print(f"musicssl: skipped {skipped[-1]}", file=sys.stderr)
                continue
            print(line, flush=True)
            read_count += 1
    if read_count == 0:
        raise MusicSSLError(
            f"{verb}: no audio could be read ({len(skipped)} files skipped)"
            if skipped
            else f"{verb}: no audio files in {' '.join(given_paths)}"
        )
