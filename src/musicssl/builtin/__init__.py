"""The built-in labelled corpus: music21 scores rendered with a General MIDI SoundFont.

``build_corpus(out_dir, size="tiny" | "small" | "full", seed=0)`` cuts excerpts from the
scores bundled with music21 (Bach chorales, Palestrina masses, Monteverdi madrigals,
Haydn/Mozart/Beethoven string quartets, fiddle tunes of Ryan's Mammoth Collection, German
folk songs of the Essen collection), performs each with a random General MIDI ensemble, tempo,
transposition, dynamics and optional drums, and renders it with midirenderer and the
TimGM6mb SoundFont shipped inside pretty_midi.

``manifest.jsonl`` has one JSON object per clip:

- ``clip_id``; ``path`` of the WAV relative to the manifest's folder (``audio/<clip_id>.wav``,
  16 kHz, mono, PCM_16); ``duration`` (s); ``sr``; ``channels`` (1); ``sha256`` of the
  WAV's bytes (as ``musicssl data index`` writes it).
- ``split``: ``train``/``valid``/``test``, by work (all clips of a piece, and all movements
  of a quartet, share a split), about 70/15/15 of pieces in each style; a piece's split
  depends on its name only, never on the seed or the size.
- ``style`` (one of ``bach_chorale``, ``palestrina_mass``, ``monteverdi_madrigal``,
  ``string_quartet``, ``fiddle_tune``, ``german_folk_song``); ``composer`` (``"Bach"``, ...,
  ``"traditional"``); ``piece_id``; ``title``; ``source`` (path in music21's corpus) and
  ``source_number`` (tune number in a multi-tune ABC file, else null); ``excerpt_start`` and
  ``excerpt_end`` (score offsets in quarter notes; notes with onsets in this range play);
  ``score_parts`` (indices of the score parts played).
- ``key``: tonic and mode after transposition, ``"F# minor"``, ``"Bb major"`` (mir_eval's
  format): music21's key analysis (``analyze("key")``) of exactly the notes played.
- ``tempo``: quarter notes per minute (BPM of the quarter note, whatever the metre);
  ``metre``: time signature at the excerpt start, ``"6/8"``; ``transpose``: semitones.
- ``programs``: General MIDI program per rendered line; ``instruments``: their names;
  ``families``: their GM families; ``drums`` (bool) and ``drum_kit`` (name or null);
  ``velocity``: the clip's base note velocity in (0, 1] (audio is loudness-normalised).
- ``monophonic``: one line on one instrument without drums. Then ``f0`` is the path of a
  float32 ``.npy`` (``f0/<clip_id>.npy``) with the f0 in Hz of frame ``k`` at ``k * f0_hop``
  seconds (0 where no note sounds) and ``f0_hop`` is 0.01; otherwise both are null.
- ``caption``: a sentence built from the labels, e.g. "A Bach chorale in F# minor for oboe,
  viola, cello and bassoon at 92 BPM in 4/4, with drums."

``transfer/`` beside it holds the test clips played again by instruments of families the
usual clips never use (``transfer/manifest.jsonl``, same fields and clip ids, split
``test``; ``transfer/audio``, ``transfer/f0``): the usual clips draw their ensembles from
piano, strings, ensemble (choir, voice), reed, pipe and ethnic instruments, the transfer
renders from organ, guitar, bass, brass and synth lead (``instruments.CORPUS_FAMILIES``,
``instruments.TRANSFER_FAMILIES``); drums play in both. ``musicssl evaluate --tasks
transfer`` tests probes fitted on the usual clips on them (``builtin.transfer``).
"""

from musicssl.builtin.build import SIZES, build_corpus, summarize

__all__ = ["SIZES", "build_corpus", "summarize"]
