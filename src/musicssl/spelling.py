"""How the toolkit spells pitch classes and keys: one table, read by every module that names one.

``PITCH_CLASSES[i]`` names the pitch class ``i`` semitones above C. ``KEYS`` lists the 24
major and minor keys, each tonic spelled with the fewest accidentals in its key signature;
this is the order of every key probe's classes.
"""

from __future__ import annotations

__all__ = ["KEYS", "PITCH_CLASSES"]

PITCH_CLASSES = ("C", "C#", "D", "Eb", "E", "F", "F#", "G", "Ab", "A", "Bb", "B")
_MAJOR_TONICS = ("C", "Db", "D", "Eb", "E", "F", "F#", "G", "Ab", "A", "Bb", "B")
_MINOR_TONICS = ("C", "C#", "D", "Eb", "E", "F", "F#", "G", "G#", "A", "Bb", "B")
KEYS: tuple[str, ...] = tuple(f"{t} major" for t in _MAJOR_TONICS) + tuple(
    f"{t} minor" for t in _MINOR_TONICS
)
