"""The built-in labelled corpus: music21 scores rendered with a General MIDI SoundFont."""

from musicssl.builtin.build import SIZES, build_corpus, summarize

__all__ = ["SIZES", "build_corpus", "summarize"]
