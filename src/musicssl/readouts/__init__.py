"""Key and tempo of audio from STONE and tempo runs, calibrated on synthetic audio.

As with pitch (``musicssl.pitch``), the networks know key and tempo only up to a constant
shift of their outputs; harmonic tones and click tracks made here in code fix it when a run
is loaded. No label of any data set is read.

- ``load_key(run).key(waveform, sr)``: a key in mir_eval's spelling, ``"F# minor"``.
- ``load_tempo(run).tempo(waveform, sr)``: beats per minute.
"""

from musicssl.readouts.key import (
    KEY_PROFILES,
    KeyModel,
    cadence,
    key_name,
    load_key,
    profile_key,
)
from musicssl.readouts.tempo import TempoModel, click_track, load_tempo

__all__ = [
    "KEY_PROFILES",
    "KeyModel",
    "TempoModel",
    "cadence",
    "click_track",
    "key_name",
    "load_key",
    "load_tempo",
    "profile_key",
]
