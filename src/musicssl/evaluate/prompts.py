"""The fixed prompt sets of zero-shot classification, one per task, versioned.

A class's text embedding is the normalised mean of its prompts' embeddings (CLIP's prompt
ensembling). One changed prompt can move a zero-shot score by many points, so the prompts
never change silently: any edit here bumps ``PROMPTS_VERSION``, which reports show beside
every zero-shot score.
"""

from __future__ import annotations

PROMPTS_VERSION = 1

PROMPTS: dict[str, dict[str, tuple[str, ...]]] = {
    # The ``style`` labels of the built-in corpus.
    "style": {
        "bach_chorale": ("a Bach chorale", "a chorale by Bach", "a four-part chorale"),
        "palestrina_mass": (
            "a Palestrina mass movement",
            "a movement of a mass by Palestrina",
            "Renaissance sacred polyphony",
        ),
        "monteverdi_madrigal": (
            "a Monteverdi madrigal",
            "a madrigal by Monteverdi",
            "an Italian Renaissance madrigal",
        ),
        "string_quartet": (
            "a string quartet movement",
            "a movement of a classical string quartet",
            "a quartet by Haydn, Mozart or Beethoven",
        ),
        "fiddle_tune": ("a traditional fiddle tune", "a fiddle tune", "a folk dance tune"),
        "german_folk_song": ("a German folk song", "a traditional German song", "a folk song"),
    },
    # Major or minor: the mode of the key label.
    "mode": {
        "major": ("a piece in a major key", "music in major", "a major-key piece"),
        "minor": ("a piece in a minor key", "music in minor", "a minor-key piece"),
    },
    # The General MIDI families the built-in corpus's instruments belong to.
    "family": {
        "piano": ("a piece played on a keyboard", "piano or harpsichord", "keyboards"),
        "organ": ("a piece played on an organ", "organ, accordion or harmonica", "free reeds"),
        "guitar": ("a piece played on guitars", "guitar", "plucked guitars"),
        "bass": ("a piece with a bass", "acoustic bass", "basses"),
        "strings": ("a piece played by strings", "violin, viola, cello or harp", "strings"),
        "ensemble": ("a piece sung by voices", "choir or voice", "voices"),
        "brass": ("a piece played by brass", "trumpet, horn, trombone or tuba", "brass"),
        "reed": ("a piece played by reeds", "oboe, clarinet, bassoon or saxophone", "reeds"),
        "pipe": ("a piece played on flutes", "flute, piccolo or recorder", "flutes"),
        "ethnic": ("a piece played on folk instruments", "fiddle or banjo", "folk instruments"),
    },
}
