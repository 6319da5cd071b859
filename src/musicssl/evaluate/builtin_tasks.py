"""The evaluation tasks of the built-in corpus (``musicssl corpus build``), read from its manifest.

Every task's root is ``corpus_dir/audio`` and its names are paths relative to it
(``"bach-bwv365-00.wav"``). Probe tasks keep the manifest's splits, which are by work: no
piece has clips on both sides of a split.

- ``style``: multiclass over ``style`` (six styles, balanced).
- ``key``: the 24 major and minor keys, spelled as mir_eval spells them.
- ``tempo``: quarter notes per minute (40 to 240 on the small corpus). In compound metres
  (6/8, 9/8) the felt beat is the dotted quarter, two thirds of this value; acc2 forgives it.
- ``instrument``: multilabel over ``instruments``, the General MIDI instrument names. The
  ``families`` field groups them into General MIDI families whose members sound unlike each
  other ("organ" holds church organ, accordion and harmonica; "ensemble" holds choir and
  voice), and a family is a function of the instruments, so the instruments are the finer
  and better posed target. Tags too rare to score in every split are dropped (see
  ``instrument_task``).
- ``pitch``: frame-level f0 of the monophonic clips (one line, one instrument, no drums).
- ``same_piece``: retrieval among test clips of the clips of the same piece (other
  excerpts, ensembles, tempi and transpositions).
- ``degraded_copy``: retrieval of each test clip's original from a copy degraded by
  noise, low-pass, a speed change, gain and a lossy encode (``evaluate.degrade``). The copies
  live beside the audio folder, never in it, so their names are ``../degraded/<clip_id>.ogg``.

Transfer tasks (``style@transfer``, ...; ``transfer`` names them all): the task as above,
probes fitted on the usual train and valid clips, tested on the transfer renders of the test
clips (``corpus_dir/transfer/``, ``builtin.transfer``): the same excerpts played by instrument
families that no usual clip uses. What a score loses there, it owed to timbre. Their names are
``../transfer/audio/<clip_id>.wav``. ``instrument`` has no transfer task (the transfer
instruments are none of the tags it learns) and neither has ``degraded_copy``.
"""

from __future__ import annotations

import dataclasses
import math
import os
from collections import Counter
from collections.abc import Callable, Sequence
from pathlib import Path

from mir_eval.key import validate_key

from musicssl.errors import MusicSSLError
from musicssl.evaluate import degrade
from musicssl.evaluate.corpus_rows import (
    audio_root,
    clip_name,
    f0_track,
    read_rows,
    test_rows,
)
from musicssl.evaluate.task import PROBE_SPLITS, Example, Task

TRANSFER_SUFFIX = "@transfer"
# A tag is scored only with this many positives in every split: fewer make its ROC and PR
# curves on test, and its model choice on valid, mostly noise.
MIN_POSITIVES = 5
# Pitch classes sorted by name, which is also chromatic order from A: the class of a frame
# with MIDI note m is PITCH_CLASSES[(m - 69) % 12].
PITCH_CLASSES = ("A", "A#", "B", "C", "C#", "D", "D#", "E", "F", "F#", "G", "G#")


def style_task(corpus_dir: Path, *, transfer: bool = False) -> Task:
    """Style of the piece, one of six (Bach chorale, string quartet, fiddle tune, ...)."""
    rows, manifest = read_rows(corpus_dir, "style", ("style",), transfer=transfer)
    examples = tuple(
        Example(clip_name(row, manifest), row["split"], str(row["style"])) for row in rows
    )
    classes = _classes(examples)
    return Task(
        name="style",
        kind="multiclass",
        root=audio_root(corpus_dir),
        examples=examples,
        classes=classes,
        description=f"style of the piece ({len(classes)} classes)",
    )


def key_task(corpus_dir: Path, *, transfer: bool = False) -> Task:
    """Key of the excerpt (tonic and mode of the notes played, after transposition)."""
    rows, manifest = read_rows(corpus_dir, "key", ("key",), transfer=transfer)
    for row in rows:
        try:
            validate_key(row["key"])
        except ValueError as error:
            raise MusicSSLError(
                f"{manifest}: clip {row['clip_id']} has key {row['key']!r}, not a key "
                f"mir_eval reads ({error})"
            ) from None
    examples = tuple(Example(clip_name(row, manifest), row["split"], row["key"]) for row in rows)
    classes = _classes(examples)
    return Task(
        name="key",
        kind="key",
        root=audio_root(corpus_dir),
        examples=examples,
        classes=classes,
        description=f"key, tonic and mode ({len(classes)} classes)",
    )


def tempo_task(corpus_dir: Path, *, transfer: bool = False) -> Task:
    """Tempo in quarter notes per minute, whatever the metre."""
    rows, manifest = read_rows(corpus_dir, "tempo", ("tempo",), transfer=transfer)
    for row in rows:
        tempo = row["tempo"]
        if not isinstance(tempo, int | float) or not math.isfinite(tempo) or tempo <= 0:
            raise MusicSSLError(f"{manifest}: clip {row['clip_id']} has tempo {tempo!r}")
    examples = tuple(
        Example(clip_name(row, manifest), row["split"], float(row["tempo"])) for row in rows
    )
    tempi = [example.target for example in examples]
    return Task(
        name="tempo",
        kind="tempo",
        root=audio_root(corpus_dir),
        examples=examples,
        description=f"tempo in quarter notes per minute ({min(tempi):g} to {max(tempi):g})",
        extra={"unit": "quarter notes per minute"},
    )


def instrument_task(
    corpus_dir: Path, *, field: str = "instruments", min_positives: int = MIN_POSITIVES
) -> Task:
    """Which instruments play: multilabel over the tags of ``field``.

    A tag is kept when every split has at least ``min_positives`` clips with it and one
    without it. For corpora with small splits (the tiny corpus has 12 clips a split) the
    bar is lowered to one positive per 10 clips of the smallest split, at least one, so the
    task still builds; ``extra["min_positives"]`` says which bar was used and
    ``extra["dropped"]`` lists the dropped tags with their counts per split.

    Args:
        corpus_dir: the corpus folder.
        field: manifest field of tag lists, ``"instruments"`` or ``"families"``.
        min_positives: positives every split needs for a tag to be kept.
    """
    rows, manifest = read_rows(corpus_dir, "instrument", (field,))
    for row in rows:
        if not isinstance(row[field], list):
            raise MusicSSLError(f"{manifest}: clip {row['clip_id']}: {field!r} is not a list")
    split_sizes = Counter(row["split"] for row in rows)
    needed = min(min_positives, max(1, min(split_sizes.values()) // 10))
    positives: dict[str, Counter[str]] = {}
    for row in rows:
        for tag in set(row[field]):
            positives.setdefault(str(tag), Counter())[row["split"]] += 1
    kept = tuple(
        sorted(
            tag
            for tag, counts in positives.items()
            if all(needed <= counts[split] < split_sizes[split] for split in PROBE_SPLITS)
        )
    )
    dropped = {
        tag: {split: counts[split] for split in PROBE_SPLITS}
        for tag, counts in sorted(positives.items())
        if tag not in kept
    }
    if not kept:
        raise MusicSSLError(
            f"{manifest}: no {field} tag has {needed} or more clips in every split; "
            "the instrument task needs at least one"
        )
    examples = tuple(
        Example(
            clip_name(row, manifest),
            row["split"],
            tuple(sorted({str(tag) for tag in row[field]} & set(kept))),
        )
        for row in rows
    )
    description = f"{field} present ({len(kept)} tags with >= {needed} clips in every split"
    if dropped:
        shown = list(dropped)[:8] + (["..."] if len(dropped) > 8 else [])
        description += f"; dropped {', '.join(shown)}"
    description += ")"
    return Task(
        name="instrument",
        kind="multilabel",
        root=audio_root(corpus_dir),
        examples=examples,
        classes=kept,
        description=description,
        extra={"field": field, "min_positives": needed, "dropped": dropped},
    )


def pitch_task(corpus_dir: Path, *, transfer: bool = False) -> Task:
    """Frame-level f0 of the monophonic clips; the target is the clip's f0 track in Hz.

    ``classes`` are the 12 pitch classes (see ``PITCH_CLASSES``) a voiced frame falls in.
    """
    rows, manifest = read_rows(corpus_dir, "pitch", ("monophonic",), transfer=transfer)
    rows = [row for row in rows if row["monophonic"]]
    if missing := [split for split in PROBE_SPLITS if all(r["split"] != split for r in rows)]:
        raise MusicSSLError(
            f"{manifest}: the pitch task needs monophonic clips in every split; "
            f"split(s) {', '.join(missing)} have none"
        )
    hops = set()
    examples = []
    for row in rows:
        if row.get("f0") is None or row.get("f0_hop") is None:
            raise MusicSSLError(
                f"{manifest}: monophonic clip {row['clip_id']} has no 'f0' and 'f0_hop'"
            )
        hops.add(float(row["f0_hop"]))
        examples.append(Example(clip_name(row, manifest), row["split"], f0_track(corpus_dir, row)))
    if len(hops) != 1:
        raise MusicSSLError(f"{manifest}: f0 tracks have different hops {sorted(hops)}")
    return Task(
        name="pitch",
        kind="pitch",
        root=audio_root(corpus_dir),
        examples=tuple(examples),
        classes=PITCH_CLASSES,
        description="frame-level pitch of monophonic clips (pitch class at each voiced f0 value)",
        f0_hop=hops.pop(),
    )


def same_piece_task(corpus_dir: Path, *, transfer: bool = False) -> Task:
    """Retrieve, among the test clips, the other clips of the same piece.

    Every test clip is in the gallery; a clip is also a query when its piece has another
    test clip (a query's own name never counts as relevant).
    """
    rows, manifest = read_rows(corpus_dir, "same_piece", ("piece_id",), transfer=transfer)
    test = test_rows(rows, manifest, "same_piece")
    clips_per_piece = Counter(row["piece_id"] for row in test)
    queries = [
        Example(clip_name(row, manifest), "query", str(row["piece_id"]))
        for row in test
        if clips_per_piece[row["piece_id"]] > 1
    ]
    if not queries:
        raise MusicSSLError(f"{manifest}: no piece has two test clips; same_piece needs one")
    gallery = [Example(clip_name(row, manifest), "gallery", str(row["piece_id"])) for row in test]
    return Task(
        name="same_piece",
        kind="retrieval",
        root=audio_root(corpus_dir),
        examples=(*queries, *gallery),
        description=(
            f"find other excerpts of the same piece among {len(gallery)} test clips "
            f"({len(clips_per_piece)} pieces)"
        ),
    )


def degraded_copy_task(
    corpus_dir: Path, *, seed: int = 0, progress: bool = True, cache: Path | None = None
) -> Task:
    """Retrieve each test clip's original from its degraded copy.

    Building this task writes the degraded copies (``degrade.degrade_corpus``) into
    ``corpus_dir/degraded/``, beside the audio folder, unless they are there already (about
    20 s for 324 clips); a corpus that cannot be written to gets them in ``cache``. Their
    names, relative to the audio folder, are ``../degraded/<clip_id>.ogg``.

    Args:
        corpus_dir: the corpus folder.
        seed: seed of the degradations.
        progress: show a progress bar while degrading.
        cache: where the copies go when the corpus cannot be written to.
    """
    rows, manifest = read_rows(corpus_dir, "degraded_copy", ())
    test = test_rows(rows, manifest, "degraded_copy")
    folder = degrade.copies_folder(corpus_dir, cache=cache)
    copies = degrade.degrade_corpus(corpus_dir, out=folder, seed=seed, progress=progress)
    queries = [
        Example(copy, "query", str(row["clip_id"])) for row, copy in zip(test, copies, strict=True)
    ]
    gallery = [Example(clip_name(row, manifest), "gallery", str(row["clip_id"])) for row in test]
    return Task(
        name="degraded_copy",
        kind="retrieval",
        root=audio_root(corpus_dir),
        examples=(*queries, *gallery),
        description=(
            f"find the original of a degraded copy (noise, low-pass, speed, gain, lossy "
            f"encode) among {len(gallery)} test clips"
        ),
        # the log, named like the copies: relative to the task's root
        extra={
            "degradations": os.path.relpath(folder / degrade.LOG, audio_root(corpus_dir)),
            "seed": seed,
        },
    )


TASKS: dict[str, Callable[[Path], Task]] = {
    "style": style_task,
    "key": key_task,
    "tempo": tempo_task,
    "instrument": instrument_task,
    "pitch": pitch_task,
    "same_piece": same_piece_task,
    "degraded_copy": degraded_copy_task,
}


TRANSFER_TASKS: dict[str, Callable[..., Task]] = {
    name: TASKS[name] for name in ("style", "key", "tempo", "pitch", "same_piece")
}


def transfer_task(name: str, corpus_dir: Path) -> Task:
    """The built-in task ``name`` (a key of ``TRANSFER_TASKS``) tested on the transfer renders.

    Its name is ``name + "@transfer"``; train and valid are the usual clips', test (or the
    retrieval queries and gallery) the transfer renders of the test clips.

    Raises:
        MusicSSLError: an unknown name, or a corpus without transfer renders.
    """
    if name not in TRANSFER_TASKS:
        raise MusicSSLError(
            f"no transfer task {name + TRANSFER_SUFFIX!r}; choose from "
            f"{', '.join(n + TRANSFER_SUFFIX for n in TRANSFER_TASKS)}"
        )
    task = TRANSFER_TASKS[name](Path(corpus_dir), transfer=True)
    return dataclasses.replace(
        task,
        name=name + TRANSFER_SUFFIX,
        description=f"{task.description}; tested on other instruments (transfer renders)",
    )


def builtin_tasks(
    corpus_dir: str | Path,
    names: Sequence[str] | None = None,
    *,
    cache: Path | None = None,
    progress: bool = True,
) -> list[Task]:
    """Build the tasks of a built-in corpus.

    Args:
        corpus_dir: folder of ``manifest.jsonl`` and ``audio/``.
        names: keys of ``TASKS`` to build, in this order; ``None`` for all of them.
        cache: where ``degraded_copy`` writes its copies if the corpus is read-only.
        progress: show a progress bar while ``degraded_copy`` makes its copies.

    Raises:
        MusicSSLError: an unknown task name, or a corpus that lacks what a task needs.
    """
    names = list(TASKS) if names is None else list(names)
    if unknown := [name for name in names if name not in TASKS]:
        raise MusicSSLError(f"unknown built-in task(s) {unknown}; choose from {list(TASKS)}")
    return [builtin_task(n, Path(corpus_dir), cache=cache, progress=progress) for n in names]


def builtin_task(
    name: str, corpus_dir: Path, *, cache: Path | None = None, progress: bool = True
) -> Task:
    """The built-in task ``name`` (a key of ``TASKS``); see ``builtin_tasks``."""
    if name == "degraded_copy":
        return degraded_copy_task(corpus_dir, cache=cache, progress=progress)
    return TASKS[name](corpus_dir)


def _classes(examples: Sequence[Example]) -> tuple[str, ...]:
    return tuple(sorted({example.target for example in examples}))
