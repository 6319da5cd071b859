"""SoundFont rendering of note events with midirenderer and TimGM6mb.

midirenderer (rustysynth, a pure-Rust SoundFont synthesizer, in a wheel that needs no system
library) renders a Standard MIDI File to 48 kHz stereo. The events become a one-track MIDI
file whose tick is one sample at 48 kHz; the result is downmixed and resampled to the corpus
rate with :mod:`musicssl.audio` (soxr).

The synthesizer applies events only between its blocks of 64 samples (1.33 ms at 48 kHz), so
events are scheduled on a grid: at 16 kHz every 64 samples (4 ms), where a block boundary
falls on a whole output sample. A note scheduled at a grid sample ``n`` starts at sample
``n`` exactly (:attr:`Synth.grid`, :meth:`Synth.snap`).
"""

from __future__ import annotations

import io
import os
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from types import ModuleType

import mido
import numpy as np
import soundfile as sf

from musicssl import audio
from musicssl.errors import MusicSSLError

DRUM_CHANNEL = 9
# Loudness normalisation: RMS target, and a peak ceiling that leaves headroom for PCM_16.
TARGET_RMS_DB = -20.0
PEAK_CEILING_DB = -1.0
FADE_OUT_SECONDS = 0.02

# What midirenderer fixes: its output rate and its synthesizer's block (rustysynth's default).
RENDER_RATE = 48000
BLOCK = 64
# At MIDI's default 120 quarter notes per minute, 24,000 ticks per quarter make a tick one
# sample at 48 kHz.
TICKS_PER_QUARTER = RENDER_RATE // 2
# Rendered past the clip's end and cut off, so the resampler's filter sees real signal there.
TAIL_SAMPLES = 1024
# MIDI controllers: channel volume, reverb and chorus sends (off: the audio stays dry, as
# the f0 labels describe it), and all sound off.
VOLUME, REVERB_SEND, CHORUS_SEND, ALL_SOUND_OFF = 7, 91, 93, 120
DEFAULT_VOLUME = 100  # the synthesizer's own default; lowered only if a render clips


# Event kinds, in the order they apply at one sample.
CUT = -1  # silence the channel at once (a monophonic instrument's next note)
NOTE_OFF = 0
NOTE_ON = 1


@dataclass(frozen=True, order=True)
class Event:
    """One synthesizer event.

    Ordered by sample, then kind: cuts and note-offs before note-ons, so a repeated note is
    released before it is struck again.

    Attributes:
        sample: sample index at which the event applies (a multiple of :attr:`Synth.grid`).
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


def snap(sample: float, grid: int) -> int:
    """The multiple of ``grid`` nearest to ``sample`` (halves round up)."""
    return grid * int(np.floor(sample / grid + 0.5))


def soundfont_path() -> str:
    """Path of the General MIDI SoundFont TimGM6mb.sf2 that ships inside pretty_midi."""
    import pretty_midi

    path = os.path.join(os.path.dirname(pretty_midi.__file__), "TimGM6mb.sf2")
    if not os.path.exists(path):
        raise MusicSSLError(f"{path}: the SoundFont that pretty_midi ships is missing")
    return path


def _midirenderer() -> ModuleType:
    try:
        import midirenderer
    except ImportError as error:
        raise MusicSSLError(
            "the built-in corpus needs midirenderer to render audio: run "
            "`pip install midirenderer` (or reinstall musicssl, which declares it)"
        ) from error
    return midirenderer


def check_renderer() -> None:
    """Raise :class:`MusicSSLError` now if the renderer cannot be used."""
    _midirenderer()
    soundfont_path()


class Synth:
    """A General MIDI synthesizer rendering mono float32 audio at a fixed rate.

    Args:
        sr: sample rate of the output in Hz.

    Attributes:
        grid: events fall on multiples of this many samples (64 at 16 kHz: 4 ms).
    """

    def __init__(self, sr: int) -> None:
        if sr <= 0:
            raise MusicSSLError(f"sr={sr}: the sample rate must be positive")
        self.sr = sr
        # The shortest whole number of output samples that is a whole number of blocks.
        self.grid = Fraction(BLOCK * sr, RENDER_RATE).numerator
        self._module = _midirenderer()
        self._soundfont = Path(soundfont_path()).read_bytes()

    def snap(self, sample: float) -> int:
        """The grid sample nearest to ``sample``."""
        return snap(sample, self.grid)

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
            events: events in any order, each on the grid; those at or after ``num_samples``
                are dropped.
            programs: General MIDI program of each melodic channel used.
            num_samples: length of the output.
            drum_kit: percussion kit (program number in bank 128) for channel 9, if any.

        Returns:
            Mono audio, float32, not normalised. Shape: (num_samples,).

        Raises:
            MusicSSLError: an event off the grid.
        """
        kept = sorted(event for event in events if event.sample < num_samples)
        for event in kept:
            if event.sample < 0 or event.sample % self.grid:
                raise MusicSSLError(
                    f"{event}: sample must be a non-negative multiple of {self.grid} "
                    f"(the synthesizer's grid at {self.sr} Hz); use Synth.snap"
                )
        channels = dict(programs)
        if drum_kit is not None:
            channels[DRUM_CHANNEL] = drum_kit
        length = -(-num_samples * RENDER_RATE // self.sr) + TAIL_SAMPLES
        volume = DEFAULT_VOLUME
        while True:
            midi = _midi_file(kept, channels, length, volume=volume, sr=self.sr)
            wav = self._module.render_wave_from(self._soundfont, midi)
            stereo, rate = sf.read(io.BytesIO(wav), dtype="float32", always_2d=True)
            # midirenderer clamps to 16 bits: a render that reaches full scale clipped, and
            # is rendered again at half the channel volume (the same events always take the
            # same path, so this stays deterministic).
            if np.abs(stereo).max(initial=0.0) < 1.0 - 2.0 / 32768 or volume < 8:
                break
            volume //= 2
        # Channels first and contiguous: the downmix is then 4x faster than on a strided view.
        channels_first = np.ascontiguousarray(stereo.T)  # (2, num_rendered)
        mono = audio.resample(audio.to_mono(channels_first), orig_sr=rate, target_sr=self.sr)
        out = np.zeros(num_samples, dtype=np.float32)
        usable = min(num_samples, len(mono))
        out[:usable] = mono[:usable]
        return out


def _midi_file(
    events: list[Event], channels: dict[int, int], length: int, *, volume: int, sr: int
) -> bytes:
    """A one-track MIDI file of sorted grid events; ``length`` is in ticks (48 kHz samples)."""
    track = mido.MidiTrack()
    for channel, program in sorted(channels.items()):
        for control, value in ((VOLUME, volume), (REVERB_SEND, 0), (CHORUS_SEND, 0)):
            message = mido.Message("control_change", channel=channel, control=control, value=value)
            track.append(message)
        track.append(mido.Message("program_change", channel=channel, program=program))
    now = 0
    for event in events:
        # The synthesizer applies an event at the first block boundary at or after its time.
        # Written half a block early, no rounding of that time can push it past its boundary.
        boundary = event.sample * RENDER_RATE // sr
        tick = max(0, boundary - BLOCK // 2)
        if event.kind == NOTE_ON:
            velocity = int(np.clip(round(event.velocity * 127), 1, 127))
            message = mido.Message(
                "note_on", channel=event.channel, note=event.key, velocity=velocity
            )
        elif event.kind == NOTE_OFF:
            message = mido.Message("note_off", channel=event.channel, note=event.key)
        else:
            message = mido.Message(
                "control_change", channel=event.channel, control=ALL_SOUND_OFF, value=0
            )
        track.append(message.copy(time=tick - now))
        now = tick
    # The renderer stops at the last event: the end of the track sets the length.
    track.append(mido.MetaMessage("end_of_track", time=max(0, length - now)))
    midi = mido.MidiFile(type=0, ticks_per_beat=TICKS_PER_QUARTER)
    midi.tracks.append(track)
    buffer = io.BytesIO()
    midi.save(file=buffer)
    return buffer.getvalue()


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
