"""Sample-accurate SoundFont rendering of note events with tinysoundfont and TimGM6mb.

The synthesizer renders straight at the corpus sample rate (no resampling), one segment per
gap between events: render up to the next event's sample, apply the event, go on. A note
scheduled at ``t`` seconds therefore starts at sample ``round(t * sr)`` exactly.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np

from musicssl.errors import MusicSSLError

DRUM_CHANNEL = 9
# Loudness normalisation: RMS target, and a peak ceiling that leaves headroom for PCM_16.
TARGET_RMS_DB = -20.0
PEAK_CEILING_DB = -1.0
FADE_OUT_SECONDS = 0.02


# Event kinds, in the order they apply at one sample.
CUT = -1  # silence the channel within about 10 ms (a monophonic instrument's next note)
NOTE_OFF = 0
NOTE_ON = 1


@dataclass(frozen=True, order=True)
class Event:
    """One synthesizer event.

    Ordered by sample, then kind: cuts and note-offs before note-ons, so a repeated note is
    released before it is struck again.

    Attributes:
        sample: sample index at which the event applies.
        kind: :data:`CUT`, :data:`NOTE_OFF` or :data:`NOTE_ON`.
        channel: MIDI channel (9 is percussion).
        key: MIDI note number.
        velocity: note-on velocity in (0, 1]; ignored for note-offs.
    """

    sample: int
    kind: int
    channel: int
    key: int
    velocity: float = 0.0


def soundfont_path() -> str:
    """Path of the General MIDI SoundFont TimGM6mb.sf2 that ships inside pretty_midi."""
    import pretty_midi

    path = os.path.join(os.path.dirname(pretty_midi.__file__), "TimGM6mb.sf2")
    if not os.path.exists(path):
        raise MusicSSLError(f"{path}: the SoundFont that pretty_midi ships is missing")
    return path


def _tinysoundfont():
    try:
        from tinysoundfont import _tinysoundfont
    except ImportError as error:
        raise MusicSSLError(
            "the built-in corpus needs tinysoundfont to render audio: run "
            "`pip install --no-deps tinysoundfont` (--no-deps: it declares pyaudio, which "
            "musicssl does not need and which does not build without PortAudio)"
        ) from error
    return _tinysoundfont


def check_renderer() -> None:
    """Raise :class:`MusicSSLError` now if the renderer cannot be used."""
    _tinysoundfont()
    soundfont_path()


class Synth:
    """A General MIDI synthesizer rendering mono float32 audio at a fixed rate.

    Args:
        sr: sample rate in Hz.
    """

    def __init__(self, sr: int) -> None:
        module = _tinysoundfont()
        self.sr = sr
        self._module = module
        self._loaded = module.SoundFont(soundfont_path())

    def render(
        self,
        events: list[Event],
        programs: dict[int, int],
        num_samples: int,
        *,
        drum_kit: int | None = None,
    ) -> np.ndarray:
        """Render events into a buffer of ``num_samples`` samples.

        Args:
            events: events in any order; those at or after ``num_samples`` are dropped.
            programs: General MIDI program of each melodic channel used.
            num_samples: length of the output.
            drum_kit: percussion kit (program number in bank 128) for channel 9, if any.

        Returns:
            Mono audio, float32, not normalised. Shape: (num_samples,).
        """
        # A fresh clone per clip (it shares the samples, so it costs nothing): reset() leaves
        # voice state behind that changes the next notes, which would make a clip depend on
        # what its worker rendered before.
        soundfont = self._module.SoundFont(self._loaded)
        soundfont.set_output(self._module.OutputMode.Mono, self.sr, 0.0)
        for channel, program in programs.items():
            soundfont.channel_set_bank(channel, 0)
            soundfont.channel_set_preset_number(channel, program, False)
        if drum_kit is not None:
            soundfont.channel_set_preset_number(DRUM_CHANNEL, drum_kit, True)
        out = np.zeros(num_samples, dtype=np.float32)
        position = 0
        for event in sorted(events):
            if event.sample >= num_samples:
                break
            if event.sample > position:
                soundfont.render(out[position : event.sample].view(np.uint8))
                position = event.sample
            if event.kind == NOTE_ON:
                soundfont.channel_note_on(event.channel, event.key, event.velocity)
            elif event.kind == NOTE_OFF:
                soundfont.channel_note_off(event.channel, event.key)
            else:
                soundfont.channel_sounds_off(event.channel)
        if position < num_samples:
            soundfont.render(out[position:].view(np.uint8))
        return out


def silent_fraction(audio: np.ndarray, sr: int, *, block_seconds: float = 0.25) -> float:
    """Fraction of blocks that are silent: 60 dB below the loudest block, or below -80 dBFS.

    Args:
        audio: mono audio. Shape: (num_samples,).
        sr: sample rate in Hz.
        block_seconds: block length.

    Returns:
        A number in [0, 1]; 1 for all-silent audio.
    """
    block = max(1, int(block_seconds * sr))
    usable = audio[: len(audio) // block * block].astype(np.float64).reshape(-1, block)
    if usable.size == 0:
        return 1.0
    rms = np.sqrt(np.mean(usable**2, axis=1))
    threshold = max(1e-4, rms.max() * 1e-3)
    return float(np.mean(rms < threshold))


def normalise(audio: np.ndarray, sr: int) -> np.ndarray:
    """Scale to the RMS target without passing the peak ceiling, and fade out the last 20 ms.

    The fade-out avoids a click where the clip cuts sounding notes.

    Args:
        audio: mono audio, float32. Shape: (num_samples,).
        sr: sample rate in Hz.

    Returns:
        Scaled audio, float32, peak at most -1 dBFS. Shape: (num_samples,).
    """
    x = audio.astype(np.float64)
    fade = min(len(x), int(FADE_OUT_SECONDS * sr))
    if fade > 0:
        x[len(x) - fade :] *= np.linspace(1.0, 0.0, fade)
    rms = float(np.sqrt(np.mean(x**2)))
    peak = float(np.abs(x).max())
    if peak == 0.0:
        return x.astype(np.float32)
    gain = min(10 ** (TARGET_RMS_DB / 20) / rms, 10 ** (PEAK_CEILING_DB / 20) / peak)
    return (x * gain).astype(np.float32)
