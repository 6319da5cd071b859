"""Build the built-in labelled corpus: choose pieces, render clips in parallel, write a manifest.

Layout of a built corpus folder::

    manifest.jsonl          one JSON object per clip (written last, whole, atomically)
    audio/<clip_id>.wav     16 kHz mono PCM_16, 10 s
    f0/<clip_id>.npy        float32 f0 in Hz per 10 ms frame (monophonic clips only)
    transfer/               the test clips played by instruments of other families
                            (``builtin.transfer``): manifest.jsonl, audio/, f0/ as above,
                            same clip ids, every row in split "test"
    .cache/build.json       size, seed and format of the build in this folder
    .cache/pieces-v1/*.json parsed scores as note tables (only data written here; the
                            number is PIECES_VERSION, so a new format never reads an old one)
    .cache/clips/*.json     the label record of each finished clip (lets a killed build resume)
    transfer/.cache/clips/  the same for the transfer renders

Every size builds the transfer renders: they are 15% of the clips (the test split) and cost
twice a usual clip's rendering (the usual performance is rendered to accept the excerpt, then
the transfer one), so a third more rendering time, and an evaluation of any build can report
what its scores owe to timbre.

A build of the same size and seed in a complete folder returns at once; in a folder where a
build was killed it renders only the clips that are missing.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import signal
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from musicssl import audio
from musicssl.builtin import candidates as candidates_module
from musicssl.builtin import pieces as pieces_module
from musicssl.builtin import transfer
from musicssl.builtin.build_folder import (
    MANIFEST,
    build_summary,
    check_ours,
    discard_stale,
    finished_record,
    is_complete,
    summarize,
    write_json,
)
from musicssl.builtin.candidates import SPLITS, Candidate
from musicssl.builtin.clips import make_clip
from musicssl.builtin.labels import F0_HOP
from musicssl.builtin.pieces import Piece
from musicssl.builtin.render import Synth, check_renderer
from musicssl.builtin.styles import STYLES
from musicssl.errors import MusicSSLError
from musicssl.files import atomic_path, file_hash, write_text
from musicssl.progress import bar as progress_bar

SAMPLE_RATE = 16000
CLIP_SECONDS = 10.0
FORMAT_VERSION = 2  # 2: the usual clips use CORPUS_FAMILIES only; transfer renders
PIECES_VERSION = 1


@dataclass(frozen=True)
class SizeSpec:
    """How big a build is.

    Attributes:
        per_style: for every style, ``(pieces, clips_per_piece)``. Pieces are split 70/15/15
            by work, with at least one piece in each split.
        max_source_bytes: skip score files larger than this (keeps tiny builds fast).
    """

    per_style: dict[str, tuple[int, int]]
    max_source_bytes: int | None = None

    def __post_init__(self) -> None:
        if set(self.per_style) != set(STYLES):
            raise MusicSSLError(f"per_style={sorted(self.per_style)}: need exactly {list(STYLES)}")
        for style, (pieces, clips) in self.per_style.items():
            if pieces < 1 or clips < 1:
                raise MusicSSLError(f"per_style[{style!r}]=({pieces}, {clips}): must be >= 1")


SIZES: dict[str, SizeSpec] = {
    # 6 styles x 3 pieces (one per split) x 2 clips = 36 clips, 9 of them monophonic.
    "tiny": SizeSpec(per_style={style: (3, 2) for style in STYLES}, max_source_bytes=40_000),
    # 2,160 clips, 360 per style.
    "small": SizeSpec(
        per_style={
            "bach_chorale": (60, 6),
            "palestrina_mass": (60, 6),
            "monteverdi_madrigal": (40, 9),
            "string_quartet": (40, 9),
            "fiddle_tune": (120, 3),
            "german_folk_song": (120, 3),
        }
    ),
    # Up to 12,450 clips: every madrigal and quartet movement of the corpus, most chorales.
    "full": SizeSpec(
        per_style={
            "bach_chorale": (360, 6),
            "palestrina_mass": (300, 7),
            "monteverdi_madrigal": (48, 40),
            "string_quartet": (46, 45),
            "fiddle_tune": (700, 3),
            "german_folk_song": (700, 3),
        }
    ),
}


# --- worker side -------------------------------------------------------------------------

_SYNTH: Synth | None = None


def _synth() -> Synth:
    global _SYNTH
    if _SYNTH is None:
        _SYNTH = Synth(SAMPLE_RATE)
    return _SYNTH


def _parse_task(args: tuple[Candidate, str]) -> tuple[str, Piece | str]:
    """Parse one candidate (or read it from the cache): its piece, or why it is skipped."""
    candidate, cache_dir = args
    cache_file = Path(cache_dir) / f"{candidate.piece_id}.json"
    if cache_file.exists():
        cached = json.loads(cache_file.read_text(encoding="utf-8"))
        if "piece" in cached:
            return candidate.piece_id, Piece.from_json(cached["piece"])
        return candidate.piece_id, cached["skip"]
    result = pieces_module.load_piece(candidate)
    if isinstance(result, Piece):
        reason = pieces_module.usable(result, CLIP_SECONDS)
        if reason is None:
            write_json(cache_file, {"piece": result.to_json()})
            return candidate.piece_id, result
        result = reason
    write_json(cache_file, {"skip": result})
    return candidate.piece_id, result


def _clip_task(args: tuple[Piece, str, int, str, int, str, bool]) -> tuple[str, dict | None]:
    """Render one clip (or its transfer render, into ``out_dir``), write it, return its record."""
    piece, split, index, clip_id, seed, out_dir, transferred = args
    out = Path(out_dir)
    clip = make_clip(
        piece,
        index,
        clip_id=clip_id,
        seed=seed,
        synth=_synth(),
        clip_seconds=CLIP_SECONDS,
        recast=transfer.recast if transferred else None,
    )
    record_file = out / ".cache" / "clips" / f"{clip_id}.json"
    if clip is None:
        write_json(record_file, {"skipped": True})
        return _task_key(args), None
    wav = out / "audio" / f"{clip_id}.wav"
    audio.save(wav, clip.audio, sr=SAMPLE_RATE, subtype="PCM_16")
    f0_path = None
    if clip.f0 is not None:
        with atomic_path(out / "f0" / f"{clip_id}.npy") as temporary:
            np.save(temporary, clip.f0, allow_pickle=False)
        f0_path = f"f0/{clip_id}.npy"
    record = {
        "clip_id": clip_id,
        "path": f"audio/{clip_id}.wav",
        "duration": round(len(clip.audio) / SAMPLE_RATE, 6),
        "sr": SAMPLE_RATE,
        "channels": 1,
        "sha256": file_hash(wav),
        "split": split,
        **clip.labels,
        "f0": f0_path,
        "f0_hop": F0_HOP if f0_path else None,
    }
    write_json(record_file, record)
    return _task_key(args), record


def _task_key(task: tuple[Piece, str, int, str, int, str, bool]) -> str:
    """A clip task's name: its clip id, under ``transfer/`` for a transfer render."""
    return f"{transfer.FOLDER}/{task[3]}" if task[6] else task[3]


# --- orchestration -----------------------------------------------------------------------


def _ignore_interrupts() -> None:
    """In a worker: Ctrl-C is the parent's to handle (it stops the pool), so a worker never
    prints a traceback of its own."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)


class _Runner:
    """Runs tasks in-process (one worker) or in a pool of spawned processes."""

    def __init__(self, workers: int) -> None:
        self.pool = None
        if workers > 1:
            # spawn, not fork: the parent may hold torch's threads, and forking a threaded
            # process can deadlock the child. (So a script calling build_corpus with
            # workers > 1 needs the usual `if __name__ == "__main__":` guard.)
            context = multiprocessing.get_context("spawn")
            self.pool = context.Pool(workers, initializer=_ignore_interrupts)

    def map(self, function, tasks: list):
        if self.pool is None:
            return map(function, tasks)
        return self.pool.imap_unordered(function, tasks)

    def close(self, *, failed: bool) -> None:
        if self.pool is not None:
            if failed:
                # Interrupted or broken: stop the workers now; finished clips stay on disk.
                self.pool.terminate()
            else:
                self.pool.close()
            self.pool.join()


def _choose_pieces(
    spec: SizeSpec, seed: int, cache_dir: Path, runner: _Runner, progress: bool
) -> list[tuple[Piece, str]]:
    """Pick the pieces of every style and split, in a fixed order.

    Candidates of each (style, split) are shuffled by the seed and taken in that order,
    skipping unusable ones; parsing goes in rounds so only about as many scores are parsed as
    are needed. The outcome depends on the seed only, not on the workers.
    """
    queues: dict[tuple[str, str], list[Candidate]] = {}
    wanted: dict[tuple[str, str], int] = {}
    for style_number, style in enumerate(STYLES):
        candidates = candidates_module.list_candidates(style)
        if spec.max_source_bytes is not None:
            candidates = [c for c in candidates if c.size_bytes <= spec.max_source_bytes]
        splits = candidates_module.assign_splits(candidates)
        total = spec.per_style[style][0]
        counts = [round(total * 0.15), round(total * 0.15)]
        counts = [max(1, c) for c in counts]
        counts.insert(0, max(1, total - sum(counts)))
        for split_number, (split, count) in enumerate(zip(SPLITS, counts, strict=True)):
            queue = [c for c in candidates if splits[c.work] == split]
            rng = np.random.default_rng([seed, style_number, split_number])
            queues[(style, split)] = [queue[i] for i in rng.permutation(len(queue))]
            wanted[(style, split)] = count
    accepted: dict[tuple[str, str], list[Piece]] = {key: [] for key in queues}
    position = dict.fromkeys(queues, 0)
    # Counts scores as each is parsed (a round of them takes a minute or more), kept or not.
    bar = progress_bar(total=0, desc="parsing scores", unit="score", disable=not progress)
    while True:
        batch: list[Candidate] = []
        for key, queue in queues.items():
            missing = wanted[key] - len(accepted[key])
            if missing <= 0:
                continue
            take = queue[position[key] : position[key] + missing + missing // 10]
            batch.extend(take)
        if not batch:
            break
        bar.total += len(batch)
        outcomes = {}
        for piece_id, outcome in runner.map(_parse_task, [(c, str(cache_dir)) for c in batch]):
            outcomes[piece_id] = outcome
            bar.update(1)
        for key, queue in queues.items():
            # Walk the queue in order: acceptance depends on the order, never on timing.
            while position[key] < len(queue) and len(accepted[key]) < wanted[key]:
                candidate = queue[position[key]]
                if candidate.piece_id not in outcomes:
                    break
                outcome = outcomes[candidate.piece_id]
                position[key] += 1
                if isinstance(outcome, Piece):
                    accepted[key].append(outcome)
            if position[key] >= len(queue):
                wanted[key] = len(accepted[key])  # the corpus has no more
        kept = sum(len(found) for found in accepted.values())
        bar.set_postfix(pieces=f"{kept}/{sum(wanted.values())}")
    bar.close()
    return [(piece, split) for (_, split), found in accepted.items() for piece in found]


def _clip_tasks(
    chosen: list[tuple[Piece, str]], spec: SizeSpec, seed: int, out: Path
) -> list[tuple[Piece, str, int, str, int, str, bool]]:
    """Every clip to render: each chosen piece's excerpts, then the test clips' transfer
    renders. A task is (piece, split, excerpt index, clip id, seed, folder, transfer)."""
    tasks = []
    for piece, split in chosen:
        for index in range(spec.per_style[piece.candidate.style][1]):
            clip_id = f"{piece.candidate.piece_id}-{index:02d}"
            tasks.append((piece, split, index, clip_id, seed, str(out), False))
    transfer_out = str(out / transfer.FOLDER)
    return tasks + [(*task[:5], transfer_out, True) for task in tasks if task[1] == "test"]


def _render(
    tasks: list[tuple[Piece, str, int, str, int, str, bool]], runner: _Runner, progress: bool
) -> dict[str, dict | None]:
    """Each task's manifest record (None: skipped), keyed by ``_task_key``; clips a killed
    build finished are read back, not rendered again."""
    records: dict[str, dict | None] = {}
    todo = []
    for task in tasks:
        done = finished_record(Path(task[5]), task[3])
        if done is None:
            todo.append(task)
        else:
            records[_task_key(task)] = None if done.get("skipped") else done
    bar = progress_bar(
        total=len(tasks),
        initial=len(records),
        desc="rendering clips",
        unit="clip",
        disable=not progress,
    )
    for clip_id, record in runner.map(_clip_task, todo):
        records[clip_id] = record
        bar.update(1)
    bar.close()
    return records


def build_corpus(
    out_dir: str | Path,
    *,
    size: str = "small",
    seed: int = 0,
    workers: int | None = None,
    progress: bool = True,
) -> dict:
    """Generate the built-in labelled corpus into ``out_dir``.

    Excerpts of scores from music21's corpus are performed with a random General MIDI
    ensemble, tempo, transposition, dynamics and optional drums, rendered with the
    TimGM6mb SoundFont (midirenderer) and downmixed to 16 kHz mono, and labelled (see the
    module docstring for the folder layout and ``docs`` for the manifest fields). The same
    size and seed give byte-identical files whatever ``workers`` is.

    Args:
        out_dir: folder to build into (created if missing).
        size: a key of :data:`SIZES`: ``"tiny"`` (36 clips), ``"small"`` (2,160) or
            ``"full"`` (up to 12,450: a style takes fewer pieces where its scores run out).
        seed: seed of every random choice.
        workers: processes to use; ``None`` for ``os.cpu_count()``. With more than one, the
            workers are spawned, so a calling script needs ``if __name__ == "__main__":``.
        progress: show progress bars.

    Returns:
        A summary: ``num_clips``, clips per ``splits`` and ``styles``, ``monophonic``,
        ``total_seconds`` of audio, ``seconds_taken`` and ``cached`` (nothing to do); after
        real work also ``seconds_parsing`` (choosing and parsing scores) and
        ``seconds_rendering`` (rendering, labelling and writing clips).

    Raises:
        MusicSSLError: unknown size, bad workers, a folder built with other settings, or
            the renderer missing.
    """
    started = time.perf_counter()
    if size not in SIZES:
        raise MusicSSLError(f"size={size!r}: unknown corpus size; choose one of {list(SIZES)}")
    if workers is None:
        workers = os.cpu_count() or 1
    if workers < 1:
        raise MusicSSLError(f"workers={workers}: must be at least 1")
    out = Path(out_dir)
    stamp = {"size": size, "seed": int(seed), "format": FORMAT_VERSION}
    if out.exists() and is_complete(out, stamp):
        return summarize(out / MANIFEST) | {
            "seconds_taken": round(time.perf_counter() - started, 3)
        }
    check_ours(out)
    check_renderer()
    pieces_cache = out / ".cache" / f"pieces-v{PIECES_VERSION}"
    for sub in ("audio", "f0", ".cache/clips"):
        (out / sub).mkdir(parents=True, exist_ok=True)
        (out / transfer.FOLDER / sub).mkdir(parents=True, exist_ok=True)
    pieces_cache.mkdir(parents=True, exist_ok=True)
    discard_stale(out, stamp)
    spec = SIZES[size]
    runner = _Runner(workers)
    failed = True
    try:
        chosen = _choose_pieces(spec, seed, pieces_cache, runner, progress)
        parsed = time.perf_counter()
        tasks = _clip_tasks(chosen, spec, int(seed), out)
        records = _render(tasks, runner, progress)
        failed = False
    finally:
        runner.close(failed=failed)
    usual, transferred = [
        [r for task in tasks if task[6] == side and (r := records.get(_task_key(task)))]
        for side in (False, True)
    ]
    # The usual manifest last: its presence says the whole build is there.
    write_text(out / transfer.FOLDER / MANIFEST, "".join(json.dumps(r) + "\n" for r in transferred))
    write_text(out / MANIFEST, "".join(json.dumps(record) + "\n" for record in usual))
    finished = time.perf_counter()
    summary = build_summary(usual, out, finished - started, cached=False)
    summary["seconds_parsing"] = round(parsed - started, 3)
    summary["seconds_rendering"] = round(finished - parsed, 3)
    return summary
