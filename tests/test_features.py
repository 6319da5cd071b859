"""Mel scale, mel filterbank, LogMel and CQT: hand values, known-answer tones, batching, librosa."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
import torch

from musicssl.errors import MusicSSLError
from musicssl.features import CQT, LogMel, hz_to_mel, mel_filterbank, mel_to_hz, nnaudio_cqt


def _sine(freq: float, *, sr: int, num_samples: int, amplitude: float = 0.5) -> torch.Tensor:
    t = torch.arange(num_samples, dtype=torch.float64) / sr
    return (amplitude * torch.sin(2 * math.pi * freq * t)).float()


def _librosa():
    return pytest.importorskip("librosa", reason="librosa (the dev extra) is not installed")


def test_mel_scales_by_hand():
    # Slaney: 3 mels per 200 Hz up to 1 kHz (= 15 mels), then 27 mels per factor 6.4.
    assert hz_to_mel(500.0).item() == pytest.approx(7.5)
    assert hz_to_mel(1000.0).item() == pytest.approx(15.0)
    assert hz_to_mel(6400.0).item() == pytest.approx(42.0)
    # HTK: 2595 * log10(1 + f / 700); f = 700 Hz gives 2595 * log10(2).
    assert hz_to_mel(700.0, mel_scale="htk").item() == pytest.approx(2595 * math.log10(2))
    freqs = torch.tensor([0.0, 55.0, 440.0, 999.0, 1000.0, 4186.0, 11025.0], dtype=torch.float64)
    for scale in ("slaney", "htk"):
        back = mel_to_hz(hz_to_mel(freqs, mel_scale=scale), mel_scale=scale)
        torch.testing.assert_close(back, freqs)
    with pytest.raises(MusicSSLError, match="mel_scale"):
        hz_to_mel(1.0, mel_scale="bark")  # type: ignore[arg-type]


def test_mel_filterbank_tiny_by_hand():
    # sr 8000, n_fft 8: bins at 0, 1000, 2000, 3000, 4000 Hz. Two Slaney bands over 0..4000 Hz:
    # mel(4000) = 15 + 27 ln(4) / ln(6.4) = 35.1637; edges at 0, 1/3, 2/3, 1 of that:
    # 11.7212 mel -> 781.4 Hz (linear part), 23.4425 mel -> 1786.82 Hz (log part), 4000 Hz.
    top = 15 + 27 * math.log(4) / math.log(6.4)
    e1 = (top / 3) * 200 / 3
    e2 = 1000 * math.exp((2 * top / 3 - 15) * math.log(6.4) / 27)
    assert (e1, e2) == (pytest.approx(781.42, abs=0.01), pytest.approx(1786.82, abs=0.01))
    # Band 0 (0, e1, e2): only the 1000 Hz bin is inside, on the falling side.
    # Band 1 (e1, e2, 4000): 1000 Hz rising; 2000 and 3000 Hz falling.
    expected = [
        [0.0, (e2 - 1000) / (e2 - e1), 0.0, 0.0, 0.0],
        [0.0, (1000 - e1) / (e2 - e1), (4000 - 2000) / (4000 - e2), (4000 - 3000) / (4000 - e2), 0],
    ]
    unit_height = mel_filterbank(sr=8000, n_fft=8, n_mels=2, norm=None)
    torch.testing.assert_close(unit_height, torch.tensor(expected), rtol=1e-5, atol=1e-7)
    # Slaney normalisation scales band m by 2 / (upper - lower).
    area = mel_filterbank(sr=8000, n_fft=8, n_mels=2)
    scale = torch.tensor([[2 / e2], [2 / (4000 - e1)]])
    torch.testing.assert_close(area, torch.tensor(expected) * scale, rtol=1e-5, atol=1e-9)


def test_mel_filterbank_triangles_tile_and_have_unit_area():
    sr, n_fft = 16000, 4096
    unit_height = mel_filterbank(sr=sr, n_fft=n_fft, n_mels=40, mel_scale="htk", norm=None)
    centres = mel_to_hz(torch.linspace(0, hz_to_mel(8000.0, mel_scale="htk").item(), 42))[1:-1]
    bin_hz = torch.linspace(0, sr / 2, n_fft // 2 + 1)
    inside = (bin_hz >= centres[0]) & (bin_hz <= centres[-1])
    # Between the first and last centres, neighbouring triangles add up to one.
    column_sums = unit_height.sum(dim=0)[inside]
    torch.testing.assert_close(column_sums, torch.ones_like(column_sums), rtol=0, atol=1e-5)
    # Slaney-normalised triangles have unit area in Hz (sum of weights times bin width).
    areas = mel_filterbank(sr=sr, n_fft=n_fft, n_mels=40).sum(dim=1) * (sr / n_fft)
    torch.testing.assert_close(areas, torch.ones(40), rtol=0.03, atol=0)


def test_mel_filterbank_matches_librosa_if_installed():
    # librosa is test-only (the dev extra): without it this cross-check is skipped, and the
    # tests above still check the filterbank's own properties.
    librosa = _librosa()
    for mel_scale, norm in [("slaney", "slaney"), ("htk", None)]:
        ours = mel_filterbank(
            sr=22050, n_fft=2048, n_mels=96, f_min=30.0, mel_scale=mel_scale, norm=norm
        )
        reference = librosa.filters.mel(
            sr=22050, n_fft=2048, n_mels=96, fmin=30.0, htk=mel_scale == "htk", norm=norm
        )
        np.testing.assert_allclose(ours.numpy(), reference, rtol=1e-5, atol=1e-8)


def test_mel_filterbank_rejects_bad_ranges():
    with pytest.raises(MusicSSLError, match="f_max=9000"):
        mel_filterbank(sr=16000, n_fft=512, n_mels=64, f_max=9000.0)
    with pytest.raises(MusicSSLError, match="f_min"):
        mel_filterbank(sr=16000, n_fft=512, n_mels=64, f_min=500.0, f_max=100.0)


def test_sine_peaks_in_its_mel_band():
    sr, n_mels = 16000, 64
    log_mel = LogMel(sr=sr, n_fft=1024, hop_length=256, n_mels=n_mels)
    edges = mel_to_hz(torch.linspace(0, hz_to_mel(sr / 2).item(), n_mels + 2))
    centres = edges[1:-1]
    # At a band's centre its triangle peaks and both neighbours' triangles reach zero; 440 Hz
    # and 3 kHz lie between centres, where the band of the nearest centre weighs most.
    for freq in [centres[10].item(), centres[40].item(), 440.0, 3000.0]:
        spectrum = log_mel(_sine(freq, sr=sr, num_samples=sr // 2)).mean(dim=-1)  # (n_mels,)
        nearest = int((centres - freq).abs().argmin())
        assert int(spectrum.argmax()) == nearest, freq


def test_log_mel_gain_moves_every_band_by_the_same_decibels():
    gen = torch.Generator().manual_seed(0)
    noise = torch.randn(8000, generator=gen)
    log_mel = LogMel(sr=16000, n_fft=512, hop_length=160, n_mels=40)
    gain_db = -12.0
    shifted = log_mel(noise * 10 ** (gain_db / 20)) - log_mel(noise)
    torch.testing.assert_close(shifted, torch.full_like(shifted, gain_db), rtol=0, atol=1e-3)


def test_log_mel_shapes_batching_and_silence():
    log_mel = LogMel(sr=16000, n_fft=512, hop_length=256, n_mels=32, amin=1e-10)
    gen = torch.Generator().manual_seed(1)
    audio = torch.randn(2, 3, 4000, generator=gen)
    batched = log_mel(audio)
    assert batched.shape == (2, 3, 32, 1 + 4000 // 256) == (2, 3, 32, log_mel.num_frames(4000))
    torch.testing.assert_close(batched[1, 2], log_mel(audio[1, 2]), rtol=1e-5, atol=1e-4)
    silence = log_mel(torch.zeros(1000))
    torch.testing.assert_close(silence, torch.full_like(silence, -100.0))  # 10 log10(1e-10)
    # Filters and window follow from the arguments and stay out of checkpoints.
    assert dict(log_mel.state_dict()) == {}


def test_log_mel_stays_float32_under_autocast():
    log_mel = LogMel(sr=16000, n_fft=512, hop_length=256, n_mels=32)
    audio = torch.randn(2, 2000)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = log_mel(audio)
    assert out.dtype == torch.float32
    torch.testing.assert_close(out, log_mel(audio))


def test_log_mel_rejects_bad_audio():
    log_mel = LogMel(sr=16000, n_fft=512, hop_length=256, n_mels=32)
    with pytest.raises(MusicSSLError, match=r"\(2, 0\)"):
        log_mel(torch.zeros(2, 0))
    with pytest.raises(MusicSSLError, match="int64"):
        log_mel(torch.zeros(100, dtype=torch.int64))


def _midi_hz(pitch: float) -> float:
    return 440.0 * 2.0 ** ((pitch - 69) / 12)


def _chords(sr: int) -> torch.Tensor:
    """Two seconds of music from the built-in synthesizer: piano chords over a bass line."""
    from musicssl.builtin.render import NOTE_OFF, NOTE_ON, Event, Synth

    synth = Synth(sr)
    half_second = sr // 2
    events = []
    for i, chord in enumerate([(60, 64, 67), (57, 60, 64), (53, 57, 60, 65), (55, 59, 62, 67)]):
        start, end = synth.snap(i * half_second), synth.snap((i + 1) * half_second - 100)
        for key in chord:
            events += [Event(start, NOTE_ON, 0, key, 0.8), Event(end, NOTE_OFF, 0, key)]
        bass = synth.snap(i * half_second + half_second // 2)
        events += [
            Event(bass, NOTE_ON, 1, chord[0] - 24, 0.7),
            Event(end, NOTE_OFF, 1, chord[0] - 24),
        ]
    return torch.from_numpy(synth.render(events, {0: 0, 1: 32}, 4 * half_second))


def test_cqt_tone_peaks_at_its_midi_pitch():
    # fmin = C1 (MIDI 24) and 36 bins per octave: MIDI pitch p sits in bin 3 * (p - 24).
    cqt = CQT(sr=16000, hop_length=256)
    assert cqt.frequencies()[3 * (69 - 24)].item() == pytest.approx(440.0)
    for pitch in [28, 45, 60, 69, 81.5, 100]:
        spectrum = cqt(_sine(_midi_hz(pitch), sr=16000, num_samples=16000))[:, 8:-8].mean(-1)
        assert int(spectrum.argmax()) == round(3 * (pitch - 24)), pitch


def test_cqt_of_a_signal_shorter_than_a_hop_is_one_frame():
    cqt = CQT(sr=16000, hop_length=128, fmin=65.0, n_bins=120, bins_per_octave=24)
    x = torch.randn(2, 10)
    out = cqt(x)
    assert out.shape == (2, 120, 1) and torch.isfinite(out).all()
    # The padding is silence after the signal: the frame is the one the signal padded by
    # hand gives.
    torch.testing.assert_close(out, cqt(torch.nn.functional.pad(x, (0, 118)))[..., :1])


def test_cqt_shapes_batching_gain_and_silence():
    cqt = CQT(sr=16000, hop_length=128, fmin=65.0, n_bins=120, bins_per_octave=24)
    audio = 0.1 * torch.randn(2, 3, 5001, generator=torch.Generator().manual_seed(0))
    batched = cqt(audio)
    assert batched.shape == (2, 3, 120, 1 + 5001 // 128) == (2, 3, 120, cqt.num_frames(5001))
    torch.testing.assert_close(batched[1, 2], cqt(audio[1, 2]), rtol=1e-5, atol=1e-3)
    # Linear in the signal: a gain of g dB adds g dB to every bin above the floor.
    shifted = cqt(audio * 10 ** (-6 / 20)) - batched
    torch.testing.assert_close(shifted, torch.full_like(shifted, -6.0), rtol=0, atol=5e-3)
    magnitude = CQT(sr=16000, hop_length=128, fmin=65.0, n_bins=120, bins_per_octave=24, db=False)
    torch.testing.assert_close(20 * torch.log10(magnitude(audio)), batched, rtol=0, atol=1e-3)
    silence = cqt(torch.zeros(1000))
    torch.testing.assert_close(silence, torch.full_like(silence, -100.0))  # 20 log10(1e-5)
    assert dict(cqt.state_dict()) == {}
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert cqt(audio).dtype == torch.float32


def test_cqt_rejects_bad_arguments_and_audio():
    # 84 bins in 3 octaves of 36: the hop is halved twice, so it must divide by 4.
    with pytest.raises(MusicSSLError, match="hop_length.*2\\^\\(num_octaves - 1\\) = 4.*got 250"):
        CQT(sr=16000, hop_length=250, n_bins=84)
    with pytest.raises(MusicSSLError, match="passes sr / 2 = 8000"):
        CQT(sr=16000, n_bins=286)  # top bin 7901 Hz, its band to 8016 Hz
    with pytest.raises(MusicSSLError, match="fmin=0"):
        CQT(sr=16000, fmin=0)
    cqt = CQT(sr=16000, n_bins=36)
    with pytest.raises(MusicSSLError, match="CQT.*int16"):
        cqt(torch.zeros(2, 1000, dtype=torch.int16))
    with pytest.raises(MusicSSLError, match=r"\(3, 0\)"):
        cqt(torch.zeros(3, 0))


def test_cqt_equals_nnaudios_own_forward_pass():
    # Ours halves the rate through the FFT; nnAudio's forward pass by a strided conv1d.
    for kwargs, num_samples in [({"n_bins": 252}, 16001), ({"n_bins": 50, "fmin": 100.0}, 999)]:
        cqt = CQT(sr=16000, hop_length=128, db=False, **kwargs)
        audio = 0.1 * torch.randn(3, num_samples, generator=torch.Generator().manual_seed(0))
        options = {"fmin": cqt.fmin, "n_bins": cqt.n_bins, "bins_per_octave": cqt.bins_per_octave}
        reference = nnaudio_cqt(sr=16000, hop_length=128, **options)(audio)
        assert reference.shape == (3, kwargs["n_bins"], 1 + num_samples // 128)
        torch.testing.assert_close(cqt(audio), reference, rtol=1e-4, atol=1e-6)


def _relative_error(estimate: np.ndarray, reference: np.ndarray) -> float:
    return float(np.linalg.norm(estimate - reference) / np.linalg.norm(reference))


# Our magnitudes against librosa's: the same transform computed two ways. librosa sets a
# filter's length from the relative bandwidth (r^2 - 1) / (r^2 + 1), r = 2^(1/bins_per_octave),
# nnAudio from r - 1 (1% apart at 36 bins per octave, 3% at 12), and the two low-pass and
# halve the signal with different filters. Measured: 0.8-1.1% at 36 bins per octave, 2-2.5%
# at 12, on tones, noise and music; 3% is 0.26 dB.
CQT_TOLERANCE = 0.03


@pytest.mark.parametrize(
    ("sr", "hop_length", "n_bins", "bins_per_octave"),
    [(16000, 256, 252, 36), (22050, 512, 84, 12), (44100, 512, 84, 12)],
)
def test_cqt_matches_librosa_on_tone_noise_and_music(sr, hop_length, n_bins, bins_per_octave):
    librosa = _librosa()
    cqt = CQT(
        sr=sr, hop_length=hop_length, n_bins=n_bins, bins_per_octave=bins_per_octave, db=False
    )
    noise = 0.1 * torch.randn(sr, generator=torch.Generator().manual_seed(0))
    chords = _chords(16000).numpy()
    music = torch.from_numpy(librosa.resample(chords, orig_sr=16000, target_sr=sr)).float()
    a440 = _sine(440.0, sr=sr, num_samples=sr)
    for name, audio in [("a440", a440), ("noise", noise), ("music", music)]:
        with warnings.catch_warnings():  # its short low octaves warn that n_fft > length
            warnings.simplefilter("ignore", UserWarning)
            cqt_librosa = librosa.cqt(
                audio.numpy(),
                sr=sr,
                hop_length=hop_length,
                fmin=_midi_hz(24),
                n_bins=n_bins,
                bins_per_octave=bins_per_octave,
            )
        reference = np.abs(cqt_librosa)
        ours = cqt(audio).numpy()
        assert ours.shape == reference.shape, name
        assert _relative_error(ours, reference) < CQT_TOLERANCE, name
        peak = int(ours.mean(-1).argmax())
        assert peak == int(reference.mean(-1).argmax()), name
        if name == "a440":
            assert peak == bins_per_octave * (69 - 24) // 12
