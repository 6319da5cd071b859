"""evaluate.degrade: each stage's known answer, and degrade_corpus's determinism and reuse."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import asdict
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from scipy import signal

from musicssl.errors import MusicSSLError
from musicssl.evaluate import degrade
from musicssl.evaluate.degrade import (
    add_noise,
    apply_gain,
    degrade_corpus,
    low_pass,
    shift_pitch,
)
from musicssl.files import clip_rng

SR = 16000


def _snr_db(reference: np.ndarray, estimate: np.ndarray) -> float:
    return float(10 * np.log10(np.sum(reference**2) / np.sum((reference - estimate) ** 2)))


def _peak_hz(audio: np.ndarray, sr: int) -> float:
    """Frequency of the largest spectral peak, refined by parabolic interpolation."""
    spectrum = np.abs(np.fft.rfft(audio * np.hanning(len(audio))))
    k = int(np.argmax(spectrum))
    a, b, c = np.log(spectrum[k - 1 : k + 2])
    return (k + 0.5 * (a - c) / (a - 2 * b + c)) * sr / len(audio)


def _spectrum(audio: np.ndarray) -> np.ndarray:
    """Log power spectrum between 80 Hz and 2 kHz, below every low-pass cut-off."""
    freqs, power = signal.welch(audio, fs=SR, nperseg=2048)
    return np.log(power[(freqs > 80) & (freqs < 2000)] + 1e-10)


def _clip(fundamental: float, seed: int, seconds: float = 2.0) -> np.ndarray:
    """A harmonic tone with a little noise. Shape: (num_samples,)."""
    t = np.arange(int(seconds * SR)) / SR
    tone = sum(np.sin(2 * np.pi * fundamental * h * t) / h for h in range(1, 6))
    noise = np.random.default_rng(seed).standard_normal(len(t))
    return (0.3 * tone + 0.01 * noise).astype(np.float32)


def _corpus(folder: Path, splits: dict[str, str]) -> Path:
    """A corpus of harmonic tones (one fundamental per clip) with a manifest."""
    (folder / "audio").mkdir(parents=True)
    rows = []
    for number, (clip_id, split) in enumerate(splits.items()):
        sf.write(str(folder / "audio" / f"{clip_id}.wav"), _clip(110.0 * 1.5**number, number), SR)
        rows.append({"clip_id": clip_id, "path": f"audio/{clip_id}.wav", "split": split, "sr": SR})
    (folder / "manifest.jsonl").write_text("".join(json.dumps(row) + "\n" for row in rows))
    return folder


CLIPS = {"a-00": "train", "b-00": "test", "c-00": "test", "d-00": "valid", "e-00": "test"}
TEST_IDS = [clip_id for clip_id, split in CLIPS.items() if split == "test"]


@pytest.fixture
def corpus(tmp_path: Path) -> Path:
    return _corpus(tmp_path / "corpus", CLIPS)


def _decoded(corpus: Path) -> dict[str, np.ndarray]:
    folder = corpus / "degraded"
    return {
        path.stem: sf.read(str(path), dtype="float32")[0] for path in sorted(folder.glob("*.ogg"))
    }


def _log(corpus: Path) -> list[dict]:
    text = (corpus / "degraded" / "degradations.jsonl").read_text()
    return [json.loads(line) for line in text.splitlines()]


def test_clip_rng_depends_on_seed_and_clip_only() -> None:
    draws = clip_rng(3, "bach-bwv1-00").random(4)
    np.testing.assert_array_equal(draws, clip_rng(3, "bach-bwv1-00").random(4))
    assert not np.array_equal(draws, clip_rng(4, "bach-bwv1-00").random(4))
    assert not np.array_equal(draws, clip_rng(3, "bach-bwv1-01").random(4))
    # Another interpreter with another string-hash seed draws the same numbers.
    code = (
        "from musicssl.files import clip_rng;"
        "print(repr(clip_rng(3, 'bach-bwv1-00').random(4).tolist()))"
    )
    env = {**os.environ, "PYTHONHASHSEED": "12345"}
    out = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True
    )
    assert out.stdout.strip() == repr(draws.tolist())


@pytest.mark.parametrize("semitones", [0.5, -0.5, 0.2])
def test_shift_pitch_moves_a_tone_by_the_ratio_and_keeps_the_length(semitones: float) -> None:
    t = np.arange(2 * SR) / SR
    tone = np.sin(2 * np.pi * 440.0 * t).astype(np.float32)
    shifted = shift_pitch(tone, sr=SR, semitones=semitones)
    assert shifted.shape == tone.shape and shifted.dtype == np.float32
    ratio = 2 ** (semitones / 12)
    # A faster copy ends early: measure where it still plays.
    playing = shifted[: int(len(tone) / max(ratio, 1.0)) - 64]
    assert _peak_hz(playing, SR) == pytest.approx(440.0 * ratio, abs=0.3)
    if ratio > 1:
        tail = shifted[int(len(tone) / ratio) + 64 :]
        assert np.max(np.abs(tail)) < 1e-3  # padded with silence


def test_low_pass_removes_energy_above_its_cutoff_and_keeps_below() -> None:
    noise = np.random.default_rng(0).standard_normal(4 * SR).astype(np.float32)
    filtered = low_pass(noise, sr=SR, cutoff_hz=3000.0)
    freqs, before = signal.welch(noise, fs=SR, nperseg=1024)
    _, after = signal.welch(filtered, fs=SR, nperseg=1024)
    passband = freqs < 2000
    stopband = freqs > 4500
    loss_pass = 10 * np.log10(after[passband].sum() / before[passband].sum())
    loss_stop = 10 * np.log10(after[stopband].sum() / before[stopband].sum())
    assert loss_pass > -0.5
    assert loss_stop < -40
    # Zero phase: no delay, so the pass band lines up with the input.
    tone = np.sin(2 * np.pi * 500.0 * np.arange(SR) / SR).astype(np.float32)
    middle = slice(2000, -2000)
    assert _snr_db(tone[middle], low_pass(tone, sr=SR, cutoff_hz=3000.0)[middle]) > 30


@pytest.mark.parametrize("snr_db", [15.0, 30.0])
def test_add_noise_reaches_the_requested_snr(snr_db: float) -> None:
    clip = _clip(220.0, 0)
    noisy = add_noise(clip, snr_db=snr_db, rng=np.random.default_rng(1))
    assert _snr_db(clip, noisy) == pytest.approx(snr_db, abs=0.1)
    residual = noisy - clip
    # White: as much power above 4 kHz as below, within Welch's noise.
    freqs, power = signal.welch(residual, fs=SR, nperseg=512)
    assert power[freqs > 4000].mean() / power[(freqs > 0) & (freqs < 4000)].mean() == (
        pytest.approx(1.0, abs=0.15)
    )


def test_apply_gain_changes_rms_by_the_gain_and_never_clips() -> None:
    clip = _clip(220.0, 0) * 0.5
    quieter, applied = apply_gain(clip, gain_db=-6.0)
    assert applied == -6.0
    assert 20 * np.log10(np.std(quieter) / np.std(clip)) == pytest.approx(-6.0, abs=1e-3)
    peak = np.max(np.abs(clip))
    loud, applied = apply_gain(clip, gain_db=40.0)
    assert np.max(np.abs(loud)) == pytest.approx(degrade.CEILING, rel=1e-5)
    assert applied == pytest.approx(20 * np.log10(degrade.CEILING / peak), abs=1e-6)


def test_degrade_draws_in_range_keeps_length_and_repeats_with_the_seed() -> None:
    clip = _clip(220.0, 0)
    for seed in range(20):
        out, params = degrade.degrade(clip, SR, rng=np.random.default_rng(seed))
        again, same = degrade.degrade(clip, SR, rng=np.random.default_rng(seed))
        np.testing.assert_array_equal(out, again)
        assert params == same
        assert out.shape == clip.shape and out.dtype == np.float32
        assert degrade.SEMITONES[0] <= params.semitones <= degrade.SEMITONES[1]
        assert degrade.CUTOFF_HZ[0] <= params.cutoff_hz <= degrade.CUTOFF_HZ[1]
        assert degrade.SNR_DB[0] <= params.snr_db <= degrade.SNR_DB[1]
        assert degrade.GAIN_DB[0] <= params.gain_db <= degrade.GAIN_DB[1]
        assert degrade.QUALITY[0] <= params.quality <= degrade.QUALITY[1]
        assert np.max(np.abs(out)) <= degrade.CEILING + 1e-6
    with pytest.raises(MusicSSLError, match="mono"):
        degrade.degrade(np.zeros((2, 100), np.float32), SR, rng=np.random.default_rng(0))


def test_degrade_corpus_writes_lossy_related_copies_of_the_test_clips(corpus: Path) -> None:
    names = degrade_corpus(corpus, seed=7, progress=False)
    assert names == [f"../degraded/{clip_id}.ogg" for clip_id in TEST_IDS]
    decoded = _decoded(corpus)
    assert sorted(decoded) == sorted(TEST_IDS)
    originals = {
        clip_id: sf.read(str(corpus / "audio" / f"{clip_id}.wav"), dtype="float32")[0]
        for clip_id in CLIPS
    }
    log = {row["clip_id"]: row for row in _log(corpus)}
    assert sorted(log) == sorted(TEST_IDS)
    for clip_id, copy in decoded.items():
        original = originals[clip_id]
        assert abs(len(copy) - len(original)) / SR < 0.005
        with sf.SoundFile(str(corpus / f"degraded/{clip_id}.ogg")) as handle:
            assert handle.format == "OGG" and handle.subtype == "VORBIS"
        # The chain before the encode, redone from the logged seed: the parameters match
        # the log, and the encode lost something without destroying the clip.
        before, params = degrade.degrade(original, SR, rng=clip_rng(7, clip_id))
        assert {key: log[clip_id][key] for key in asdict(params)} == asdict(params)
        assert 8.0 < _snr_db(before, copy[: len(before)]) < 40.0
        # The copy is no longer the waveform of the original...
        assert _snr_db(original, copy[: len(original)]) < 10.0
        # ...but its spectrum is still closest to its own original's.
        similarity = {
            other: np.corrcoef(_spectrum(copy), _spectrum(originals[other]))[0, 1]
            for other in TEST_IDS
        }
        assert max(similarity, key=similarity.get) == clip_id


def test_degrade_corpus_is_deterministic(tmp_path: Path) -> None:
    first = _corpus(tmp_path / "one", CLIPS)
    second = _corpus(tmp_path / "two", CLIPS)
    degrade_corpus(first, seed=3, progress=False)
    degrade_corpus(second, seed=3, progress=False)
    one, two = _decoded(first), _decoded(second)
    assert sorted(one) == sorted(two)
    for clip_id in one:
        np.testing.assert_array_equal(one[clip_id], two[clip_id])
    assert _log(first) == _log(second)
    third = _corpus(tmp_path / "three", CLIPS)
    degrade_corpus(third, seed=4, progress=False)
    assert _log(third) != _log(first)


def test_degrade_corpus_reuses_finished_copies_and_remakes_stale_ones(corpus: Path) -> None:
    degrade_corpus(corpus, seed=0, progress=False)
    folder = corpus / "degraded"
    stamps = {path.name: path.stat().st_mtime_ns for path in folder.glob("*.ogg")}
    log = _log(corpus)
    degrade_corpus(corpus, seed=0, progress=False)
    assert {path.name: path.stat().st_mtime_ns for path in folder.glob("*.ogg")} == stamps
    assert _log(corpus) == log
    # A changed source file is degraded again; the others are kept.
    sf.write(str(corpus / "audio" / "b-00.wav"), _clip(500.0, 9), SR)
    degrade_corpus(corpus, seed=0, progress=False)
    changed = {p.name for p in folder.glob("*.ogg") if p.stat().st_mtime_ns != stamps[p.name]}
    assert changed == {"b-00.ogg"}
    # Another seed remakes every copy.
    degrade_corpus(corpus, seed=1, progress=False)
    assert all(p.stat().st_mtime_ns != stamps[p.name] for p in folder.glob("*.ogg"))
    assert {row["seed"] for row in _log(corpus)} == {1}


def test_a_cut_off_or_foreign_file_is_remade_and_temporaries_are_not_reused(
    corpus: Path,
) -> None:
    names = degrade_corpus(corpus, seed=0, progress=False)
    reference = _decoded(corpus)
    folder = corpus / "degraded"
    whole = (folder / "b-00.ogg").read_bytes()
    (folder / "b-00.ogg").write_bytes(whole[: len(whole) // 2])  # a copy cut off mid-write
    sf.write(str(folder / "c-00.ogg"), _clip(300.0, 5), SR, format="OGG")  # not our copy
    # A temporary file of a writer that was killed: its pid no longer runs.
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    orphan = folder / f".partial-{dead.pid}-e-00.ogg"
    orphan.write_bytes(whole[:100])
    (folder / "e-00.ogg").unlink()
    assert degrade_corpus(corpus, seed=0, progress=False) == names
    assert not orphan.exists()
    remade = _decoded(corpus)
    for clip_id in TEST_IDS:
        np.testing.assert_array_equal(remade[clip_id], reference[clip_id])
    assert not list(folder.glob(".partial-*"))


def test_degrade_corpus_errors_name_the_manifest(tmp_path: Path) -> None:
    with pytest.raises(MusicSSLError, match="manifest.jsonl"):
        degrade_corpus(tmp_path, progress=False)
    corpus = _corpus(tmp_path / "corpus", {"a-00": "train", "b-00": "valid"})
    with pytest.raises(MusicSSLError, match="manifest.jsonl.*no clip has split 'test'"):
        degrade_corpus(corpus, progress=False)
