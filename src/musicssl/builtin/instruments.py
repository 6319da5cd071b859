"""General MIDI instruments: names, families, ranges, and the ensembles clips are drawn from.

The corpus's usual clips (train, valid and test) are played by instruments of
:data:`CORPUS_FAMILIES` only. The transfer renders of the test clips (see
``musicssl.builtin.transfer``) are played by instruments of :data:`TRANSFER_FAMILIES`: organ
and free reeds, guitars, basses, brass and synth leads, families that pretraining never
hears. Drums are no General MIDI program and play in both.
"""

from __future__ import annotations

import numpy as np

# The 16 General MIDI families, eight programs each.
GM_FAMILIES = (
    "piano",
    "chromatic percussion",
    "organ",
    "guitar",
    "bass",
    "strings",
    "ensemble",
    "brass",
    "reed",
    "pipe",
    "synth lead",
    "synth pad",
    "synth effects",
    "ethnic",
    "percussive",
    "sound effects",
)

# Program -> (name in captions, lowest MIDI note, highest MIDI note). The ranges are those of
# the real instruments, a little widened; a part is only given an instrument that can play it.
INSTRUMENTS: dict[int, tuple[str, int, int]] = {
    0: ("piano", 21, 108),
    6: ("harpsichord", 29, 89),
    19: ("church organ", 24, 96),
    20: ("reed organ", 36, 96),
    21: ("accordion", 41, 89),
    22: ("harmonica", 60, 96),
    24: ("nylon guitar", 40, 84),
    25: ("steel guitar", 40, 84),
    26: ("jazz guitar", 40, 84),
    27: ("electric guitar", 40, 86),
    32: ("acoustic bass", 28, 60),
    33: ("electric bass", 28, 67),
    38: ("synth bass", 28, 67),
    40: ("violin", 55, 100),
    41: ("viola", 48, 88),
    42: ("cello", 36, 76),
    43: ("double bass", 28, 62),
    46: ("harp", 24, 103),
    52: ("choir", 40, 81),
    53: ("voice", 40, 81),
    56: ("trumpet", 54, 86),
    57: ("trombone", 40, 72),
    58: ("tuba", 28, 58),
    60: ("French horn", 41, 77),
    61: ("brass section", 36, 84),
    64: ("soprano sax", 56, 87),
    65: ("alto sax", 49, 80),
    66: ("tenor sax", 44, 76),
    68: ("oboe", 58, 88),
    69: ("English horn", 52, 81),
    70: ("bassoon", 34, 75),
    71: ("clarinet", 50, 91),
    72: ("piccolo", 74, 105),
    73: ("flute", 60, 96),
    74: ("recorder", 60, 96),
    75: ("pan flute", 60, 96),
    80: ("square lead", 36, 96),
    81: ("sawtooth lead", 36, 91),
    82: ("calliope", 48, 96),
    105: ("banjo", 48, 84),
    110: ("fiddle", 55, 100),
}

# The families of the two sides: pretraining hears only the first, the transfer renders only
# the second.
TRANSFER_FAMILIES = ("organ", "guitar", "bass", "brass", "synth lead")
CORPUS_FAMILIES = ("piano", "strings", "ensemble", "reed", "pipe", "ethnic")

# Ensembles: the programs a part may be given. A part gets one of them whose range holds it.
# In the ensembles of SHARED_ENSEMBLES one instrument (a keyboard, a choir) plays every part.
ENSEMBLES: dict[str, tuple[int, ...]] = {
    "strings": (40, 41, 42, 43),
    "winds": (73, 68, 69, 71, 70),
    "choir": (52, 53),
    "keyboard": (0, 6),
    "recorders": (74, 70, 71),
    "plucked": (46, 6),
    "mixed": (40, 41, 42, 43, 73, 68, 71, 70, 0, 6, 46, 53, 65, 66),
    "folk": (110, 40, 73, 74, 75, 105, 0, 71, 68, 6, 46),
}

# The transfer renders' ensembles, drawn uniformly whatever the style; folk tunes take
# TRANSFER_FOLK for their two doubling instruments.
TRANSFER_ENSEMBLES: dict[str, tuple[int, ...]] = {
    "organ": (19, 20),
    "brass": (56, 60, 57, 58),
    "band": (24, 25, 26, 27, 33),
    "synth": (80, 81, 82, 38),
    "mixed": (20, 21, 56, 60, 57, 58, 61, 26, 27, 33, 80, 81, 82),
}
TRANSFER_FOLK: tuple[int, ...] = (21, 22, 56, 24, 25, 26, 80, 82, 20)

SHARED_ENSEMBLES = ("organ", "choir", "keyboard")

# Instruments that play several parts at once: named once in a caption however many parts
# they play ("for piano", not "for four pianos").
CHORDAL_PROGRAMS = frozenset({0, 6, 19, 20, 24, 25, 26, 27, 46, 52})

# Programs that play monophonic clips, which carry an f0 label. Their TimGM6mb rendering
# stays within about 12 cents of the nominal pitch over their range (measured), and they are
# sustained instruments whose notes stop soon after their note-off, so the audio holds one
# pitch at a time as the label says. Left out: flute, oboe, saxophones, horn, accordion and
# harmonica (samples 15-70 cents off in parts of their range), the choir (wide vibrato),
# the church organ (its sample sounds an octave below the key), and plucked and struck
# instruments (their ringing decays overlap the next notes).
TUNED_SOLO_PROGRAMS: tuple[int, ...] = (40, 41, 42, 69, 70, 71, 72, 74, 75, 110)
# The same, for the transfer renders: reed organ, trumpet, trombone, square lead and calliope
# (each within 8 cents over its range). Left out: the drawbar organs (pitch not found), tuba
# and the basses (off at their lowest notes), the sawtooth lead (80 cents off at the top).
TRANSFER_SOLO_PROGRAMS: tuple[int, ...] = (20, 56, 57, 80, 82)

# General MIDI percussion kits present in TimGM6mb (bank 128) and their names.
DRUM_KITS: dict[int, str] = {0: "standard", 8: "room", 16: "power", 32: "jazz", 40: "brush"}

_NUMBER_WORDS = ("", "", "two", "three", "four", "five", "six", "seven", "eight")


def family(program: int) -> str:
    """The General MIDI family name of a program (0-127)."""
    return GM_FAMILIES[program // 8]


def name(program: int) -> str:
    """The instrument name used in captions."""
    return INSTRUMENTS[program][0]


def choose_program(
    pool: tuple[int, ...], lowest: int, highest: int, rng: np.random.Generator
) -> int:
    """Draw an instrument of ``pool`` whose range holds ``[lowest, highest]``.

    When none holds the whole part, the one that leaves the fewest semitones outside wins.

    Args:
        pool: candidate programs (keys of :data:`INSTRUMENTS`).
        lowest: the part's lowest MIDI note.
        highest: the part's highest MIDI note.
        rng: source of randomness.

    Returns:
        A program number.
    """
    overshoot = np.array(
        [max(0, INSTRUMENTS[p][1] - lowest) + max(0, highest - INSTRUMENTS[p][2]) for p in pool]
    )
    best = np.flatnonzero(overshoot == overshoot.min())
    # Among those, an instrument whose range is centred near the part is likelier: a first
    # violin part goes to a violin more often than to a viola that can also reach it.
    centre = (lowest + highest) / 2.0
    distance = np.array(
        [abs((INSTRUMENTS[pool[i]][1] + INSTRUMENTS[pool[i]][2]) / 2.0 - centre) for i in best]
    )
    weights = np.exp(-distance / 6.0)
    return int(pool[int(rng.choice(best, p=weights / weights.sum()))])


def describe(programs: list[int]) -> str:
    """A list of instruments in words: ``"two violins, viola and cello"``.

    Args:
        programs: programs in score order (top part first); repeats are counted, except for
            instruments that play chords (keyboards, harp, guitars, choir).
    """
    counts: dict[int, int] = {}
    for program in programs:
        counts[program] = counts.get(program, 0) + 1
    words = []
    for program, count in counts.items():
        label = name(program)
        if count > 1 and program not in CHORDAL_PROGRAMS:
            plural = label + ("es" if label.endswith(("ss", "sh", "ch")) else "s")
            label = f"{_NUMBER_WORDS[min(count, 8)]} {plural}"
        words.append(label)
    if len(words) == 1:
        return words[0]
    return ", ".join(words[:-1]) + " and " + words[-1]
