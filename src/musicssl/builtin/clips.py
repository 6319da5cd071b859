"""One clip: draw its performance from a seeded generator, render it, and label it.

Everything random about a clip (excerpt, tempo, transposition, instruments, dynamics, drums)
comes from a generator seeded by the build seed and the clip's id alone, so a clip is the
same whichever worker renders it and in whatever order.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from musicssl.builtin import drums, instruments, labels
from musicssl.builtin.pieces import Piece, excerpt_starts, tempo_range
from musicssl.builtin.render import (
    CUT,
    DRUM_CHANNEL,
    NOTE_OFF,
    NOTE_ON,
    Event,
    Synth,
    normalise,
    silent_fraction,
    snap,
)
from musicssl.builtin.styles import STYLES
from musicssl.files import clip_rng

MELODIC_CHANNELS = tuple(c for c in range(16) if c != DRUM_CHANNEL)
TRANSPOSE_RANGE = (-5, 6)  # semitones, inclusive: every key is reachable
MAX_ATTEMPTS = 6  # excerpts tried before a clip is given up as silent
MAX_SILENT_FRACTION = 0.3
DRUM_NOTE_SECONDS = 0.1


@dataclass
class Voice:
    """One rendered line: a score part on a channel with an instrument."""

    part: int
    program: int
    channel: int
    shift: int = 0  # extra semitones (octave doubling) on top of the transposition
    gain: float = 1.0


@dataclass
class Performance:
    """The random choices of one clip (see :func:`draw_performance`)."""

    start: float
    end: float
    tempo: int
    transpose: int
    voices: list[Voice]
    velocity: float
    monophonic: bool
    solo_voice: str | None = None
    drum_kit: int | None = None
    drum_variant: int = 0
    parts: list[int] = field(default_factory=list)


def _part_notes(piece: Piece, part: int, start: float, end: float) -> np.ndarray:
    notes = piece.notes
    mask = (notes[:, 0] == part) & (notes[:, 1] >= start) & (notes[:, 1] < end)
    return notes[mask]


def monophonic_line(notes: np.ndarray) -> np.ndarray:
    """Reduce a part to one note at a time: the top note of chords, cut at the next onset.

    Args:
        notes: note table rows of one part, sorted by onset. Shape: (num_notes, 4).

    Returns:
        Note table rows. Shape: (num_kept, 4).
    """
    if len(notes) == 0:
        return notes
    onsets = np.unique(notes[:, 1])
    line = []
    for onset in onsets:
        chord = notes[notes[:, 1] == onset]
        line.append(chord[np.argmax(chord[:, 3])].copy())
    line_array = np.array(line)
    following = np.append(line_array[1:, 1], np.inf)
    line_array[:, 2] = np.minimum(line_array[:, 2], following - line_array[:, 1])
    return line_array


def draw_performance(
    piece: Piece, index: int, rng: np.random.Generator, clip_seconds: float
) -> Performance | None:
    """Draw the excerpt and its performance.

    Args:
        piece: the parsed piece.
        index: the clip's number within its piece (folk tunes: even numbers are played solo).
        rng: the clip's generator.
        clip_seconds: clip length.

    Returns:
        The performance, or ``None`` if the drawn excerpt has no notes.
    """
    style = STYLES[piece.candidate.style]
    low, high = tempo_range(piece)
    tempo = int(rng.integers(low, high + 1))
    # Rounded once, so the excerpt bounds written to the manifest are the ones used.
    length = round(clip_seconds * tempo / 60.0, 6)
    start = float(rng.choice(excerpt_starts(piece, length)))
    end = round(start + length, 6)
    transpose = int(rng.integers(TRANSPOSE_RANGE[0], TRANSPOSE_RANGE[1] + 1))
    active = [p for p in range(len(piece.part_names)) if len(_part_notes(piece, p, start, end))]
    if not active:
        return None

    def part_range(part: int) -> tuple[int, int]:
        pitches = _part_notes(piece, part, start, end)[:, 3] + transpose
        return int(pitches.min()), int(pitches.max())

    velocity = round(float(rng.uniform(0.45, 0.95)), 3)
    voices, monophonic, solo_voice = _draw_voices(piece, index, active, part_range, rng)
    drum_kit = None
    drum_variant = 0
    if not monophonic and rng.random() < style.drum_probability:
        drum_kit = int(rng.choice(list(instruments.DRUM_KITS)))
        drum_variant = int(rng.integers(0, 3))
    return Performance(
        start=start,
        end=end,
        tempo=tempo,
        transpose=transpose,
        voices=voices,
        velocity=velocity,
        monophonic=monophonic,
        solo_voice=solo_voice,
        drum_kit=drum_kit,
        drum_variant=drum_variant,
        parts=sorted({voice.part for voice in voices}),
    )


def _draw_voices(
    piece: Piece,
    index: int,
    active: list[int],
    part_range: Callable[[int], tuple[int, int]],
    rng: np.random.Generator,
) -> tuple[list[Voice], bool, str | None]:
    """Who plays the excerpt: a solo, a folk tune and its doubling, or an ensemble over every
    sounding part. Returns (voices, monophonic, the solo part's name if a non-folk solo)."""
    style = STYLES[piece.candidate.style]
    solo_voice = None
    if style.folk:
        monophonic = index % 2 == 0
    else:
        monophonic = bool(rng.random() < 0.15)
    if monophonic:
        part = active[0] if style.folk else int(rng.choice(active))
        if not style.folk:
            solo_voice = piece.part_names[part].lower() or f"part {part + 1}"
        program = instruments.choose_program(
            instruments.TUNED_SOLO_PROGRAMS, *part_range(part), rng
        )
        voices = [Voice(part, program, MELODIC_CHANNELS[0])]
    elif style.folk:
        pool = instruments.ENSEMBLES["folk"]
        lowest, highest = part_range(active[0])
        program = instruments.choose_program(pool, lowest, highest, rng)
        voices = [Voice(active[0], program, MELODIC_CHANNELS[0])]
        # A second instrument doubles the tune, in unison or an octave below.
        shift = -12 if rng.random() < 0.5 else 0
        others = tuple(p for p in pool if p != program)
        second = instruments.choose_program(others, lowest + shift, highest + shift, rng)
        voices.append(Voice(active[0], second, MELODIC_CHANNELS[1], shift, 0.8))
    else:
        ensemble = str(rng.choice(style.ensembles))
        pool = instruments.ENSEMBLES[ensemble]
        if ensemble in instruments.SHARED_ENSEMBLES:
            pool = (int(rng.choice(pool)),)
        voices = []
        for number, part in enumerate(active):
            program = instruments.choose_program(pool, *part_range(part), rng)
            gain = float(rng.uniform(0.85, 1.0))
            channel = MELODIC_CHANNELS[number % len(MELODIC_CHANNELS)]
            voices.append(Voice(part, program, channel, 0, gain))
    return voices, monophonic, solo_voice


def _bar_lines(piece: Piece) -> np.ndarray:
    return piece.measures[:, 1]


def performance_events(
    piece: Piece, plan: Performance, rng: np.random.Generator, sr: int, *, grid: int = 1
) -> tuple[list[Event], list[tuple[float, float, int]]]:
    """Note events of a performance, and the sounding notes of its first voice.

    Args:
        piece: the parsed piece.
        plan: the performance.
        rng: the clip's generator (velocity jitter).
        sr: sample rate in Hz.
        grid: events fall on multiples of this many samples (the synthesizer's grid).

    Returns:
        The events, and (onset s, note-off s, MIDI pitch) of the first voice's notes, as
        rendered (rounded to the grid).
    """
    seconds_per_quarter = 60.0 / plan.tempo

    def sample(offset: float) -> int:
        # A score offset (quarter notes) -> the nearest grid sample from the excerpt start.
        return snap((offset - plan.start) * seconds_per_quarter * sr, grid)

    bar_lines = _bar_lines(piece)
    events: list[Event] = []
    first_voice: list[tuple[float, float, int]] = []
    for number, voice in enumerate(plan.voices):
        notes = _part_notes(piece, voice.part, plan.start, plan.end)
        if plan.monophonic:
            notes = monophonic_line(notes)
        jitter = rng.normal(0.0, 0.04, size=len(notes))
        for (_, onset, duration, pitch), noise in zip(notes, jitter, strict=True):
            key = int(pitch) + plan.transpose + voice.shift
            on = sample(onset)
            off = max(sample(onset + duration), on + grid)
            accent = 1.1 if np.any(np.abs(bar_lines - onset) < 1e-6) else 1.0
            velocity = float(np.clip(plan.velocity * voice.gain * accent + noise, 0.1, 1.0))
            if plan.monophonic and on > 0:
                # One note at a time, as on a real solo instrument: the release of the last
                # note is cut, so the audio holds the single pitch the f0 label gives.
                events.append(Event(on, CUT, voice.channel, 0))
            events.append(Event(on, NOTE_ON, voice.channel, key, velocity))
            events.append(Event(off, NOTE_OFF, voice.channel, key))
            if number == 0:
                first_voice.append((on / sr, off / sr, key))
    if plan.drum_kit is not None:
        drum_length = max(grid, snap(DRUM_NOTE_SECONDS * sr, grid))
        hits = drums.drum_hits(piece.measures, plan.start, plan.end, plan.drum_variant)
        for offset, key, accent in hits:
            on = sample(offset)
            velocity = float(np.clip(plan.velocity * accent * rng.uniform(0.9, 1.05), 0.1, 1.0))
            events.append(Event(on, NOTE_ON, DRUM_CHANNEL, key, velocity))
            events.append(Event(on + drum_length, NOTE_OFF, DRUM_CHANNEL, key))
    return events, first_voice


def metre_at(piece: Piece, offset: float) -> str:
    """The time signature in force at ``offset``, e.g. ``"6/8"``."""
    row = piece.measures[np.searchsorted(piece.measures[:, 0], offset + 1e-9) - 1]
    return f"{int(row[2])}/{int(row[3])}"


@dataclass
class Clip:
    """A rendered clip: audio, optional f0 track, and its labels."""

    audio: np.ndarray  # float32, normalised. Shape: (num_samples,).
    f0: np.ndarray | None  # Hz per 10 ms frame. Shape: (num_frames,).
    labels: dict


def make_clip(
    piece: Piece,
    index: int,
    *,
    clip_id: str,
    seed: int,
    synth: Synth,
    clip_seconds: float,
    recast: Callable[[Piece, Performance, np.random.Generator], Performance] | None = None,
) -> Clip | None:
    """Draw, render and label one clip of a piece.

    Excerpts that render (mostly) silent are redrawn, up to a few times.

    Args:
        piece: the parsed piece.
        index: the clip's number within its piece.
        clip_id: the clip's id (seeds its generator).
        seed: the build seed.
        synth: the synthesizer (its sample rate is the clip's).
        clip_seconds: clip length.
        recast: for a transfer render (``builtin.transfer.recast``): gives the accepted
            performance its new instruments, from the generator of ``clip_id + "/transfer"``.

    Returns:
        The clip, or ``None`` if every excerpt tried was silent.
    """
    rng = clip_rng(seed, clip_id)
    num_samples = int(round(clip_seconds * synth.sr))
    for _ in range(MAX_ATTEMPTS):
        plan = draw_performance(piece, index, rng, clip_seconds)
        if plan is None:
            continue
        events, first_voice = performance_events(piece, plan, rng, synth.sr, grid=synth.grid)
        programs = {voice.channel: voice.program for voice in plan.voices}
        audio = synth.render(events, programs, num_samples, drum_kit=plan.drum_kit)
        if silent_fraction(audio, synth.sr) > MAX_SILENT_FRACTION:
            continue
        if recast is not None:
            # Accepted as the usual clip is, then played again on other instruments.
            plan = recast(piece, plan, clip_rng(seed, f"{clip_id}/transfer"))
            programs = {voice.channel: voice.program for voice in plan.voices}
            audio = synth.render(events, programs, num_samples, drum_kit=plan.drum_kit)
        record, f0 = _labels(piece, plan, first_voice, clip_seconds, seed=seed, clip_id=clip_id)
        return Clip(normalise(audio, synth.sr), f0, record)
    return None


def _labels(
    piece: Piece,
    plan: Performance,
    first_voice: list[tuple[float, float, int]],
    clip_seconds: float,
    *,
    seed: int,
    clip_id: str,
) -> tuple[dict, np.ndarray | None]:
    """A rendered performance's manifest record and, for a solo line, its f0 track."""
    style = STYLES[piece.candidate.style]
    # The key is music21's analysis of exactly the notes played (a solo plays the top
    # note of chords), after transposition.
    rendered = np.concatenate(
        [_part_notes(piece, part, plan.start, plan.end) for part in plan.parts]
    )
    if plan.monophonic:
        rendered = monophonic_line(rendered)
    key = labels.key_label(rendered[:, 3] + plan.transpose, rendered[:, 2])
    f0 = None
    if plan.monophonic:
        line = np.array(first_voice, dtype=np.float64).reshape(-1, 3)
        f0 = labels.f0_track(line[:, 0], line[:, 1], line[:, 2], clip_seconds)
    program_list = [voice.program for voice in plan.voices]
    metre = metre_at(piece, plan.start)
    drums_on = plan.drum_kit is not None
    text = labels.caption(
        phrase=style.phrase,
        composer=piece.candidate.composer,
        key=key,
        programs=program_list,
        tempo=plan.tempo,
        metre=metre,
        drums=drums_on,
        voice=plan.solo_voice,
        drum_kit=None if plan.drum_kit is None else instruments.DRUM_KITS[plan.drum_kit],
        # Its own generator: the words drawn never change the audio drawn before them.
        rng=clip_rng(seed, f"{clip_id}/caption"),
    )
    record = {
        "style": style.name,
        "composer": piece.candidate.composer,
        "piece_id": piece.candidate.piece_id,
        "title": piece.title,
        "source": piece.candidate.source,
        "source_number": piece.candidate.number,
        "excerpt_start": plan.start,
        "excerpt_end": plan.end,
        "score_parts": plan.parts,
        "key": key,
        "tempo": plan.tempo,
        "metre": metre,
        "transpose": plan.transpose,
        "programs": program_list,
        "instruments": [instruments.name(p) for p in program_list],
        "families": [instruments.family(p) for p in program_list],
        "drums": drums_on,
        "drum_kit": None if plan.drum_kit is None else instruments.DRUM_KITS[plan.drum_kit],
        "velocity": plan.velocity,
        "monophonic": plan.monophonic,
        "caption": text,
    }
    return record, f0
