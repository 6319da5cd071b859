"""The styles of the built-in corpus and how each is performed."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Style:
    """One style (label) of the corpus and how its clips are performed.

    Attributes:
        name: the label written to the manifest, e.g. ``"bach_chorale"``.
        phrase: how a caption names it, after "A"/"An": ``"Bach chorale"``.
        notes_per_second: range of note rates (one voice, median note) that tempos are drawn
            from; the tempo of a piece follows from its median note value, so a piece
            notated in halves gets a faster quarter-note tempo than one in eighths.
        min_parts: fewest parts a score of this style must have.
        max_parts: most parts a score of this style may have.
        folk: a single-line tune: played solo (monophonic, with f0) on every other clip,
            else doubled by a second instrument.
        drum_probability: chance that a polyphonic clip gets a drum part.
        ensembles: names of ensembles in ``instruments.ENSEMBLES``, drawn uniformly (repeat
            a name to weight it).
        quarter_bpm: a fixed range of quarter-note tempos instead of ``notes_per_second``,
            for styles whose beat is always the quarter (chorales, whose passing eighths would
            skew the median note).
    """

    name: str
    phrase: str
    notes_per_second: tuple[float, float]
    min_parts: int
    max_parts: int
    folk: bool
    drum_probability: float
    ensembles: tuple[str, ...]
    quarter_bpm: tuple[int, int] | None = None


_CLASSICAL: dict[str, Any] = dict(folk=False)
_FOLK: dict[str, Any] = dict(folk=True, min_parts=1, max_parts=1, ensembles=("folk",))

STYLES: dict[str, Style] = {
    style.name: style
    for style in (
        Style(
            name="bach_chorale",
            phrase="Bach chorale",
            notes_per_second=(1.1, 1.7),
            quarter_bpm=(60, 96),
            min_parts=4,
            max_parts=6,
            drum_probability=0.25,
            ensembles=("strings", "winds", "choir", "keyboard", "mixed"),
            **_CLASSICAL,
        ),
        Style(
            name="palestrina_mass",
            phrase="Palestrina mass movement",
            notes_per_second=(1.0, 1.6),
            min_parts=3,
            max_parts=8,
            drum_probability=0.15,
            ensembles=("choir", "keyboard", "recorders", "strings", "mixed"),
            **_CLASSICAL,
        ),
        Style(
            name="monteverdi_madrigal",
            phrase="Monteverdi madrigal",
            notes_per_second=(1.3, 2.2),
            min_parts=4,
            max_parts=7,
            drum_probability=0.2,
            ensembles=("choir", "strings", "winds", "plucked", "recorders", "mixed"),
            **_CLASSICAL,
        ),
        Style(
            name="string_quartet",
            phrase="string quartet movement",
            notes_per_second=(1.5, 3.2),
            min_parts=4,
            max_parts=4,
            drum_probability=0.2,
            ensembles=("strings", "strings", "strings", "winds", "keyboard", "mixed"),
            **_CLASSICAL,
        ),
        Style(
            name="fiddle_tune",
            phrase="traditional fiddle tune",
            notes_per_second=(4.5, 7.5),
            drum_probability=0.5,
            **_FOLK,
        ),
        Style(
            name="german_folk_song",
            phrase="German folk song",
            notes_per_second=(1.8, 3.2),
            drum_probability=0.4,
            **_FOLK,
        ),
    )
}
