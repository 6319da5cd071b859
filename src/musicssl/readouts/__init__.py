"""Key and tempo of audio from STONE and tempo runs, calibrated on synthetic audio.

As with pitch (``musicssl.pitch``), the networks know key and tempo only up to a constant
shift of their outputs; harmonic tones and click tracks made here in code fix it when a run
is loaded. No label of any data set is read.

- ``load_key(run).key(waveform, sr)``: a key in mir_eval's spelling, ``"F# minor"``.
- ``load_tempo(run).tempo(waveform, sr)``: beats per minute; ``.read(waveform, sr)`` also
  gives the network's confidence, 0 to 1 (below about 0.2: no beat to speak of).
"""

from musicssl.readouts.key import (
    KEY_PROFILES,
    KeyModel,
    cadence,
    key_name,
    load_key,
    profile_key,
)
from musicssl.readouts.tempo import TempoModel, TempoReading, click_track, load_tempo

__all__ = [
    "KEY_PROFILES",
    "KeyModel",
    "TempoModel",
    "TempoReading",
    "cadence",
    "click_track",
    "key_name",
    "load_key",
    "load_tempo",
    "profile_key",
]
