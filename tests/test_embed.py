import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
from safetensors.torch import save_file

from musicssl import windowing
from musicssl.embed import Model, load
from musicssl.embed_folder import embed_files
from musicssl.encoders import SampleCNN, build_encoder
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
    found = list(windowing.windows(iter(parts), window=window, step=step, batch_size=batch_size))
    starts = np.concatenate([s for s, _ in found]).tolist()
    return starts, np.concatenate([w for _, w in found])


def test_windows_cover_the_signal_and_end_the_tail_at_the_last_sample():
    signal = np.arange(1, 11, dtype=np.float32)  # 10 samples
    for blocks in (1, 3, 10):
        starts, windows = _windows_of(signal, blocks, window=4, step=4)
        assert starts == [0, 4, 6]  # the tail window overlaps the one before, no padding
        np.testing.assert_array_equal(windows[2], [7, 8, 9, 10])
    starts, _ = _windows_of(signal[:8], 1, window=4, step=4)
    assert starts == [0, 4]  # nothing left over: no padded window
    starts, windows = _windows_of(signal[:3], 1, window=4, step=4)
    assert starts == [0] and windows.tolist() == [[1, 2, 3, 0]]
    starts, _ = _windows_of(signal, 1, window=4, step=2)
    assert starts == [0, 2, 4, 6]  # the window at 6 reaches the end


def test_an_encoder_of_any_length_gets_a_short_signal_as_it_is():
    signal = np.arange(1, 11, dtype=np.float32)  # 10 samples
    for shortest, expected in ((4, signal), (12, np.r_[signal, 0, 0])):
        found = list(windowing.windows(iter([signal]), window=16, step=16, batch_size=2,
                                       shortest=shortest))  # fmt: skip
        assert [starts.tolist() for starts, _ in found] == [[0]]
        np.testing.assert_array_equal(found[0][1], [expected])
    longer = list(windowing.windows(iter([np.r_[signal, signal]]), window=16, step=16,
                                    batch_size=2, shortest=4))  # fmt: skip
    assert longer[0][0].tolist() == [0, 4] and longer[0][1].shape == (2, 16)  # whole windows


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
    # a.wav: 2400 samples -> windows at 0, 729, 1458 and the last at 2400 - 729: 4 frames.
    offsets = data["frame_offsets"].tolist()
    assert offsets[1] - offsets[0] == 4 and data["frames"].shape[1] == 16
    starts = np.array([0, 729, 1458, 2400 - 729])
    np.testing.assert_allclose(data["frame_times"][:4], (starts + 364.5) / 8000)
    # Every layer's frames, on the rows of the last layer's.
    assert [data[f"frames_layer_{k}"].shape for k in range(7)] == [
        (len(data["frames"]), c) for c in (4, 4, 8, 8, 8, 8, 16)
    ]
    np.testing.assert_allclose(data["frames_layer_6"], data["frames"], atol=1e-6)


def test_embed_files_takes_one_audio_file_and_refuses_a_text_file(tmp_path: Path, write_audio):
    _checkpoint(tmp_path / "ckpt")
    write_audio("music/a.wav", tone(220, sr=8000, seconds=0.3), 8000)
    (tmp_path / "notes.txt").write_text("not audio")
    model = load(tmp_path / "ckpt")
    summary = embed_files(model, tmp_path / "music/a.wav", out=tmp_path / "a.npz", progress=False)
    assert summary == {"embedded": 1, "skipped": 0}
    data = np.load(tmp_path / "a.npz")
    assert data["names"].tolist() == ["a.wav"]
    whole = embed_files(model, tmp_path / "music", out=tmp_path / "all.npz", progress=False)
    assert whole["embedded"] == 1
    np.testing.assert_array_equal(data["emb"], np.load(tmp_path / "all.npz")["emb"])
    with pytest.raises(MusicSSLError, match="notes.txt: expected an audio file"):
        embed_files(model, tmp_path / "notes.txt", out=tmp_path / "n.npz", progress=False)


def _windows_tensor(signal: np.ndarray, window: int) -> torch.Tensor:
    """Consecutive windows of ``signal``, the last one ending at its last sample (a signal
    longer than one window). Shape: (num_windows, window)."""
    starts = list(range(0, len(signal) - window + 1, window))
    if starts[-1] + window < len(signal):
        starts.append(len(signal) - window)
    return torch.from_numpy(np.stack([signal[s : s + window] for s in starts]))


def test_all_layers_equal_each_layer_computed_alone(tmp_path: Path):
    encoder = _checkpoint(tmp_path / "ckpt")
    model = load(tmp_path / "ckpt")
    signal = np.random.default_rng(2).uniform(-0.5, 0.5, 2000).astype(np.float32)
    windows = _windows_tensor(signal, 729)  # 3 windows, the last one at 2000 - 729
    every = model.embed(signal, 8000, layers="all", frames=True, batch_size=2)
    assert [v.shape for v in every.layers] == [(4,), (4,), (8,), (8,), (8,), (8,), (16,)]
    with torch.no_grad():
        np.testing.assert_allclose(every.clip, encoder(windows).mean(0).numpy(), atol=1e-6)
        for layer in range(7):
            alone = encoder.forward_features(windows, layer=layer).mean(-1).mean(0).numpy()
            np.testing.assert_allclose(every.layers[layer], alone, atol=1e-6)
            one = model.embed(signal, 8000, layers=layer)
            assert len(one.layers) == 1
            np.testing.assert_allclose(one.layers[0], alone, atol=1e-6)
            np.testing.assert_allclose(one.clip, every.clip, atol=1e-6)
        # Frames of one chosen layer: layer 2 has 729 / 27 = 27 frames per window. One track
        # in time order: of the tail window (from 1271), only frames after the second
        # window's last (centre 729 + 26.5 * 27 = 1444.5) are kept, 21 of its 27.
        track = model.embed(signal, 8000, layers=2, frames=True)
        expected = encoder.forward_features(windows, layer=2).transpose(1, 2).reshape(-1, 8)
        kept = list(range(54)) + list(range(54 + 6, 81))
        assert track.frames.shape == (75, 8) and track.times.shape == (75,)
        np.testing.assert_allclose(track.frames, expected.numpy()[kept], atol=1e-6)
        assert np.all(np.diff(track.times) > 0) and track.times[-1] <= 2000 / 8000
        last = encoder.forward_features(windows).transpose(1, 2).reshape(-1, 16).numpy()
        per_window = len(last) // 3
        centres = (np.arange(per_window) + 0.5) * 729 / per_window
        times = np.concatenate([(start + centres) / 8000 for start in (0, 729, 2000 - 729)])
        later = [i for i in range(len(times)) if i == 0 or times[i] > times[:i].max()]
        np.testing.assert_allclose(every.frames, last[later], atol=1e-6)
        np.testing.assert_allclose(every.times, times[later])
        # Every layer's track, each averaged in time onto the last layer's frames: layer 2's
        # 27 frames per window over the last layer's bins, the same frames kept.
        assert [t.shape for t in every.layer_frames] == [(len(later), c) for c in
                                                         (4, 4, 8, 8, 8, 8, 16)]  # fmt: skip
        np.testing.assert_allclose(every.layer_frames[6], every.frames, atol=1e-6)
        layer_2 = encoder.forward_features(windows, layer=2)  # (3, 8, 27)
        bins = torch.nn.functional.adaptive_avg_pool1d(layer_2, per_window)
        by_hand = bins.transpose(1, 2).reshape(-1, 8).numpy()[later]
        np.testing.assert_allclose(every.layer_frames[2], by_hand, atol=1e-6)
        assert one.layer_frames is None and track.layer_frames is None  # one layer: no copies


def test_load_reads_a_run_folder_and_names_a_truncated_weights_file(tmp_path: Path):
    encoder = _checkpoint(tmp_path / "run" / "checkpoints" / "step-00000005")
    (tmp_path / "run" / "latest").write_text("step-00000005\n")
    x = np.random.default_rng(3).uniform(-0.5, 0.5, 729).astype(np.float32)
    with torch.no_grad():
        expected = encoder(torch.from_numpy(x)[None])[0].numpy()
    np.testing.assert_allclose(load(tmp_path / "run").embed(x, 8000).clip, expected, atol=1e-6)
    weights = tmp_path / "run" / "checkpoints" / "step-00000005" / "encoder.safetensors"
    weights.write_bytes(weights.read_bytes()[:-100])
    with pytest.raises(MusicSSLError) as error:
        load(tmp_path / "run")
    message = str(error.value)
    assert str(weights) in message and "\n" not in message


def _cosine(a: np.ndarray, b: np.ndarray) -> float:
    return float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b)))


def test_integer_pcm_is_scaled_like_an_audio_file(tmp_path: Path):
    _checkpoint(tmp_path / "ckpt")
    model = load(tmp_path / "ckpt")
    x = tone(300, sr=8000, seconds=0.2, amplitude=0.6)
    reference = model.embed(x, 8000).clip
    pcm16 = np.round(x * 32767).astype(np.int16)
    pcm32 = np.round(x.astype(np.float64) * (2**31 - 1)).astype(np.int32)
    pcm8 = (np.round(x * 127) + 128).astype(np.uint8)
    for pcm, as_float in (
        (pcm16, pcm16 / 32768),
        (pcm32, pcm32 / 2**31),
        (pcm8, (pcm8.astype(np.float32) - 128) / 128),
    ):
        embedding = model.embed(pcm, 8000).clip
        assert _cosine(embedding, reference) > 0.999, pcm.dtype
        exact = model.embed(as_float.astype(np.float32), 8000).clip
        np.testing.assert_allclose(embedding, exact, atol=1e-6)
    np.testing.assert_allclose(
        model.embed(torch.from_numpy(pcm16), 8000).clip, model.embed(pcm16, 8000).clip
    )
    with pytest.raises(MusicSSLError, match="int64"):
        model.embed(pcm16.astype(np.int64), 8000)
    # Big-endian PCM (as AIFF stores it), a bfloat16 tensor, and blocks of a stream are
    # read alike.
    exact16 = model.embed(pcm16, 8000).clip
    np.testing.assert_allclose(model.embed(pcm16.astype(">i2"), 8000).clip, exact16)
    half = torch.from_numpy(x).to(torch.bfloat16)
    assert _cosine(model.embed(half, 8000).clip, reference) > 0.999
    streamed = model.embed_stream(iter(np.array_split(pcm16, 3))).clip
    np.testing.assert_allclose(streamed, exact16, atol=1e-6)


def test_multichannel_input_is_downmixed_like_an_audio_file(tmp_path: Path, write_audio):
    _checkpoint(tmp_path / "ckpt")
    model = load(tmp_path / "ckpt")
    left = tone(220, sr=8000, seconds=0.2, amplitude=0.4)
    right = tone(550, sr=8000, seconds=0.2, amplitude=0.3)
    stereo = np.stack([left, right])
    downmix = model.embed((left + right) / 2, 8000).clip
    np.testing.assert_allclose(model.embed(stereo, 8000).clip, downmix, atol=1e-6)
    np.testing.assert_allclose(model.embed(torch.from_numpy(stereo), 8000).clip, downmix, atol=1e-6)
    # The same stereo signal as a file goes through the command line's path.
    write_audio("music/stereo.wav", stereo, 8000, subtype="FLOAT")
    embed_files(model, tmp_path / "music", out=tmp_path / "s.npz", progress=False)
    np.testing.assert_allclose(np.load(tmp_path / "s.npz")["emb"][0], downmix, atol=1e-6)
    with pytest.raises(MusicSSLError, match="transpose"):
        model.embed(stereo.T, 8000)  # (num_samples, channels)
    with pytest.raises(MusicSSLError, match="channels, num_samples"):
        model.embed(stereo[None], 8000)


def test_non_finite_audio_is_refused(tmp_path: Path, write_audio):
    _checkpoint(tmp_path / "ckpt")
    model = load(tmp_path / "ckpt")
    x = tone(300, sr=8000, seconds=0.2)
    for bad in (np.nan, np.inf, -np.inf):
        y = x.copy()
        y[100] = bad
        with pytest.raises(MusicSSLError, match="NaN or infinite"):
            model.embed(y, 8000)
    y = x.copy()
    y[1000] = np.nan
    with pytest.raises(MusicSSLError, match="sample 1400"):
        model.embed_stream(iter([x[:400], y]))
    for sr in (0, -8000, 8000.5, float("nan")):
        with pytest.raises(MusicSSLError, match="sr must be a positive whole number"):
            model.embed(x, sr)
    np.testing.assert_allclose(model.embed(x, 8000.0).clip, model.embed(x, 8000).clip)
    # A float file holding a NaN is reported and skipped, not embedded as NaN.
    write_audio("music/good.wav", x, 8000)
    write_audio("music/nan.wav", y, 8000, subtype="FLOAT")
    summary = embed_files(model, tmp_path / "music", out=tmp_path / "e.npz", progress=False)
    assert summary == {"embedded": 1, "skipped": 1}
    assert np.load(tmp_path / "e.npz")["names"].tolist() == ["good.wav"]


def test_embed_files_refuses_bad_options_before_reading_a_file(
    tmp_path: Path, write_audio, monkeypatch
):
    _checkpoint(tmp_path / "ckpt")
    model = load(tmp_path / "ckpt")
    write_audio("music/a.wav", tone(220, sr=8000, seconds=0.3), 8000)
    music, out = tmp_path / "music", tmp_path / "e.npz"

    def no_reading(*args, **kwargs):
        raise AssertionError("a file was read before the options were checked")

    monkeypatch.setattr("musicssl.audio.stream", no_reading)
    for hop in (0.0, -0.5, 1e-5, float("nan")):  # 1e-5 s is under one sample at 8 kHz
        with pytest.raises(MusicSSLError, match="hop must be at least one sample"):
            embed_files(model, music, out=out, hop=hop, progress=False)
    for layers in (99, 7, -8, "99", "last", 1.7, True):  # no float or bool rounded to a layer
        with pytest.raises(MusicSSLError, match="layer"):
            embed_files(model, music, out=out, layers=layers, progress=False)
    with pytest.raises(MusicSSLError, match="batch_size must be a positive integer"):
        embed_files(model, music, out=out, batch_size=0, progress=False)
    (tmp_path / "folder").mkdir()
    with pytest.raises(MusicSSLError, match="is a folder") as error:
        embed_files(model, music, out=tmp_path / "folder", progress=False)
    assert "\n" not in str(error.value) and str(tmp_path / "folder") in str(error.value)
    notes = tmp_path / "notes.npz"
    notes.write_text("not mine")
    with pytest.raises(MusicSSLError, match="not one musicssl embed wrote"):
        embed_files(model, music, out=notes, progress=False)
    assert notes.read_text() == "not mine"
    with pytest.raises(MusicSSLError, match="hop must be at least one sample"):
        model.embed(tone(220, sr=8000, seconds=0.3), 8000, hop=0.0)


def test_embed_files_replaces_its_own_output_and_keeps_the_name(tmp_path: Path, write_audio):
    _checkpoint(tmp_path / "ckpt")
    model = load(tmp_path / "ckpt")
    write_audio("music/a.wav", tone(220, sr=8000, seconds=0.3), 8000)
    out = tmp_path / "embeddings.data"  # no .npz suffix: written under exactly this name
    embed_files(model, tmp_path / "music", out=out, progress=False)
    write_audio("music/b.wav", tone(330, sr=8000, seconds=0.3), 8000)
    embed_files(model, tmp_path / "music", out=out, hop=0.05, progress=False)
    assert np.load(out)["names"].tolist() == ["a.wav", "b.wav"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ckpt", "embeddings.data", "music"]


def test_the_default_freq_readout_keeps_the_frequency_bins_of_each_layer():
    from musicssl.embed import Model
    from musicssl.encoders import build_encoder

    torch.manual_seed(0)
    options = {"channels": 4, "hop_length": 64, "input_samples": 8192}
    encoder = build_encoder("short_chunk_cnn", **options)
    signal = np.random.default_rng(0).standard_normal(8192).astype(np.float32) * 0.1
    mean = Model(encoder, readout="mean").embed(signal, 16000, layers="all")
    freq = Model(encoder).embed(signal, 16000, layers="all")  # the default read-out
    np.testing.assert_array_equal(mean.clip, freq.clip)  # the encoder's own pooling
    with torch.no_grad():
        maps = encoder.forward_maps(torch.from_numpy(signal)[None])
    assert [m.shape[2] for m in maps] == [64, 32, 16, 8, 4, 2, 1]  # 128 mels halved per block
    for k, feature_map in enumerate(maps):
        channels, bins = feature_map.shape[1:3]
        assert freq.layers[k].shape == (channels * bins,)
        np.testing.assert_allclose(
            freq.layers[k], feature_map[0].mean(dim=-1).flatten().numpy(), rtol=1e-5, atol=1e-6
        )
        # The mean read-out is the frames' maximum over those bins, averaged over time.
        np.testing.assert_allclose(
            mean.layers[k], feature_map[0].amax(dim=1).mean(dim=-1).numpy(), rtol=1e-5, atol=1e-6
        )
    # One bin left at the last block: both read-outs agree there.
    np.testing.assert_allclose(freq.layers[-1], mean.layers[-1], rtol=1e-5, atol=1e-6)
    with pytest.raises(MusicSSLError, match="readout='time'"):
        Model(encoder, readout="time")


def _truncated_wav(path: Path, *, frames: int, kept: int, sr: int = 8000) -> None:
    """A 16-bit mono WAV whose header declares ``frames`` but whose data holds ``kept``."""
    signal = (0.3 * np.sin(2 * np.pi * 440 * np.arange(frames) / sr)).astype(np.float32)
    sf.write(str(path), signal, sr, subtype="PCM_16")
    data = path.read_bytes()
    header = len(data) - 2 * frames  # a plain 44-byte header, data last
    path.write_bytes(data[: header + 2 * kept])


def test_a_truncated_wav_is_skipped_and_reported_like_index_does(
    tmp_path: Path, write_audio, capsys
):
    _checkpoint(tmp_path / "ckpt")
    model = load(tmp_path / "ckpt")
    write_audio("audio/whole.wav", tone(440, sr=8000, seconds=1.0), 8000)
    _truncated_wav(tmp_path / "audio" / "cut.wav", frames=8000, kept=5000)
    summary = embed_files(model, tmp_path / "audio", out=tmp_path / "e.npz", progress=False)
    assert summary == {"embedded": 1, "skipped": 1}
    out = capsys.readouterr().out
    assert "skipped cut.wav: truncated: header declares 8000 frames, file holds 5000\n" in out
    with np.load(tmp_path / "e.npz") as data:
        assert data["names"].tolist() == ["whole.wav"]


def test_a_folder_of_bad_files_alone_names_the_first_reason(tmp_path: Path):
    _checkpoint(tmp_path / "ckpt")
    (tmp_path / "audio").mkdir()
    _truncated_wav(tmp_path / "audio" / "a.wav", frames=8000, kept=5000)
    (tmp_path / "audio" / "b.wav").write_bytes(b"")
    with pytest.raises(MusicSSLError) as caught:
        embed_files(load(tmp_path / "ckpt"), tmp_path / "audio", out=tmp_path / "e.npz",
                    progress=False)  # fmt: skip
    assert str(caught.value) == (
        f"{tmp_path / 'audio'}: nothing could be embedded (2 bad files; the first: a.wav: "
        "truncated: header declares 8000 frames, file holds 5000)"
    )
    assert not (tmp_path / "e.npz").exists()


def test_what_a_decoder_prints_is_held_back_and_counted(tmp_path: Path, write_audio, capfd):
    _checkpoint(tmp_path / "ckpt")
    model = load(tmp_path / "ckpt")
    write_audio("audio/whole.wav", tone(440, sr=8000, seconds=1.0), 8000)
    # An ID3 tag mpg123 cannot parse: it writes its own warning to file descriptor 2.
    (tmp_path / "audio" / "odd.mp3").write_bytes(b"ID3" + bytes(range(256)) * 40)
    summary = embed_files(model, tmp_path / "audio", out=tmp_path / "e.npz", progress=False)
    assert summary == {"embedded": 1, "skipped": 1}
    # Nothing of the decoder's own reaches the terminal: at most our one line counting it
    # (libsndfile builds differ in what their mpg123 prints).
    lines = capfd.readouterr().err.splitlines()
    assert len(lines) <= 1 and all(line.startswith("decoders printed 1 note") for line in lines)


def test_the_stream_checks_the_frames_read_against_the_header(tmp_path: Path, monkeypatch):
    from musicssl import audio
    from musicssl.errors import AudioError

    sf.write(str(tmp_path / "a.wav"), np.zeros(4000, np.float32), 8000)
    header = audio.info(tmp_path / "a.wav")
    # A header that promises more than the decoder delivers (as a cut-off FLAC would).
    monkeypatch.setattr(audio, "info", lambda path: dataclasses.replace(header, frames=6000))
    with pytest.raises(AudioError, match="truncated: header declares 6000 frames, decoded 4000"):
        list(audio.stream(tmp_path / "a.wav", sr=8000, block_seconds=0.1))


def test_an_implausible_sample_rate_is_named(tmp_path: Path):
    _checkpoint(tmp_path / "ckpt")
    model = load(tmp_path / "ckpt")
    with pytest.raises(MusicSSLError) as error:
        model.embed(np.zeros(16000, np.float32), sr=10**9)
    assert str(error.value) == (
        "audio: sr=1000000000 Hz is not a plausible sample rate (1000-768000 Hz)"
    )
    with pytest.raises(MusicSSLError, match="sr=1 Hz is not a plausible sample rate"):
        model.embed(np.zeros(3000, np.float32), sr=1)
    assert model.embed(np.zeros(8000, np.float32), sr=768_000).clip.ndim == 1


def test_out_naming_a_symbolic_link_is_refused_and_the_link_kept(tmp_path: Path, write_audio):
    _checkpoint(tmp_path / "ckpt")
    model = load(tmp_path / "ckpt")
    write_audio("audio/a.wav", tone(440, sr=8000, seconds=1.0), 8000)
    link = tmp_path / "e.npz"
    link.symlink_to(tmp_path / "elsewhere" / "e.npz")
    with pytest.raises(MusicSSLError) as error:
        embed_files(model, tmp_path / "audio", out=link, progress=False)
    assert str(error.value) == (
        f"{link}: is a symbolic link (to a missing file); --out names a plain .npz file to write"
    )
    assert link.is_symlink() and not link.exists()


def test_out_naming_a_users_npz_with_more_arrays_is_refused(tmp_path: Path, write_audio):
    _checkpoint(tmp_path / "ckpt")
    model = load(tmp_path / "ckpt")
    write_audio("audio/a.wav", tone(440, sr=8000, seconds=1.0), 8000)
    # names and emb, as another system's embeddings would have, and the user's own array.
    theirs = tmp_path / "theirs.npz"
    np.savez(theirs, names=np.array(["x.wav"]), emb=np.zeros((1, 4)), mydata=np.arange(3))
    before = theirs.read_bytes()
    with pytest.raises(MusicSSLError, match="exists and is not one musicssl embed wrote"):
        embed_files(model, tmp_path / "audio", out=theirs, progress=False)
    assert theirs.read_bytes() == before
    # Another system's embeddings, names and emb alone, are the user's too.
    other = tmp_path / "other_system.npz"
    np.savez(other, names=np.array(["x.wav"]), emb=np.ones((1, 7)))
    before = other.read_bytes()
    with pytest.raises(MusicSSLError, match="exists and is not one musicssl embed wrote"):
        embed_files(model, tmp_path / "audio", out=other, progress=False)
    assert other.read_bytes() == before
    # Its own output, layers and frames included, it replaces.
    ours = tmp_path / "ours.npz"
    embed_files(model, tmp_path / "audio", out=ours, layers="all", frames=True, progress=False)
    embed_files(model, tmp_path / "audio", out=ours, progress=False)
    with np.load(ours) as data:
        assert set(data.files) == {"names", "emb", "encoder", "checkpoint"}
        assert str(data["encoder"]) == model.fingerprint  # which weights made them
        assert str(data["checkpoint"]) == str((tmp_path / "ckpt").resolve())  # and where from


def test_frame_times_follow_the_encoders_frame_hop():
    # A spectrogram's centred frames, 128 samples apart: 3 s at 16 kHz is 375 hops, 376
    # frames from 0 to the end on one grid, as the pitch read-out times them.
    pesto = Model(build_encoder("pesto_cnn"))
    track = pesto.embed(tone(220, sr=16000, seconds=3.0), 16000, frames=True)
    assert track.times.shape == (376,)
    np.testing.assert_allclose(track.times, np.arange(376) * 128 / 16000)
    # Time patches of a ViT, 16 frames of 160 samples each, whatever the window's length;
    # patch i reads frames 16 i to 16 i + 15, centred on frame 16 i + 7.5.
    vit = Model(build_encoder("spectrogram_vit"))
    patches = vit.embed(tone(220, sr=16000, seconds=3.0), 16000, frames=True)
    # The window, padded past the 3 s, keeps the 19 patches centred within them.
    np.testing.assert_allclose(patches.times, (16 * np.arange(19) + 7.5) * 0.01)
    # Tokens of the frame transformer, 4 frames of 160 samples stacked: centred on 4 i + 1.5.
    stacked = Model(build_encoder("frame_transformer", stack=4))
    tokens = stacked.embed(tone(220, sr=16000, seconds=1.0), 16000, frames=True)
    np.testing.assert_allclose(tokens.times[:10], (4 * np.arange(10) + 1.5) * 0.01)


def test_frames_of_a_short_signal_stop_at_its_end(tmp_path: Path):
    _checkpoint(tmp_path / "ckpt")
    model = load(tmp_path / "ckpt")
    # 300 samples of a 729-sample window: frames every 27 samples, centres at 13.5, 40.5, ...
    track = model.embed(np.full(300, 0.1, np.float32), 8000, layers=2, frames=True)
    assert track.times.shape == (11,) and track.times[-1] == (10.5 * 27) / 8000 <= 300 / 8000
    # With windows every 243 samples, each time is still read once, in order.
    overlapping = model.embed(np.full(2000, 0.1, np.float32), 8000, layers=2, frames=True,
                              hop=243 / 8000)  # fmt: skip
    assert np.all(np.diff(overlapping.times) > 0) and overlapping.times[-1] <= 2000 / 8000
    # 10 samples, under half a frame: one frame, timed at the signal's middle, not past it.
    tiny = model.embed(np.full(10, 0.1, np.float32), 8000, layers=2, frames=True)
    assert tiny.times.tolist() == [5 / 8000] and tiny.frames.shape == (1, 8)
