"""A General MIDI drum part that follows the bars and metre of the score."""

from __future__ import annotations

import numpy as np

KICK, SNARE, SIDE_STICK, CLOSED_HAT, RIDE, TAMBOURINE, SHAKER = 36, 38, 37, 42, 51, 54, 70


def beat_grid(numerator: int, denominator: int) -> tuple[float, int, float]:
    """Beat length, beats per bar and subdivision, in quarter notes, of a time signature.

    Compound metres (6/8, 9/8, 12/8, ...) count dotted beats divided in three.

    Returns:
        ``(beat_length, num_beats, subdivision)``.
    """
    if denominator >= 8 and numerator % 3 == 0 and numerator > 3:
        beat = 3 * 4.0 / denominator
        return beat, numerator // 3, beat / 3
    beat = 4.0 / denominator
    return beat, numerator, beat / 2


def bar_pattern(numerator: int, denominator: int, variant: int) -> list[tuple[float, int, float]]:
    """Hits of one bar: (position in quarter notes from the bar line, key, accent 0-1).

    Args:
        numerator: time signature numerator.
        denominator: time signature denominator.
        variant: 0 full kit (kick, snare, hi-hat), 1 light (kick, side stick, ride),
            2 hand percussion (tambourine or shaker on the subdivisions, kick on the one).
    """
    beat, num_beats, subdivision = beat_grid(numerator, denominator)
    hits: list[tuple[float, int, float]] = []
    for index in range(num_beats):
        position = index * beat
        if index == 0:
            hits.append((position, KICK, 1.0))
        elif variant == 0 and num_beats == 4 and index == 2:
            hits.append((position, KICK, 0.8))
        elif variant < 2 and (index % 2 == 1 or num_beats == 3):
            hits.append((position, SNARE if variant == 0 else SIDE_STICK, 0.8))
    steps = int(round(num_beats * beat / subdivision))
    cymbal = (CLOSED_HAT, RIDE, TAMBOURINE if numerator % 2 == 0 else SHAKER)[variant]
    for step in range(steps):
        on_beat = step % int(round(beat / subdivision)) == 0
        hits.append((step * subdivision, cymbal, 0.7 if on_beat else 0.45))
    return hits


def drum_hits(
    measures: np.ndarray, start: float, end: float, variant: int
) -> list[tuple[float, int, float]]:
    """Drum hits over ``[start, end)`` of a score, aligned with its bars.

    Args:
        measures: the piece's measure table (offset, bar start, numerator, denominator).
            Shape: (num_measures, 4).
        start: excerpt start (quarter notes).
        end: excerpt end, exclusive (quarter notes).
        variant: pattern variant, see :func:`bar_pattern`.

    Returns:
        (offset in quarter notes from the score start, key, accent), sorted by offset.
    """
    hits = []
    next_offsets = np.append(measures[1:, 0], np.inf)
    for (offset, bar_start, numerator, denominator), bar_end in zip(
        measures, next_offsets, strict=True
    ):
        if bar_end <= start or offset >= end:
            continue
        for position, key, accent in bar_pattern(int(numerator), int(denominator), variant):
            at = bar_start + position
            if offset - 1e-9 <= at < min(bar_end, end) - 1e-9 and at >= start - 1e-9:
                hits.append((float(at), key, accent))
    hits.sort()
    return hits
