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


# Tempo words by quarter-note BPM: (upper bound, words). The bounds are those of the usual
# Italian markings, loosely (adagio below 66, andante to 100, allegro to 140, presto above).
TEMPO_WORDS: tuple[tuple[float, tuple[str, ...]], ...] = (
    (66, ("slow", "unhurried", "stately")),
    (100, ("moderate", "relaxed", "walking-pace")),
    (140, ("lively", "brisk", "upbeat")),
    (float("inf"), ("fast", "quick", "energetic")),
)
# Metre words by time signature; a metre not listed is only ever written as a number.
METRE_WORDS: dict[str, tuple[str, ...]] = {
    "2/2": ("cut time", "duple time"),
    "2/4": ("duple time", "two beats to the bar"),
    "3/2": ("triple time",),
    "3/4": ("triple time", "waltz time", "three beats to the bar"),
    "3/8": ("triple time",),
    "4/4": ("common time", "four beats to the bar"),
    "6/8": ("compound duple time", "a lilting six-eight"),
    "9/8": ("compound triple time",),
    "12/8": ("compound quadruple time",),
}
DRUM_PHRASES = ("with drums", "with a {kit} drum kit", "over a drum beat", "with drums behind it")
# Composers of the built-in styles, for captions drawn without a clip (``caption_samples``).
STYLE_COMPOSERS: dict[str, tuple[str, ...]] = {
    "bach_chorale": ("Bach",),
    "palestrina_mass": ("Palestrina",),
    "monteverdi_madrigal": ("Monteverdi",),
    "string_quartet": ("Haydn", "Mozart", "Beethoven"),
    "fiddle_tune": ("traditional",),
    "german_folk_song": ("traditional",),
}


def tempo_words(tempo: float) -> tuple[str, ...]:
    """The words for a quarter-note tempo in BPM: ``tempo_words(60) == ("slow", ...)``."""
    return next(words for bound, words in TEMPO_WORDS if tempo < bound)


# General MIDI families as captions name a group of their instruments.
FAMILY_WORDS: dict[str, str] = {
    "piano": "keyboards",
    "chromatic percussion": "tuned percussion",
    "organ": "organ and free reeds",
    "guitar": "guitars",
    "bass": "basses",
    "strings": "strings",
    "ensemble": "voices",
    "brass": "brass",
    "reed": "reeds",
    "pipe": "flutes",
    "ethnic": "folk instruments",
}


def _families(programs: list[int]) -> str:
    """The General MIDI families of the voices in words: ``"strings and brass"``."""
    names = list(dict.fromkeys(instruments.family(p) for p in programs))
    words = [FAMILY_WORDS.get(name, name) for name in names]
    return words[0] if len(words) == 1 else ", ".join(words[:-1]) + " and " + words[-1]


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
    drum_kit: str | None = None,
    rng: np.random.Generator | None = None,
) -> str:
    """A sentence describing a clip from its labels.

    Without ``rng`` the sentence has one fixed form. With the clip's generator the sentence
    pattern and its words are drawn: the style (with the composer, when the phrase does not
    name one) and the key are always named, exactly as labelled; the tempo as a number of BPM,
    a word ("slow", "lively", ...) or both; the metre as a time signature, in words, or not
    at all; the ensemble by its instruments or, for several voices, sometimes by their
    families ("strings and reeds"); drums, when they play, in one of a few phrases that all
    hold the word "drum".

    Args:
        phrase: the style's phrase, e.g. ``"Bach chorale"``.
        composer: composer name; named in the sentence when the phrase does not name it.
        key: the key label.
        programs: programs of the rendered voices.
        tempo: quarter-note BPM.
        metre: time signature, e.g. ``"3/4"``.
        drums: whether a drum part plays.
        voice: for a single part taken from a polyphonic score, its name (e.g. ``"alto"``).
        drum_kit: the drum kit's name (``"jazz"``), for the drawn phrases that name it.
        rng: the clip's caption generator; None for the fixed form.

    Returns:
        The fixed form, e.g. ``"A Bach chorale in F# minor for oboe, viola, cello and bassoon
        at 92 BPM in 4/4, with drums."``; a drawn one, e.g. ``"Lively traditional fiddle tune
        in D major, played solo on fiddle, in duple time (104 BPM)."``
    """
    subject = phrase
    if composer not in ("traditional", "") and composer not in phrase:
        subject = f"{composer} {phrase}"
    if rng is None:
        subject = f"{_article(subject)} {subject}"
        if voice:
            subject = f"The {voice} part of {subject[0].lower()}{subject[1:]}"
        if len(programs) == 1:
            scoring = f"played solo on {instruments.name(programs[0])}"
        else:
            scoring = f"for {instruments.describe(programs)}"
        ending = ", with drums." if drums else "."
        return f"{subject} in {key} {scoring} at {tempo} BPM in {metre}{ending}"
    return _drawn_caption(subject, key, programs, tempo, metre, drums, voice, drum_kit, rng)


def _drawn_caption(
    subject: str,
    key: str,
    programs: list[int],
    tempo: int,
    metre: str,
    drums: bool,
    voice: str | None,
    drum_kit: str | None,
    rng: np.random.Generator,
) -> str:
    def pick(options: tuple[str, ...] | list[str]) -> str:
        return str(options[int(rng.integers(len(options)))])

    word = pick(tempo_words(tempo))
    how_fast = int(rng.integers(3))  # 0: BPM only, 1: the word only, 2: both
    if how_fast != 1 and rng.random() < 0.5:
        subject = f"{word} {subject}" if how_fast == 2 else subject
    elif how_fast != 0:
        subject = f"{word} {subject}"
        how_fast = 1
    if len(programs) == 1:
        solo = instruments.name(programs[0])
        scoring = pick((f"played solo on {solo}", f"on solo {solo}", f"for {solo} alone"))
    elif rng.random() < 0.3:
        scoring = pick(("for", "played by", "on")) + f" {_families(programs)}"
    else:
        scoring = pick(("for", "played by", "scored for")) + f" {instruments.describe(programs)}"
    key_words = pick((f"in {key}", f"in the key of {key}", f"in {key}"))
    metre_choice = rng.random()
    if metre_choice < 0.45:
        metre_words = f"in {metre}"
    elif metre_choice < 0.8 and metre in METRE_WORDS:
        metre_words = f"in {pick(METRE_WORDS[metre])}"
    else:
        metre_words = ""
    bpm = f"{tempo} BPM" if how_fast != 1 else ""
    drum_words = pick(DRUM_PHRASES).format(kit=drum_kit or "standard") if drums else ""
    pattern = int(rng.integers(3))
    if voice:
        subject = f"the {voice} part of {_article(subject).lower()} {subject}"
    elif pattern != 2:
        subject = f"{_article(subject).lower()} {subject}"
    if pattern == 0:
        tail = ", ".join(part for part in (metre_words, f"at {bpm}" if bpm else "") if part)
        words = [f"{subject} {key_words} {scoring}", tail, drum_words]
    elif pattern == 1:
        words = [f"{subject} {key_words}", scoring, drum_words, metre_words, bpm]
    else:
        rest = " ".join(part for part in (metre_words, f"({bpm})" if bpm else "") if part)
        words = [f"{subject} {key_words}", f"{scoring} {rest}".strip(), drum_words]
    text = ", ".join(part for part in words if part)
    return text[0].upper() + text[1:] + "."


def caption_samples(count: int, *, seed: int = 0) -> list[str]:
    """``count`` drawn captions of random labels of the built-in styles (e.g. for a tokenizer).

    Every style, key, instrument, tempo band, metre and drum phrase the built-in corpus
    writes appears among a few thousand of them.
    """
    from musicssl.builtin.styles import STYLES

    rng = np.random.default_rng(seed)
    styles = sorted(STYLES)
    tonics = ("C", "C#", "Db", "D", "Eb", "E", "F", "F#", "Gb", "G", "Ab", "A", "Bb", "B")
    programs = sorted(instruments.INSTRUMENTS)
    metres = sorted(METRE_WORDS)
    kits = sorted(instruments.DRUM_KITS.values())
    samples = []
    for _ in range(count):
        style = STYLES[styles[int(rng.integers(len(styles)))]]
        composers = STYLE_COMPOSERS.get(style.name, ("",))
        voices = [programs[int(i)] for i in rng.integers(len(programs), size=rng.integers(1, 6))]
        samples.append(
            caption(
                phrase=style.phrase,
                composer=composers[int(rng.integers(len(composers)))],
                key=f"{tonics[int(rng.integers(len(tonics)))]} "
                f"{('major', 'minor')[int(rng.integers(2))]}",
                programs=voices,
                tempo=int(rng.integers(40, 241)),
                metre=metres[int(rng.integers(len(metres)))],
                drums=bool(rng.random() < 0.3),
                drum_kit=kits[int(rng.integers(len(kits)))],
                rng=rng,
            )
        )
    return samples
