"""The Audio Spectrogram Transformer from a local Hugging Face folder (``hf:FOLDER``), on tiny
models made here: its layers as transformers computes them, its frames in time order, and the
one-line refusals."""

import json
from pathlib import Path

import numpy as np
import pytest
import torch

import musicssl
from musicssl.errors import MusicSSLError

transformers = pytest.importorskip(
    "transformers", reason="transformers (the huggingface extra) is not installed"
)

# 32 mel bands, 100 filter-bank frames (1.0 s): 16 x 16 patches 10 apart, 2 rows of 9.
FRAMES, SAMPLES = 100, 99 * 160 + 400


def _save(folder: Path, *, seed: int = 1) -> Path:
    config = transformers.ASTConfig(
        hidden_size=16, num_hidden_layers=2, num_attention_heads=2, intermediate_size=32,
        num_mel_bins=32, max_length=FRAMES, patch_size=16, frequency_stride=10, time_stride=10,
    )  # fmt: skip
    torch.manual_seed(seed)
    transformers.ASTModel(config).save_pretrained(folder)
    transformers.ASTFeatureExtractor(num_mel_bins=32, max_length=FRAMES).save_pretrained(folder)
    return folder


def test_every_layer_is_a_hidden_state_as_transformers_computes_it(tmp_path: Path):
    folder = _save(tmp_path / "ast")
    model = musicssl.load(f"hf:{folder}")
    assert (model.sample_rate, model.window_samples, model.num_layers) == (16000, SAMPLES, 3)
    signal = np.random.default_rng(0).normal(0, 0.2, SAMPLES).astype(np.float32)
    extractor = transformers.AutoFeatureExtractor.from_pretrained(folder)
    reference = transformers.ASTModel.from_pretrained(folder).eval()
    with torch.no_grad():
        inputs = extractor(signal, sampling_rate=16000, return_tensors="pt")
        expected = reference(**inputs, output_hidden_states=True)
    states = [*expected.hidden_states[:-1], expected.last_hidden_state]
    embedded = model.embed(signal, 16000, layers="all", frames=True)
    for ours, theirs in zip(embedded.layers, states):  # the patch tokens' mean
        np.testing.assert_allclose(ours, theirs[0, 2:].mean(0).numpy(), atol=1e-5)
    np.testing.assert_allclose(embedded.clip, states[-1][0, 2:].mean(0).numpy(), atol=1e-5)
    # Frame t is the mean over frequency of tokens t and 9 + t (frequency-major).
    last = states[-1][0, 2:].reshape(2, 9, 16).mean(0).numpy()
    np.testing.assert_allclose(embedded.frames, last, atol=1e-5)
    # Time position i reads filter-bank frames 10 i to 10 i + 15, each 400 samples from 160 j.
    np.testing.assert_allclose(embedded.times, ((10 * np.arange(9) + 7.5) * 160 + 199.5) / 16000)


def test_a_short_clip_keeps_the_frames_within_it(tmp_path: Path):
    model = musicssl.load(f"hf:{_save(tmp_path / 'ast')}")
    signal = np.random.default_rng(1).normal(0, 0.2, 8000).astype(np.float32)  # 0.5 s
    embedded = model.embed(signal, 16000, frames=True)
    np.testing.assert_allclose(embedded.times, 0.0875 + 0.1 * np.arange(5), atol=1e-4)  # <= 0.5 s
    with pytest.raises(MusicSSLError, match=r"reads at most 16240 samples \(one input\)"):
        model.encoder.forward_layers(torch.zeros(1, SAMPLES + 1))


def test_an_extractor_that_does_not_fit_the_model_is_refused(tmp_path: Path):
    folder = _save(tmp_path / "ast")
    settings = json.loads((folder / "preprocessor_config.json").read_text())
    (folder / "preprocessor_config.json").write_text(json.dumps({**settings, "max_length": 50}))
    with pytest.raises(MusicSSLError, match="has max_length 50, the model 100"):
        musicssl.load(f"hf:{folder}")
    (folder / "preprocessor_config.json").write_text(
        json.dumps({**settings, "sampling_rate": 22050})
    )
    with pytest.raises(MusicSSLError, match="reads 22050 Hz; AST reads 16000 Hz"):
        musicssl.load(f"hf:{folder}")
