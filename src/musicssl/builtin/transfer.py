"""The transfer renders: each test clip played again by instruments pretraining never hears.

A transfer clip is its test clip's performance (excerpt, tempo, transposition, dynamics, note
timing, drums) with every voice given a new instrument from the families of
``instruments.TRANSFER_FAMILIES`` (organ and free reeds, guitars, basses, brass, synth
leads), while the usual clips of every split use ``instruments.CORPUS_FAMILIES`` only. So its
key, tempo, metre, style and f0 are the test clip's, and what a probe trained on the usual
train split loses on it is what it owed to timbre.

The new instruments come from a generator of their own (``clip_rng(seed, clip_id +
"/transfer")``): the test clip's draws, and so its audio, are the same whether or not its
transfer render is made.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from musicssl.builtin import instruments
from musicssl.builtin.clips import Performance, _part_notes
from musicssl.builtin.pieces import Piece
from musicssl.builtin.styles import STYLES

# The folder of a built corpus that holds the transfer renders (a corpus folder of its own:
# manifest.jsonl, audio/, f0/, every row in split "test").
FOLDER = "transfer"


def voice_ranges(piece: Piece, plan: Performance) -> list[tuple[int, int]]:
    """The sounding range (lowest, highest MIDI note) of each voice of a performance."""
    ranges = []
    for voice in plan.voices:
        notes = _part_notes(piece, voice.part, plan.start, plan.end)
        pitches = notes[:, 3] + plan.transpose + voice.shift
        ranges.append((int(pitches.min()), int(pitches.max())))
    return ranges


def transfer_programs(
    ranges: list[tuple[int, int]],
    *,
    monophonic: bool,
    folk: bool,
    rng: np.random.Generator,
) -> list[int]:
    """New General MIDI programs, all of ``TRANSFER_FAMILIES``, for voices of these ranges.

    A solo gets a tuned solo instrument (``TRANSFER_SOLO_PROGRAMS``, so its f0 label holds);
    a folk tune's doubling voices two different instruments of ``TRANSFER_FOLK``; any other
    ensemble is drawn from ``TRANSFER_ENSEMBLES`` (one instrument for all parts in the shared
    ones), each part given an instrument whose range holds it, as for the usual clips.

    Args:
        ranges: (lowest, highest) MIDI note of each voice, in voice order.
        monophonic: one voice that carries an f0 label.
        folk: a folk tune (one line, doubled by a second instrument when not solo).
        rng: the transfer render's generator.

    Returns:
        One program per voice.
    """
    if monophonic:
        return [instruments.choose_program(instruments.TRANSFER_SOLO_PROGRAMS, *ranges[0], rng)]
    if folk:
        first = instruments.choose_program(instruments.TRANSFER_FOLK, *ranges[0], rng)
        programs = [first]
        others = tuple(p for p in instruments.TRANSFER_FOLK if p != first)
        programs += [instruments.choose_program(others, *span, rng) for span in ranges[1:]]
        return programs
    names = sorted(instruments.TRANSFER_ENSEMBLES)
    ensemble = names[int(rng.integers(len(names)))]
    pool = instruments.TRANSFER_ENSEMBLES[ensemble]
    if ensemble in instruments.SHARED_ENSEMBLES:
        pool = (int(rng.choice(pool)),)
    return [instruments.choose_program(pool, *span, rng) for span in ranges]


def recast(piece: Piece, plan: Performance, rng: np.random.Generator) -> Performance:
    """The same performance with every voice on a transfer instrument (see the module doc).

    Args:
        piece: the parsed piece.
        plan: the test clip's performance.
        rng: the transfer render's generator.

    Returns:
        A new performance; only the voices' programs differ.
    """
    programs = transfer_programs(
        voice_ranges(piece, plan),
        monophonic=plan.monophonic,
        folk=STYLES[piece.candidate.style].folk,
        rng=rng,
    )
    voices = [
        dataclasses.replace(voice, program=program)
        for voice, program in zip(plan.voices, programs, strict=True)
    ]
    return dataclasses.replace(plan, voices=voices)
