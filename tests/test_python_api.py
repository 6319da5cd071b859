"""Mistakes a caller makes from Python end in a ``MusicSSLError`` naming the argument and what
it takes, before any work, not in a ``TypeError`` or ``AttributeError`` from deep inside."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from musicssl import audio
from musicssl.embed import Model, load
from musicssl.embed_folder import embed_files
from musicssl.encoders import build_encoder
from musicssl.errors import MusicSSLError
from musicssl.evaluate.run import evaluate
from musicssl.methods import build_method
from musicssl.train import pretrain

SMALL = {"channels": 4, "sample_rate": 16000, "input_samples": 32768}


def test_a_hop_that_is_not_a_number_is_named():
    model = Model(build_encoder("short_chunk_cnn", **SMALL))
    with pytest.raises(MusicSSLError, match=r"^hop must be a number of seconds, got '1'$"):
        model.embed(np.zeros(16000, dtype=np.float32), 16000, hop="1")  # type: ignore[arg-type]
    with pytest.raises(MusicSSLError, match=r"^hop must be a number of seconds, got True$"):
        model.embed(np.zeros(16000, dtype=np.float32), 16000, hop=True)
    assert model.embed(np.zeros(16000, dtype=np.float32), 16000, hop=np.float32(0.1)).clip.shape
    with pytest.raises(MusicSSLError, match=r"^frames must be True or False, got 'yes'$"):
        model.embed(np.zeros(16000, dtype=np.float32), 16000, frames="yes")  # type: ignore[arg-type]


def test_a_sample_rate_that_is_not_a_whole_number_is_named(tmp_path: Path):
    path = tmp_path / "a.wav"
    sf.write(str(path), np.zeros(800, dtype=np.float32), 8000)
    for sr in ("16000", 16000.5, True, 0):
        with pytest.raises(MusicSSLError, match=r"^sr must be a positive whole number of Hz"):
            audio.load(path, sr=sr)  # type: ignore[arg-type]
    assert audio.load(path, sr=16000.0).shape == (1600,)  # type: ignore[arg-type]


def test_a_path_that_is_not_one_is_named():
    for given in (42, None):
        with pytest.raises(MusicSSLError, match=r"^path must be a run or checkpoint folder, got "):
            load(given)  # type: ignore[arg-type]


def test_a_model_where_a_source_is_wanted_is_named(tmp_path: Path):
    model = Model(build_encoder("short_chunk_cnn", **SMALL))
    with pytest.raises(MusicSSLError, match=r"^source must be a checkpoint or run folder, an "):
        evaluate(model, out=tmp_path / "out")  # type: ignore[arg-type]
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize(
    ("given", "message"),
    [
        ({"seeds": "3"}, "seeds must be a whole number of probe fits >= 1, got '3'"),
        ({"seeds": 0}, "seeds must be a whole number of probe fits >= 1, got 0"),
        ({"seeds": 2.5}, "seeds must be a whole number of probe fits >= 1, got 2.5"),
        ({"layers": True}, "layers must be None or 'all', got True"),
        ({"layers": "last"}, "layers must be None or 'all', got 'last'"),
    ],
)
def test_evaluate_refuses_a_protocol_it_cannot_run_before_any_work(tmp_path: Path, given, message):
    with pytest.raises(MusicSSLError) as caught:
        evaluate("baseline:mfcc", out=tmp_path / "out", corpus=tmp_path / "none", **given)
    assert str(caught.value) == message
    assert not (tmp_path / "out").exists() and not (tmp_path / "none").exists()


def test_a_path_where_a_loaded_model_is_wanted_says_how_to_load_it(tmp_path: Path):
    with pytest.raises(MusicSSLError) as caught:
        embed_files("runs/mine", tmp_path, out=tmp_path / "e.npz")  # type: ignore[arg-type]
    assert str(caught.value) == (
        "model must be a loaded model, not the path 'runs/mine': musicssl.load(PATH) loads it"
    )


def test_a_recipe_name_where_a_recipe_is_wanted_says_how_to_read_it(tmp_path: Path):
    with pytest.raises(MusicSSLError, match=r"^recipe must be a Recipe \(Recipe.load"):
        pretrain("simclr-shortchunk-cpu", out=tmp_path / "run")  # type: ignore[arg-type]
    assert not (tmp_path / "run").exists()


def test_an_encoder_name_where_an_encoder_is_wanted_says_how_to_build_it():
    with pytest.raises(MusicSSLError) as caught:
        build_method("simclr", "short_chunk_cnn")  # type: ignore[arg-type]
    assert str(caught.value) == (
        "method 'simclr': encoder must be an encoder module (build_encoder(NAME) makes one), "
        "got 'short_chunk_cnn'"
    )


@pytest.mark.parametrize("name", ["short_chunk_cnn", "spectrogram_vit"])
def test_an_encoder_given_an_array_says_to_make_a_tensor(name):
    encoder = build_encoder(name)
    waves = np.zeros((2, encoder.input_samples), dtype=np.float32)
    with pytest.raises(MusicSSLError, match=r"expected a torch tensor of .*, got ndarray \("):
        encoder(waves)
    assert encoder(torch.from_numpy(waves)).shape == (2, encoder.embedding_dim)
