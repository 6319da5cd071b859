"""A candidate score parsed once and reduced to a plain note table (:class:`Piece`).

Parsing with music21 is the slow step of building the built-in corpus, so each parsed piece
becomes the note table that the renderer and the labels read (which candidates there are,
and their splits: ``musicssl.builtin.candidates``).
"""

from __future__ import annotations

import dataclasses
import warnings
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import numpy as np

from musicssl.builtin.candidates import Candidate, corpus_root
from musicssl.builtin.styles import STYLES


@dataclass
class Piece:
    """A parsed score reduced to what rendering and labelling need.

    Attributes:
        candidate: where it came from.
        title: the score's title (or the file name where it has none).
        part_names: one name per part (may be empty strings).
        notes: note table, one row per sounding note (tied notes merged, grace notes dropped,
            chord symbols ignored), sorted by onset. Columns: part index, onset (quarter notes
            from the start of the score), duration (quarter notes), MIDI pitch.
            Shape: (num_notes, 4).
        measures: one row per bar of the first part. Columns: offset of the bar (quarter
            notes), offset where the full bar would start (earlier than the offset for a
            pickup), numerator and denominator of the time signature in force.
            Shape: (num_measures, 4).
        end: offset where the score ends (quarter notes).
        median_duration: median note value over all parts (quarter notes).
    """

    candidate: Candidate
    title: str
    part_names: list[str]
    notes: np.ndarray
    measures: np.ndarray
    end: float
    median_duration: float

    def to_json(self) -> dict:
        """A JSON-serialisable form (for the parse cache)."""
        return {
            "candidate": dataclasses.asdict(self.candidate),
            "title": self.title,
            "part_names": self.part_names,
            "notes": self.notes.tolist(),
            "measures": self.measures.tolist(),
            "end": self.end,
            "median_duration": self.median_duration,
        }

    @classmethod
    def from_json(cls, data: dict) -> Piece:
        """Inverse of :meth:`to_json`."""
        return cls(
            candidate=Candidate(**data["candidate"]),
            title=data["title"],
            part_names=list(data["part_names"]),
            notes=np.asarray(data["notes"], dtype=np.float64).reshape(-1, 4),
            measures=np.asarray(data["measures"], dtype=np.float64).reshape(-1, 4),
            end=float(data["end"]),
            median_duration=float(data["median_duration"]),
        )


def parse_score(candidate: Candidate):
    """The music21 score of a candidate, as written (ties not merged).

    Args:
        candidate: the candidate to parse.

    Returns:
        A ``music21.stream.Score``.
    """
    from music21 import converter

    path = corpus_root() / candidate.source
    with warnings.catch_warnings():
        # music21 warns about notation it skips (fingerings, odd barlines); not our concern.
        warnings.simplefilter("ignore")
        if candidate.number is None:
            return converter.parse(path, forceSource=True)
        return converter.parse(path, forceSource=True, number=candidate.number)


def part_notes(part) -> list[tuple[float, float, int]]:
    """The sounding notes of one part, tied notes merged into one.

    Chord symbols and grace notes are left out; each pitch of a chord is a note. This does
    what music21's ``stripTies`` does, in one pass and without copying the score (copying
    took two thirds of the parse time of a quartet movement).

    Args:
        part: a ``music21.stream.Part``.

    Returns:
        (onset in quarter notes, duration in quarter notes, MIDI pitch), by onset.
    """
    from music21 import chord, harmony, note

    merged: list[list[float]] = []
    open_ties: dict[int, int] = {}  # MIDI pitch -> index in merged of a note tied onwards
    for element in part.flatten().notes:
        if isinstance(element, harmony.ChordSymbol) or element.duration.isGrace:
            continue
        if isinstance(element, note.Note):
            pitched = [(element.pitch, element.tie)]
        elif isinstance(element, chord.Chord):
            pitched = [(p, element.getTie(p)) for p in element.pitches]
        else:
            continue
        onset = float(Fraction(element.offset))
        duration = float(Fraction(element.quarterLength))
        for pitch, tie in pitched:
            midi = int(pitch.midi)
            kind = tie.type if tie is not None else None
            if midi in open_ties and kind in ("stop", "continue"):
                held = merged[open_ties[midi]]
                held[1] = onset + duration - held[0]
                if kind == "stop":
                    del open_ties[midi]
                continue
            merged.append([onset, duration, midi])
            if kind in ("start", "continue"):
                open_ties[midi] = len(merged) - 1
            else:
                open_ties.pop(midi, None)
    merged.sort(key=lambda row: (row[0], row[2]))
    return [(row[0], row[1], int(row[2])) for row in merged]


def _measure_table(part) -> np.ndarray:
    from music21 import stream

    rows = []
    numerator, denominator = None, None
    for index, measure in enumerate(part.getElementsByClass(stream.Measure)):
        if measure.timeSignature is not None:
            numerator = measure.timeSignature.numerator
            denominator = measure.timeSignature.denominator
        if numerator is None:
            continue
        bar_length = numerator * 4.0 / denominator
        offset = float(measure.offset)
        actual = float(measure.duration.quarterLength)
        padding = float(measure.paddingLeft or 0.0)
        if padding == 0.0 and index == 0 and actual < bar_length:
            # A pickup bar the parser did not mark: it ends where a full bar would.
            padding = bar_length - actual
        rows.append((offset, offset - padding, numerator, denominator))
    return np.asarray(rows, dtype=np.float64).reshape(-1, 4)


def load_piece(candidate: Candidate) -> Piece | str:
    """Parse a candidate into a :class:`Piece`, or say why it cannot be used.

    Args:
        candidate: the candidate to parse.

    Returns:
        The piece, or a short reason (a string) why the candidate is skipped.
    """
    style = STYLES[candidate.style]
    try:
        score = parse_score(candidate)
    except Exception as error:  # noqa: BLE001 - a broken corpus file is skipped, not fatal
        return f"unparsable: {type(error).__name__}"
    parts = list(score.parts)
    if not style.min_parts <= len(parts) <= style.max_parts:
        return f"{len(parts)} parts"
    measures = _measure_table(parts[0])
    if len(measures) == 0:
        return "no time signature"
    rows = [
        (index, onset, duration, midi)
        for index, part in enumerate(parts)
        for onset, duration, midi in part_notes(part)
    ]
    if len(rows) < 8:
        return "too few notes"
    notes = np.asarray(rows, dtype=np.float64)
    notes = notes[np.lexsort((notes[:, 3], notes[:, 0], notes[:, 1]))]
    title = ""
    if score.metadata is not None:
        title = score.metadata.title or score.metadata.movementName or ""
    end = float(max(score.highestTime, (notes[:, 1] + notes[:, 2]).max()))
    title = str(title)
    if not title or title.endswith((".mxl", ".krn", ".abc", ".xml")):
        title = Path(title or candidate.source).stem
    return Piece(
        candidate=candidate,
        title=title,
        part_names=[str(part.partName or "") for part in parts],
        notes=notes,
        measures=measures,
        end=end,
        median_duration=float(np.median(notes[:, 2])),
    )


def tempo_range(piece: Piece) -> tuple[int, int]:
    """The range of quarter-note tempos (BPM) a piece is played at.

    The style gives a range of note rates; a piece notated in halves (Palestrina) or in
    sixteenths (reels) then gets proportionally faster or slower quarter-note tempos.

    Returns:
        ``(lowest, highest)`` BPM, integers, inclusive.
    """
    style = STYLES[piece.candidate.style]
    if style.quarter_bpm is not None:
        return style.quarter_bpm
    low_rate, high_rate = style.notes_per_second
    low = int(np.clip(round(low_rate * 60.0 * piece.median_duration), 40, 240))
    high = int(np.clip(round(high_rate * 60.0 * piece.median_duration), 40, 240))
    return low, max(low, high)


def excerpt_starts(piece: Piece, length: float) -> np.ndarray:
    """Bar offsets where an excerpt of ``length`` quarter notes fits before the end.

    Shape: (num_starts,).
    """
    offsets = np.unique(piece.measures[:, 0])
    return offsets[offsets + length <= piece.end + 1e-9]


def usable(piece: Piece, clip_seconds: float) -> str | None:
    """Why a parsed piece cannot give a clip of ``clip_seconds`` even at its fastest tempo."""
    _, fastest = tempo_range(piece)
    if len(excerpt_starts(piece, clip_seconds * fastest / 60.0)) == 0:
        return "shorter than a clip"
    return None
