"""Labels computed from the notes a clip actually renders: key, f0 track and caption."""

from __future__ import annotations

import numpy as np

from musicssl.builtin import instruments

F0_HOP = 0.01  # seconds between f0 frames


def key_label(pitches: np.ndarray, durations: np.ndarray) -> str:
    """music21's key analysis (``Stream.analyze('key')``) of a set of notes, as a string.

    Args:
        pitches: MIDI pitches after transposition. Shape: (num_notes,).
        durations: note values in quarter notes. Shape: (num_notes,).

    Returns:
        Tonic and mode, e.g. ``"F# minor"`` or ``"Bb major"`` (the format of ``mir_eval.key``;
        the tonic is spelled as music21's analysis spells it).
    """
    from music21 import note, stream
    from music21.analysis.discrete import AardenEssen

    excerpt: stream.Stream = stream.Stream()
    offset = 0.0
    for pitch, duration in zip(pitches, durations, strict=True):
        element = note.Note(int(pitch), quarterLength=float(duration))
        excerpt.insert(offset, element)
        offset += float(duration)
    # What analyze("key") runs (its "key" method is Aarden-Essen), without building the 23
    # alternative Key objects it also returns: that took four fifths of a clip's time.
    (tonic, mode, _), _ = AardenEssen().process(excerpt)
    return f"{tonic.name.replace('-', 'b')} {mode}"


def f0_track(
    onsets: np.ndarray, offsets: np.ndarray, pitches: np.ndarray, duration: float
) -> np.ndarray:
    """Frame-level f0 of a monophonic line, 0 where no note sounds.

    Frame ``k`` is the instant ``k * F0_HOP`` seconds; there are ``round(duration / F0_HOP)``
    frames. A note is voiced from its onset up to (not including) its note-off.

    Args:
        onsets: note-on times in seconds. Shape: (num_notes,).
        offsets: note-off times in seconds. Shape: (num_notes,).
        pitches: MIDI pitches. Shape: (num_notes,).
        duration: clip length in seconds.

    Returns:
        f0 in Hz, float32. Shape: (num_frames,).
    """
    times = np.arange(int(round(duration / F0_HOP))) * F0_HOP
    f0 = np.zeros(len(times), dtype=np.float64)
    for onset, offset, pitch in zip(onsets, offsets, pitches, strict=True):
        # Later notes overwrite earlier ones, so the newest note wins any overlap.
        voiced = (times >= onset - 1e-9) & (times < offset - 1e-9)
        f0[voiced] = 440.0 * 2.0 ** ((pitch - 69.0) / 12.0)
    return f0.astype(np.float32)


def _article(phrase: str) -> str:
    return "An" if phrase[0].lower() in "aeiou" else "A"


def caption(
    *,
    phrase: str,
    composer: str,
    key: str,
    programs: list[int],
    tempo: int,
    metre: str,
    drums: bool,
    voice: str | None = None,
) -> str:
    """A sentence describing a clip from its labels.

    Args:
        phrase: the style's phrase, e.g. ``"Bach chorale"``.
        composer: composer name; named in the sentence when the phrase does not name it.
        key: the key label.
        programs: programs of the rendered voices.
        tempo: quarter-note BPM.
        metre: time signature, e.g. ``"3/4"``.
        drums: whether a drum part plays.
        voice: for a single part taken from a polyphonic score, its name (e.g. ``"alto"``).

    Returns:
        E.g. ``"A Bach chorale in F# minor for oboe, viola, cello and bassoon at 92 BPM in
        4/4, with drums."``
    """
    subject = phrase
    if composer not in ("traditional", "") and composer not in phrase:
        subject = f"{composer} {phrase}"
    subject = f"{_article(subject)} {subject}"
    if voice:
        subject = f"The {voice} part of {subject[0].lower()}{subject[1:]}"
    if len(programs) == 1:
        scoring = f"played solo on {instruments.name(programs[0])}"
    else:
        scoring = f"for {instruments.describe(programs)}"
    ending = ", with drums." if drums else "."
    return f"{subject} in {key} {scoring} at {tempo} BPM in {metre}{ending}"
