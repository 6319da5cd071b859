import json
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import save_file

from musicssl.embed import _windows, embed_files, load
from musicssl.encoders import SampleCNN
from musicssl.errors import MusicSSLError

from conftest import tone


def _checkpoint(folder: Path) -> SampleCNN:
    torch.manual_seed(0)
    encoder = SampleCNN(num_blocks=5, channels=[4, 4, 8, 8, 8, 8, 16], sample_rate=8000).eval()
    folder.mkdir(parents=True)
    (folder / "encoder.json").write_text(
        json.dumps({"name": "sample_cnn", "options": encoder.config()})
    )
    save_file(encoder.state_dict(), str(folder / "encoder.safetensors"))
    return encoder


def _windows_of(signal, blocks, *, window, step, batch_size=3):
    parts = np.array_split(signal, blocks)
    found = list(_windows(iter(parts), window=window, step=step, batch_size=batch_size))
    starts = np.concatenate([s for s, _ in found]).tolist()
    return starts, np.concatenate([w for _, w in found])


def test_windows_cover_the_signal_and_pad_the_tail():
    signal = np.arange(1, 11, dtype=np.float32)  # 10 samples
    starts, windows = _windows_of(signal, 1, window=4, step=4)
    assert starts == [0, 4, 8]
    np.testing.assert_array_equal(windows[2], [9, 10, 0, 0])
    starts, _ = _windows_of(signal[:8], 1, window=4, step=4)
    assert starts == [0, 4]  # nothing left over: no padded window
    starts, windows = _windows_of(signal[:3], 1, window=4, step=4)
    assert starts == [0] and windows.tolist() == [[1, 2, 3, 0]]
    starts, _ = _windows_of(signal, 1, window=4, step=2)
    assert starts == [0, 2, 4, 6]  # the window at 6 reaches the end


def test_windows_do_not_depend_on_block_boundaries():
    signal = np.random.default_rng(0).standard_normal(1000).astype(np.float32)
    whole = _windows_of(signal, 1, window=81, step=50)
    for blocks in (2, 7, 40):
        pieces = _windows_of(signal, blocks, window=81, step=50, batch_size=4)
        assert pieces[0] == whole[0]
        np.testing.assert_array_equal(pieces[1], whole[1])


def test_load_rebuilds_the_encoder_and_embeds_like_it(tmp_path: Path):
    encoder = _checkpoint(tmp_path / "ckpt")
    model = load(tmp_path / "ckpt")
    x = np.random.default_rng(1).uniform(-0.5, 0.5, 729).astype(np.float32)
    expected = encoder(torch.from_numpy(x)[None])[0].detach().numpy()
    np.testing.assert_allclose(model.embed(x, 8000).clip, expected, atol=1e-6)
    # Two windows: the mean of their embeddings, whatever the batch size.
    y = np.concatenate([x, x[::-1]])
    parts = encoder(torch.from_numpy(np.stack([x, x[::-1].copy()]))).detach().numpy()
    for batch_size in (1, 16):
        np.testing.assert_allclose(
            model.embed(y, 8000, batch_size=batch_size).clip, parts.mean(0), atol=1e-6
        )
    with pytest.raises(MusicSSLError, match="not a checkpoint"):
        load(tmp_path)


def test_embed_resamples_to_the_encoder_rate(tmp_path: Path):
    _checkpoint(tmp_path / "ckpt")
    model = load(tmp_path / "ckpt")
    at_8k = tone(440, sr=8000, seconds=0.5)
    at_16k = tone(440, sr=16000, seconds=0.5)
    np.testing.assert_allclose(
        model.embed(at_16k, 16000).clip, model.embed(at_8k, 8000).clip, atol=2e-2
    )


def test_embed_files_writes_names_layers_and_frames(tmp_path: Path, write_audio):
    _checkpoint(tmp_path / "ckpt")
    write_audio("music/a.wav", tone(220, sr=8000, seconds=0.3), 8000)
    write_audio("music/sub/b.flac", tone(330, sr=16000, seconds=0.2), 16000)
    (tmp_path / "music/bad.wav").write_text("not audio")
    model = load(tmp_path / "ckpt")
    summary = embed_files(
        model, tmp_path / "music", out=tmp_path / "e.npz", layers="all", frames=True, progress=False
    )
    assert summary == {"embedded": 2, "skipped": 1}
    data = np.load(tmp_path / "e.npz")
    assert data["names"].tolist() == ["a.wav", "sub/b.flac"]
    assert data["emb"].shape == (2, 16)
    assert [data[f"layer_{k}"].shape[1] for k in range(7)] == [4, 4, 8, 8, 8, 8, 16]
    # a.wav: 2400 samples -> windows at 0, 729, 1458 and a padded one at 2187: 4 frames.
    offsets = data["frame_offsets"].tolist()
    assert offsets[1] - offsets[0] == 4 and data["frames"].shape[1] == 16
    np.testing.assert_allclose(data["frame_times"][:4], (np.arange(4) * 729 + 364.5) / 8000)
