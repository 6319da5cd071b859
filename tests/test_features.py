"""Mel scale, mel filterbank and LogMel: hand values, known-answer tones, batching."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from musicssl.errors import MusicSSLError
from musicssl.features import LogMel, hz_to_mel, mel_filterbank, mel_to_hz


def _sine(freq: float, *, sr: int, num_samples: int, amplitude: float = 0.5) -> torch.Tensor:
    t = torch.arange(num_samples, dtype=torch.float64) / sr
    return (amplitude * torch.sin(2 * math.pi * freq * t)).float()


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
    # librosa is not a dependency (only the benchmarks install it): without it this cross-check
    # is skipped, and the tests above still check the filterbank's own properties.
    librosa = pytest.importorskip(
        "librosa", reason="librosa not installed: it is a benchmark peer, not a dependency"
    )
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
