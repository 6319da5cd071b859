import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from musicssl import audio
from musicssl.errors import AudioError, MusicSSLError

from conftest import tone


def test_audio_load_is_reached_from_a_plain_import_musicssl(write_audio):
    """As the package's docstring shows it, in a fresh interpreter: no other import first."""
    path = write_audio("a.wav", tone(440.0, sr=16000, seconds=0.5), 16000)
    code = f"import musicssl; print(musicssl.audio.load({str(path)!r}, sr=8000).shape)"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "(4000,)"


@pytest.mark.parametrize("extension", ["wav", "flac", "ogg", "mp3"])
def test_load_decodes_every_format_to_mono_float32(write_audio, extension):
    sr = 16000 if extension != "mp3" else 44100
    stereo = np.stack([tone(440, sr=sr, seconds=1.0), tone(440, sr=sr, seconds=1.0) * 0.0])
    path = write_audio(f"x.{extension}", stereo, sr)
    decoded = audio.load(path, sr=sr)
    assert decoded.dtype == np.float32 and decoded.ndim == 1
    # MP3 adds encoder delay/padding; the others keep the length.
    assert abs(len(decoded) - sr) <= (2000 if extension == "mp3" else 0)
    # The mono mix of (tone, silence) is half the tone: RMS 0.5 / sqrt(2) / 2.
    middle = decoded[len(decoded) // 4 : 3 * len(decoded) // 4]
    assert np.sqrt(np.mean(middle**2)) == pytest.approx(0.25 / np.sqrt(2), rel=0.05)


def test_crop_equals_slice_of_whole_decode(write_audio):
    sr = 8000
    signal = np.random.default_rng(0).uniform(-0.5, 0.5, 3 * sr).astype(np.float32)
    path = write_audio("x.flac", signal, sr)
    whole = audio.load(path, sr=sr)
    crop = audio.load(path, sr=sr, offset=1.25, duration=0.5)
    np.testing.assert_array_equal(crop, whole[10000:14000])


def test_resample_keeps_frequency_and_duration():
    x = tone(1000, sr=44100, seconds=1.0)
    y = audio.resample(x, orig_sr=44100, target_sr=16000)
    assert y.shape == (16000,)
    spectrum = np.abs(np.fft.rfft(y))
    assert np.argmax(spectrum) == 1000  # 1 Hz bins for a 1 s signal


def test_resample_batched_equals_per_row():
    rows = np.random.default_rng(1).standard_normal((3, 2205)).astype(np.float32)
    batched = audio.resample(rows, orig_sr=22050, target_sr=16000)
    for row, expected in zip(rows, batched):
        np.testing.assert_allclose(
            audio.resample(row, orig_sr=22050, target_sr=16000), expected, atol=1e-6
        )


def test_check_reports_reasons(tmp_path: Path, write_audio):
    good = write_audio("good.wav", tone(220, sr=8000, seconds=0.5), 8000)
    assert audio.check(good).frames == 4000

    silent = write_audio("silent.wav", np.zeros(8000, np.float32), 8000)
    truncated = tmp_path / "truncated.wav"
    truncated.write_bytes(good.read_bytes()[:3000])
    empty = tmp_path / "empty.wav"
    empty.write_bytes(b"")
    text = tmp_path / "notes.wav"
    text.write_text("not audio at all")
    header_only = tmp_path / "header.wav"
    header_only.write_bytes(good.read_bytes()[:44])
    expected = {
        silent: "all silent",
        truncated: "truncated",
        empty: "empty file",
        text: "not audio (could not recognise the format)",
        header_only: "truncated",
    }
    for path, reason in expected.items():
        with pytest.raises(AudioError) as caught:
            audio.check(path)
        assert caught.value.reason.startswith(reason), caught.value.reason
        assert str(path) in str(caught.value)


def test_load_rejects_bad_arguments(write_audio):
    path = write_audio("x.wav", tone(220, sr=8000, seconds=0.1), 8000)
    with pytest.raises(MusicSSLError):
        audio.load(path, sr=0)
    with pytest.raises(MusicSSLError, match="offset"):
        audio.load(path, sr=8000, offset=-1.0)
    with pytest.raises(AudioError, match="no such file"):
        audio.load(path.with_name("missing.wav"), sr=8000)


def test_save_is_atomic_and_round_trips(tmp_path: Path):
    x = tone(330, sr=16000, seconds=0.2, amplitude=0.25)
    path = tmp_path / "sub" / "y.wav"
    audio.save(path, x, sr=16000)
    assert sorted(p.name for p in path.parent.iterdir()) == ["y.wav"]
    np.testing.assert_allclose(audio.load(path, sr=16000), x, atol=1 / 32768)


def test_stream_equals_whole_decode(write_audio):
    signal = np.random.default_rng(2).uniform(-0.5, 0.5, 44100 * 3).astype(np.float32)
    path = write_audio("long.flac", signal, 44100)
    blocks = list(audio.stream(path, sr=16000, block_seconds=0.7))
    assert len(blocks) >= 4
    streamed = np.concatenate(blocks)
    whole = audio.load(path, sr=16000)
    np.testing.assert_array_equal(streamed, whole)


def test_file_problems_in_words(tmp_path: Path, write_audio):
    good = write_audio("good.wav", tone(220, sr=8000, seconds=0.5), 8000)
    assert audio.file_problem(good) is None
    (tmp_path / "folder.wav").mkdir()
    os.mkfifo(tmp_path / "pipe.wav")
    (tmp_path / "broken.wav").symlink_to(tmp_path / "gone.wav")
    (tmp_path / "loop.wav").symlink_to("loop.wav")
    expected = {
        "folder.wav": "a folder, not a file",
        "pipe.wav": "not a regular file (a pipe, socket or device)",
        "broken.wav": f"broken symbolic link (to {tmp_path}/gone.wav, which does not exist)",
        "loop.wav": "symbolic link loop",
        "missing.wav": "no such file",
    }
    for name, reason in expected.items():
        assert audio.file_problem(tmp_path / name) == reason
        with pytest.raises(AudioError) as caught:
            audio.load(tmp_path / name, sr=8000)
        assert caught.value.reason == reason


def test_load_of_a_header_declaring_too_much_is_truncated_not_a_huge_array(tmp_path: Path):
    import tracemalloc

    path = tmp_path / "x.flac"
    sf.write(str(path), tone(220, sr=8000, seconds=0.5), 8000)
    data = bytearray(path.read_bytes())
    assert data[:4] == b"fLaC"
    # STREAMINFO's 36-bit total sample count ends at byte 26: declare 2**36 - 1 frames.
    data[21] |= 0x0F
    data[22:26] = b"\xff\xff\xff\xff"
    path.write_bytes(bytes(data))
    assert audio.info(path).frames == 2**36 - 1
    tracemalloc.start()
    try:
        with pytest.raises(AudioError) as caught:
            audio.load(path, sr=8000)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert caught.value.reason.startswith(("truncated", "corrupt"))
    assert peak < 64 * 2**20


def test_load_to_the_end_and_a_crop_past_the_end(write_audio):
    path = write_audio("x.wav", tone(220, sr=8000, seconds=0.5), 8000)
    assert len(audio.load(path, sr=8000, offset=0.4, duration=1.0)) == 800
    assert len(audio.load(path, sr=8000, offset=2.0)) == 0


def test_a_header_with_an_implausible_sample_rate_is_refused(tmp_path: Path):
    # A damaged header claiming 1 Hz: resampling its 3,000 samples to 16 kHz would allocate
    # 48 million; the file is named with its reason instead.
    path = tmp_path / "one-hertz.wav"
    sf.write(str(path), np.zeros(3000, np.float32), 1)
    with pytest.raises(AudioError, match="header declares 1 Hz, not a plausible sample rate"):
        audio.load(path, sr=16000)
    with pytest.raises(AudioError, match="one-hertz.wav"):
        audio.check(path)
