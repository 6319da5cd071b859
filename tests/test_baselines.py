import json
import math
from pathlib import Path

import numpy as np
import pytest
import scipy.fft
import torch
from safetensors.torch import save_file

from musicssl.embed import load
from musicssl.encoders import ENCODERS, build_encoder
from musicssl.errors import MusicSSLError
from musicssl.evaluate import baselines
from musicssl.evaluate.baselines import (
    BASELINES,
    _frames,
    build_baseline,
    dct_matrix,
    default_encoder,
)
from musicssl.features import LogMel, hz_to_mel, mel_to_hz
from musicssl.recipe import Recipe, recipe_path

from conftest import tone

SR = 16000
TINY_ENCODERS = {
    "sample_cnn": {"num_blocks": 5, "channels": [4, 4, 8, 8, 8, 8, 16], "sample_rate": SR},
    "short_chunk_cnn": {"channels": 2, "hop_length": 64, "input_samples": 8192},
    "spectrogram_vit": {"width": 16, "depth": 2, "num_heads": 2, "n_bins": 32, "patch": [8, 8]},
    "frame_transformer": {"width": 16, "depth": 2, "num_heads": 2, "n_bins": 32},
    "pesto_cnn": {"num_octaves": 4, "max_shift": 6, "channels": 4, "depth": 2,
                  "kernel_size": 5, "output_kernel": 15, "input_samples": 4096},
    "key_cnn": {"num_octaves": 4, "max_shift_semitones": 6, "channels": 4, "depth": 2,
                "output_kernel": 9, "input_samples": 4096},
    "tempo_cnn": {"n_mels": 16, "min_bpm": 120.0, "tempo_bins": 32, "channels": 4, "depth": 2,
                  "output_kernel": 9, "input_samples": 16000},
    "branches": {"branches": {
        "timbre": {"name": "short_chunk_cnn",
                   "options": {"channels": 2, "hop_length": 64, "input_samples": 8192}},
        "key": {"name": "key_cnn",
                "options": {"num_octaves": 4, "max_shift_semitones": 6, "channels": 4,
                            "depth": 2, "output_kernel": 9, "input_samples": 4096}}}},
}  # fmt: skip


def _noise(seconds: float, *, seed: int = 0, amplitude: float = 0.1) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return (amplitude * rng.standard_normal(int(seconds * SR))).astype(np.float32)


def _checkpoint(folder: Path, name: str, *, seed: int) -> None:
    torch.manual_seed(seed)
    encoder = build_encoder(name, **TINY_ENCODERS[name]).eval()
    with torch.no_grad():  # trained-looking statistics, unlike a fresh batch norm's 0 and 1
        for module in encoder.modules():
            if isinstance(module, torch.nn.modules.batchnorm._BatchNorm):
                module.running_mean.uniform_(-0.1, 0.1)
                module.running_var.uniform_(0.5, 2.0)
    folder.mkdir(parents=True)
    (folder / "encoder.json").write_text(json.dumps({"name": name, "options": encoder.config()}))
    save_file(
        {k: v.contiguous() for k, v in encoder.state_dict().items()},
        str(folder / "encoder.safetensors"),
    )


def test_registry_and_unknown_name():
    assert BASELINES == ("mfcc", "logmel", "tempogram", "random")
    for name in ("mfcc", "logmel"):
        baseline = build_baseline(name)
        assert baseline.sample_rate == SR
        config = baseline.config()
        assert config["baseline"] == name and config["version"] == baselines.FEATURE_VERSION
        assert json.loads(json.dumps(config)) == config
    assert build_baseline("mfcc").config() != build_baseline("logmel").config()
    with pytest.raises(MusicSSLError, match="mfcc, logmel, tempogram, random"):
        build_baseline("chroma")


def test_dct_matrix_is_scipy_orthonormal_dct():
    x = np.random.default_rng(0).standard_normal((5, 12))
    full = dct_matrix(12, 12).double().numpy()
    np.testing.assert_allclose(x @ full.T, scipy.fft.dct(x, type=2, norm="ortho"), atol=1e-6)
    np.testing.assert_allclose(full @ full.T, np.eye(12), atol=1e-6)
    np.testing.assert_allclose(dct_matrix(12, 4).numpy(), full[:4], atol=1e-7)


def test_frames_match_logmel_on_the_whole_signal():
    x = _noise(1.3)
    result = build_baseline("logmel").embed(x, SR, frames=True)
    expected = LogMel(sr=SR, n_fft=1024, hop_length=160, n_mels=128)(torch.from_numpy(x))
    assert result.frames.shape == (1 + len(x) // 160, 128)
    np.testing.assert_allclose(result.frames, expected.T.numpy(), atol=1e-3)
    np.testing.assert_allclose(result.times, np.arange(len(result.frames)) * 0.01, atol=1e-12)


@pytest.mark.parametrize("name", ["mfcc", "logmel"])
def test_clip_is_mean_and_std_of_the_frames(name: str):
    x = np.concatenate([_noise(0.7), tone(440, sr=SR, seconds=0.9)])
    result = build_baseline(name).embed(x, SR, frames=True, layers="all")
    frames = result.frames.astype(np.float64)
    dim = frames.shape[1]
    assert dim == (40 if name == "mfcc" else 128)
    assert result.clip.shape == (2 * dim,) and result.clip.dtype == np.float32
    np.testing.assert_allclose(result.clip[:dim], frames.mean(0), rtol=1e-5, atol=1e-4)
    np.testing.assert_allclose(result.clip[dim:], frames.std(0), rtol=1e-5, atol=1e-4)
    assert len(result.layers) == 1 and np.array_equal(result.layers[0], result.clip)


@pytest.mark.parametrize("name", ["mfcc", "logmel"])
def test_streamed_equals_whole(name: str):
    x = _noise(2.0, seed=3) + tone(300, sr=SR, seconds=2.0)
    baseline = build_baseline(name)
    whole = baseline.embed(x, SR, frames=True)
    # Odd block lengths, a single sample and an empty block among them.
    cuts = np.cumsum([1, 0, 7, 333, 1001, 159, 4097, 3])
    streamed = baseline.embed_stream(iter(np.split(x, cuts)), frames=True)
    assert streamed.frames.shape == whole.frames.shape == (1 + len(x) // 160, whole.frames.shape[1])
    np.testing.assert_allclose(streamed.frames, whole.frames, atol=1e-4)
    np.testing.assert_allclose(streamed.clip, whole.clip, rtol=1e-5, atol=1e-4)
    np.testing.assert_array_equal(streamed.times, whole.times)


def test_one_large_block_is_cut_into_bounded_chunks():
    x = np.zeros(160 * 5000, dtype=np.float32)
    sizes = [len(chunk) for chunk in _frames(iter([x]), n_fft=1024, hop=160)]
    assert max(sizes) <= baselines._MAX_FRAMES and sum(sizes) == 1 + len(x) // 160


def test_logmel_peak_band_holds_the_tone_frequency():
    baseline = build_baseline("logmel")
    edges = torch.linspace(0.0, hz_to_mel(SR / 2).item(), 128 + 2, dtype=torch.float64)
    spacing = (edges[1] - edges[0]).item()  # mels between neighbouring band centres
    for freq in (440.0, 1000.0, 3000.0):
        mean_db = baseline.embed(tone(freq, sr=SR, seconds=1.0), SR).clip[:128]
        peak = int(np.argmax(mean_db))
        centre_hz = mel_to_hz(edges[peak + 1]).item()
        # The tone lies within one band spacing of the loudest band's centre.
        assert abs(hz_to_mel(centre_hz).item() - hz_to_mel(freq).item()) <= spacing, freq


def test_mfcc_c0_is_scaled_mean_log_mel_and_gain_moves_only_c0():
    x = _noise(1.0, seed=5)
    log_mel = build_baseline("logmel").embed(x, SR, frames=True).frames
    mfcc = build_baseline("mfcc")
    coefficients = mfcc.embed(x, SR, frames=True).frames
    # Orthonormal DCT-II: c0 = sum / sqrt(n) = sqrt(n) * mean over the 128 bands.
    np.testing.assert_allclose(
        coefficients[:, 0], math.sqrt(128) * log_mel.mean(axis=1), rtol=1e-4, atol=1e-3
    )
    # Twice the amplitude is 4x the power: +20 log10(2) = 6.02 dB in every band.
    gain_db = 20 * math.log10(2)
    quiet, loud = mfcc.embed(x, SR).clip, mfcc.embed(2 * x, SR).clip
    shift = loud - quiet
    assert shift[0] == pytest.approx(math.sqrt(128) * gain_db, abs=1e-3)
    np.testing.assert_allclose(shift[1:], 0.0, atol=1e-3)  # other means, deltas, all stds
    logmel_shift = (
        build_baseline("logmel").embed(2 * x, SR).clip - build_baseline("logmel").embed(x, SR).clip
    )
    np.testing.assert_allclose(logmel_shift[:128], gain_db, atol=1e-3)
    np.testing.assert_allclose(logmel_shift[128:], 0.0, atol=1e-3)


def test_mfcc_deltas_are_centred_differences():
    x = np.concatenate([_noise(0.3, seed=1), np.zeros(SR // 4, np.float32), _noise(0.3)])
    frames = build_baseline("mfcc").embed(x, SR, frames=True).frames
    static, deltas = frames[:, :20], frames[:, 20:]
    padded = np.concatenate([static[:1], static, static[-1:]])
    np.testing.assert_allclose(deltas, (padded[2:] - padded[:-2]) / 2, atol=1e-4)


def test_embed_resamples_and_checks_input():
    baseline = build_baseline("logmel")
    at_16k, at_8k = tone(500, sr=SR, seconds=1.0), tone(500, sr=8000, seconds=1.0)
    np.testing.assert_allclose(
        baseline.embed(at_8k, 8000).clip[:128], baseline.embed(at_16k, SR).clip[:128], atol=1.0
    )
    # (channels, num_samples) is averaged to mono, as audio files are read
    np.testing.assert_allclose(
        baseline.embed(np.stack([at_16k, at_16k]), SR).clip, baseline.embed(at_16k, SR).clip
    )
    with pytest.raises(MusicSSLError, match="shape"):
        baseline.embed(np.zeros((2, 2, 100), np.float32), SR)
    with pytest.raises(MusicSSLError, match="empty"):
        baseline.embed_stream(iter([]))
    assert baseline.layer_indices(None) == [] and baseline.layer_indices("all") == [0]
    with pytest.raises(MusicSSLError, match="out of range"):
        baseline.layer_indices(3)


def test_random_default_is_the_demo_recipes_encoder():
    from musicssl.demo import DEMO_RECIPE

    part = Recipe.load(recipe_path(DEMO_RECIPE)).encoder
    assert default_encoder() == {"name": part.name, "options": part.options}
    model = build_baseline("random")
    assert model.config()["encoder"] == default_encoder()
    assert model.sample_rate == build_encoder(part.name, **part.options).sample_rate == 16000


@pytest.mark.parametrize("name", sorted(ENCODERS))
def test_random_is_deterministic_and_unlike_the_trained_weights(tmp_path: Path, name: str):
    assert set(TINY_ENCODERS) == set(ENCODERS)
    _checkpoint(tmp_path / "ckpt", name, seed=7)
    x = _noise(1.0, seed=2)
    torch.manual_seed(123)
    state = torch.random.get_rng_state()
    first = build_baseline("random", reference=tmp_path / "ckpt")
    assert torch.equal(torch.random.get_rng_state(), state)  # the global RNG is left alone
    second = build_baseline("random", reference=tmp_path / "ckpt")
    a, b = first.embed(x, SR, frames=True), second.embed(x, SR, frames=True)
    np.testing.assert_array_equal(a.clip, b.clip)
    np.testing.assert_array_equal(a.frames, b.frames)
    trained = load(tmp_path / "ckpt").embed(x, SR)
    assert trained.clip.shape == a.clip.shape
    # Relative: the equivariant encoders' clip vectors are near-uniform distributions.
    assert not np.allclose(trained.clip, a.clip, rtol=1e-4, atol=0)
    assert first.config() == {
        "baseline": "random",
        "version": baselines.FEATURE_VERSION,
        "seed": 0,
        "encoder": json.loads((tmp_path / "ckpt" / "encoder.json").read_text()),
        "readout": "freq",
    }


def test_random_reference_must_be_a_checkpoint(tmp_path: Path):
    with pytest.raises(MusicSSLError, match="not a checkpoint"):
        build_baseline("random", reference=tmp_path)


# --- the tempogram baseline ------------------------------------------------------------------


def click_track(bpm: float, *, seconds: float = 10.0, offset: float = 0.0) -> np.ndarray:
    """A 5 ms 2 kHz click on every beat, the first at ``offset`` seconds."""
    signal = np.zeros(int(seconds * SR), dtype=np.float32)
    click = np.sin(2 * np.pi * 2000 * np.arange(80) / SR) * np.hanning(80)
    for start in np.arange(offset, seconds - 0.01, 60.0 / bpm):
        index = int(round(start * SR))
        signal[index : index + 80] += click[: len(signal) - index]
    return signal


def test_tempogram_peaks_at_the_click_tempo_and_is_stream_invariant():
    tempogram = build_baseline("tempogram")
    assert tempogram.config()["baseline"] == "tempogram"
    bins = tempogram.bpm
    assert np.allclose(np.diff(np.log2(bins)), 1 / 24)  # log-spaced, 24 per octave
    for bpm in (45.0, 72.0, 100.0, 137.0, 190.0, 260.0):
        vector = tempogram.embed(click_track(bpm, offset=0.13), SR).clip
        assert vector.shape == (len(bins) + 1,)
        # The strongest periodicity is the beat (not its multiples), within one bin.
        assert abs(vector[-1] - np.log2(bpm)) <= 1 / 24 + 1e-6, (bpm, 2 ** vector[-1])
        mean = vector[: len(bins)]
        assert np.isclose(mean[np.argmin(np.abs(np.log2(bins / bpm)))], mean.max(), atol=0.1)
    # Blocks of any size give the same clip vector as the whole signal.
    signal = click_track(120.0)
    whole = tempogram.embed_stream(iter([signal])).clip
    blocks = tempogram.embed_stream(iter(np.array_split(signal, 7))).clip
    np.testing.assert_allclose(blocks, whole, rtol=1e-6, atol=1e-6)


def test_a_probe_on_the_tempogram_reads_the_tempo_of_click_tracks():
    from musicssl.evaluate.protocol import evaluate_task
    from musicssl.evaluate.task import Example, Task

    rng = np.random.default_rng(0)
    tempogram = build_baseline("tempogram")
    examples, vectors = [], {}
    for number, bpm in enumerate(2.0 ** rng.uniform(np.log2(50), np.log2(220), size=240)):
        name = f"click-{number:03d}.wav"
        signal = click_track(float(bpm), seconds=7.0, offset=float(rng.uniform(0, 0.5)))
        signal += 0.01 * rng.standard_normal(len(signal)).astype(np.float32)
        vectors[name] = tempogram.embed(signal, SR).clip
        split = ("train", "train", "train", "train", "valid", "test")[number % 6]
        examples.append(Example(name, split, float(bpm)))
    task = Task(name="clicks", kind="tempo", root=Path("."), examples=tuple(examples))
    result = evaluate_task(task, vectors, seeds=1)
    assert result.metrics["acc2"].mean >= 0.9, result.metrics
    assert result.metrics["acc1"].mean >= 0.8, result.metrics
