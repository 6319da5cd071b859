import json
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import save_file

from musicssl import hear
from musicssl.embed import load
from musicssl.encoders import SampleCNN
from musicssl.errors import MusicSSLError

SR = 8000
WINDOW = 3**6  # the tiny SampleCNN's window: 729 samples, 91 ms


@pytest.fixture
def checkpoint(tmp_path: Path) -> Path:
    torch.manual_seed(0)
    encoder = SampleCNN(num_blocks=5, channels=[4, 4, 8, 8, 8, 8, 16], sample_rate=SR).eval()
    folder = tmp_path / "ckpt"
    folder.mkdir()
    (folder / "encoder.json").write_text(
        json.dumps({"name": "sample_cnn", "options": encoder.config()})
    )
    save_file(encoder.state_dict(), str(folder / "encoder.safetensors"))
    return folder


def _sounds(n_sounds: int, n_samples: int) -> torch.Tensor:
    rng = np.random.default_rng(4)
    return torch.from_numpy(rng.uniform(-0.5, 0.5, (n_sounds, n_samples)).astype(np.float32))


def test_model_attributes_and_run_folder(checkpoint: Path, tmp_path: Path):
    model = hear.load_model(str(checkpoint))
    assert isinstance(model, torch.nn.Module)
    assert model.sample_rate == SR
    assert model.scene_embedding_size == 16 and model.timestamp_embedding_size == 16
    run = tmp_path / "run"
    (run / "checkpoints").mkdir(parents=True)
    checkpoint.rename(run / "checkpoints" / "step-00000010")
    (run / "latest").write_text("step-00000010\n")
    assert hear.load_model(str(run), hop=0.02).hop == 0.02
    with pytest.raises(MusicSSLError, match="checkpoint"):
        hear.load_model("")
    with pytest.raises(MusicSSLError, match="unknown options"):
        hear.load_model(str(run), stride=3)
    for hop in (0.0, -0.1, 1e-5):  # 1e-5 s is under one sample at 8 kHz
        with pytest.raises(MusicSSLError, match="hop must be at least one sample"):
            hear.load_model(str(run), hop=hop)
    weights = run / "checkpoints" / "step-00000010" / "encoder.safetensors"
    weights.write_bytes(weights.read_bytes()[:50])
    with pytest.raises(MusicSSLError, match="encoder.safetensors"):
        hear.load_model(str(run))


def test_scene_embeddings_per_sound_match_embed(checkpoint: Path):
    model = hear.load_model(str(checkpoint))
    audio = _sounds(3, 2000)
    scene = hear.get_scene_embeddings(audio, model)
    assert scene.shape == (3, 16) and scene.dtype == torch.float32
    alone = [hear.get_scene_embeddings(audio[i : i + 1], model)[0] for i in range(3)]
    torch.testing.assert_close(scene, torch.stack(alone))
    assert not torch.allclose(scene[0], scene[1]) and not torch.allclose(scene[1], scene[2])
    expected = load(checkpoint).embed(audio[1].numpy(), SR).clip
    np.testing.assert_allclose(scene[1].numpy(), expected, atol=1e-6)


def test_timestamp_embeddings_are_centred_windows(checkpoint: Path):
    model = hear.load_model(str(checkpoint), hop=0.025)  # 200 samples
    n_samples = 2100
    audio = _sounds(3, n_samples)
    embeddings, timestamps = hear.get_timestamp_embeddings(audio, model)
    n_timestamps = 1 + n_samples // 200  # centres at 0, 200, ..., 2000 samples
    assert embeddings.shape == (3, n_timestamps, 16)
    assert timestamps.shape == (3, n_timestamps)
    expected_ms = np.arange(n_timestamps) * 25.0
    for row in timestamps.numpy():
        np.testing.assert_allclose(row, expected_ms, atol=1e-3)
    assert timestamps.max() <= 1000 * n_samples / SR
    # The embedding at 125 ms (sample 1000): the encoder on the window centred there.
    padded = np.pad(audio[2].numpy(), (WINDOW // 2, WINDOW - WINDOW // 2))
    window = torch.from_numpy(padded[1000 : 1000 + WINDOW].copy())[None]
    with torch.no_grad():
        expected = model.encoder(window)[0]
    torch.testing.assert_close(embeddings[2, 5], expected, atol=1e-5, rtol=1e-5)
    alone, _ = hear.get_timestamp_embeddings(audio[1:2], model)
    torch.testing.assert_close(embeddings[1:2], alone)
    assert not torch.allclose(embeddings[0], embeddings[1])


def test_audio_shorter_than_a_window(checkpoint: Path):
    model = hear.load_model(str(checkpoint), hop=0.01)
    audio = _sounds(2, 300)  # 300 < 729 samples
    assert hear.get_scene_embeddings(audio, model).shape == (2, 16)
    embeddings, timestamps = hear.get_timestamp_embeddings(audio, model)
    assert embeddings.shape == (2, 4, 16)  # centres at 0, 80, 160, 240 samples
    np.testing.assert_allclose(timestamps[0].numpy(), [0.0, 10.0, 20.0, 30.0], atol=1e-3)
    assert torch.isfinite(embeddings).all()


def test_bad_audio_is_refused(checkpoint: Path):
    model = hear.load_model(str(checkpoint))
    with pytest.raises(MusicSSLError, match="n_sounds, n_samples"):
        hear.get_scene_embeddings(torch.zeros(100), model)
    audio = _sounds(2, 1000)
    audio[1, 500] = float("nan")
    with pytest.raises(MusicSSLError, match="NaN"):
        hear.get_scene_embeddings(audio, model)


def test_timestamp_embeddings_of_an_encoder_with_many_frames_a_window(tmp_path: Path):
    # A window of the key CNN holds many frames; with a hop under the window, each timestamp
    # is the mean of its own window's frames.
    from musicssl.encoders import build_encoder
    from test_encoders import SMALL_KEY_CNN

    from conftest import untrained_run

    torch.manual_seed(0)
    encoder = build_encoder("key_cnn", **SMALL_KEY_CNN).eval()
    model = hear.load_model(str(untrained_run(tmp_path / "run", encoder, "key_cnn")), hop=0.05)
    window = model.model.window_samples
    assert model.encoder.forward_features(torch.zeros(1, window)).shape[-1] > 1
    audio = _sounds(2, 3 * SR)
    embeddings, timestamps = hear.get_timestamp_embeddings(audio, model)
    n_timestamps = 1 + 3 * SR // 400
    assert embeddings.shape == (2, n_timestamps, model.timestamp_embedding_size)
    np.testing.assert_allclose(timestamps[0].numpy(), np.arange(n_timestamps) * 50.0, atol=1e-3)
    padded = np.pad(audio[1].numpy(), (window // 2, window - window // 2))
    at = 10 * 400  # the timestamp at 500 ms: the window that starts there in the padded audio
    with torch.no_grad():
        frames = model.encoder.forward_features(
            torch.from_numpy(padded[at : at + window].copy())[None]
        )
    torch.testing.assert_close(embeddings[1, 10], frames[0].mean(dim=-1), atol=1e-5, rtol=1e-5)


def test_embed_says_when_its_hop_leaves_audio_between_windows(checkpoint: Path, tmp_path: Path,
                                                              capsys):  # fmt: skip
    import soundfile as sf

    from musicssl.cli import main

    (tmp_path / "audio").mkdir()
    sf.write(str(tmp_path / "audio" / "a.wav"), _sounds(1, 2 * SR)[0].numpy(), SR)
    argv = ["embed", str(checkpoint), str(tmp_path / "audio"), "--out", str(tmp_path / "e.npz")]
    assert main([*argv, "--hop", "0.5"]) == 0
    assert "note: hop 0.5 s is longer than the encoder's window (0.09 s): 0.41 s after each" in (
        capsys.readouterr().err
    )
    assert main([*argv, "--hop", "0.05"]) == 0
    assert "note: hop" not in capsys.readouterr().err
