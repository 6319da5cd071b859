"""An audio model from a local Hugging Face folder (``hf:FOLDER``), on tiny models made here:
its layers as transformers computes them, its frames' times, its random-weights baseline, its
identity, and the one-line refusals."""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile
import torch

import musicssl
from musicssl.errors import MusicSSLError
from musicssl.evaluate.baselines import build_baseline
from musicssl.evaluate.run import _random_reference, evaluate
from musicssl.evaluate.sources import open_source

transformers = pytest.importorskip(
    "transformers", reason="transformers (the huggingface extra) is not installed"
)

STRIDES = (5, 4, 4)  # 80 samples between frames


def _save(folder: Path, *, kind: str = "wav2vec2", seed: int = 1, normalize: bool = True) -> Path:
    """A two-block model of ``kind`` with its feature extractor, as save_pretrained writes it."""
    sizes = dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64,
                 conv_dim=(16, 16, 16), conv_stride=STRIDES, conv_kernel=(10, 4, 4),
                 num_conv_pos_embeddings=16, num_conv_pos_embedding_groups=2)  # fmt: skip
    torch.manual_seed(seed)
    if kind == "wav2vec2":
        model = transformers.Wav2Vec2Model(transformers.Wav2Vec2Config(**sizes))
    else:
        model = transformers.HubertModel(transformers.HubertConfig(**sizes))
    model.save_pretrained(folder)
    transformers.Wav2Vec2FeatureExtractor(
        sampling_rate=16000, do_normalize=normalize, return_attention_mask=False
    ).save_pretrained(folder)
    return folder


@pytest.mark.parametrize("kind", ["wav2vec2", "hubert"])
@pytest.mark.parametrize("normalize", [True, False])
def test_every_layer_is_a_hidden_state_as_transformers_computes_it(
    tmp_path: Path, kind: str, normalize: bool
):
    folder = _save(tmp_path / "model", kind=kind, normalize=normalize)
    model = musicssl.load(f"hf:{folder}")
    # 5 s between window starts, and the 85 - 80 samples a frame reads past its hop.
    assert (model.sample_rate, model.window_samples, model.num_layers) == (16000, 80005, 3)
    assert model.embedding_dim == 32 and model.encoder.frame_hop() == 80
    signal = np.random.default_rng(0).normal(0.1, 0.3, 80000).astype(np.float32)
    extractor = transformers.AutoFeatureExtractor.from_pretrained(folder)
    reference = transformers.AutoModel.from_pretrained(folder).eval()
    inputs = extractor(signal, sampling_rate=16000, return_tensors="pt")
    with torch.no_grad():
        expected = reference(**inputs, output_hidden_states=True).hidden_states
        layers = model.encoder.forward_layers(torch.from_numpy(signal)[None])
    assert len(layers) == len(expected) == 3
    for ours, theirs in zip(layers, expected):
        assert ours.shape == (1, 32, theirs.shape[1])
        torch.testing.assert_close(ours.transpose(1, 2), theirs, atol=1e-4, rtol=1e-4)
    # One window: the clip embedding is the mean of the last layer's frames.
    embedded = model.embed(signal, 16000, layers="all", frames=True)
    np.testing.assert_allclose(embedded.clip, expected[-1][0].mean(0).numpy(), atol=1e-4)
    assert len(embedded.layers) == 3 and embedded.frames.shape == (expected[-1].shape[1], 32)
    # Frame i reads samples [80 i, 80 i + 85): 1 + 9 + 3 * 5 + 3 * 20 = 85 of them.
    np.testing.assert_allclose(embedded.times, (42 + 80 * np.arange(len(embedded.times))) / 16000)


def test_the_frames_of_consecutive_windows_tile_the_signal_a_hop_apart(tmp_path: Path):
    model = musicssl.load(f"hf:{_save(tmp_path / 'model')}")
    signal = np.random.default_rng(0).normal(0, 0.1, 12 * 16000).astype(np.float32)
    times = model.embed(signal, 16000, frames=True).times
    steps = np.diff(times) * 16000
    assert (steps > 0).all() and steps.max() == pytest.approx(80)  # no frame missing
    assert np.allclose(steps[: 2 * 1000 - 1], 80)  # two windows of 1000 frames, and between


def test_the_last_layer_is_the_models_output_also_when_it_norms_after_its_last_block(
    tmp_path: Path,
):
    folder = tmp_path / "large"  # the layout of the large models
    torch.manual_seed(1)
    config = transformers.Wav2Vec2Config(
        hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64,
        conv_dim=(16, 16, 16), conv_stride=STRIDES, conv_kernel=(10, 4, 4),
        num_conv_pos_embeddings=16, num_conv_pos_embedding_groups=2,
        do_stable_layer_norm=True, feat_extract_norm="layer")  # fmt: skip
    transformers.Wav2Vec2Model(config).save_pretrained(folder)
    transformers.Wav2Vec2FeatureExtractor(sampling_rate=16000).save_pretrained(folder)
    signal = np.random.default_rng(2).normal(0, 0.2, 48000).astype(np.float32)
    reference = transformers.AutoModel.from_pretrained(folder).eval()
    extractor = transformers.AutoFeatureExtractor.from_pretrained(folder)
    with torch.no_grad():
        output = reference(**extractor(signal, sampling_rate=16000, return_tensors="pt"))
    expected = output.last_hidden_state[0].mean(0).numpy()
    np.testing.assert_allclose(musicssl.load(f"hf:{folder}").embed(signal, 16000).clip, expected,
                               atol=1e-4)  # fmt: skip


def test_a_clip_shorter_than_a_window_is_embedded_as_it_is_not_padded_with_silence(
    tmp_path: Path,
):
    folder = _save(tmp_path / "model")
    model = musicssl.load(f"hf:{folder}")
    extractor = transformers.AutoFeatureExtractor.from_pretrained(folder)
    reference = transformers.AutoModel.from_pretrained(folder).eval()
    rng = np.random.default_rng(1)
    for samples in (16000, 3200, 50):  # 1 s, 0.2 s, and under the 85 samples a frame reads
        clip = rng.normal(0.0, 0.2, samples).astype(np.float32)
        padded = np.concatenate([clip, np.zeros(max(0, 85 - samples), np.float32)])
        inputs = extractor(padded, sampling_rate=16000, return_tensors="pt")
        with torch.no_grad():
            expected = reference(**inputs).last_hidden_state[0].mean(0).numpy()
        np.testing.assert_allclose(model.embed(clip, 16000).clip, expected, atol=1e-4)


def _edit_config(folder: Path, **changes) -> Path:
    """The folder with ``changes`` written into its config.json, its weights as they were."""
    config = json.loads((folder / "config.json").read_text())
    (folder / "config.json").write_text(json.dumps({**config, **changes}))
    return folder


def _as_mert(folder: Path, **additions) -> Path:
    """A HuBERT folder rewritten as MERT's files are: its own model_type and code, its options."""
    return _edit_config(folder, model_type="mert_model", architectures=["MERTModel"],
                        auto_map={"AutoModel": "modeling_MERT.MERTModel"},
                        **{"feature_extractor_cqt": False, "deepnorm": False,
                           "attention_relax": -1.0, **additions})  # fmt: skip


def test_a_mert_folder_is_read_as_the_hubert_it_is_built_on_without_its_code(tmp_path: Path):
    folder = _save(tmp_path / "mert", kind="hubert")
    reference = transformers.HubertModel.from_pretrained(folder).eval()
    _as_mert(folder)
    model = musicssl.load(f"hf:{folder}")
    signal = torch.randn(1, 16000)
    with torch.no_grad():
        expected = reference(signal, output_hidden_states=True).hidden_states
        for ours, theirs in zip(model.encoder.forward_layers(signal), expected, strict=True):
            torch.testing.assert_close(ours.transpose(1, 2), theirs)
    assert model.encoder.describe().startswith(f"MERT, read as HuBERT, from {folder}: 3 layers")
    drawn = build_baseline("random", reference=f"hf:{folder}")  # its own architecture
    assert drawn.encoder.state_dict().keys() == model.encoder.state_dict().keys()
    _as_mert(_save(tmp_path / "unset", kind="hubert"), attention_relax=None)  # read as off
    musicssl.load(f"hf:{tmp_path / 'unset'}")
    for option, value in (("feature_extractor_cqt", True), ("deepnorm", True),
                          ("attention_relax", 32.0)):  # fmt: skip
        on = _as_mert(_save(tmp_path / option, kind="hubert"), **{option: value})
        with pytest.raises(MusicSSLError, match=f"a MERT model with {option}={value!r}"):
            musicssl.load(f"hf:{on}")


def test_the_fingerprint_follows_the_weights_and_the_random_baseline_is_the_same_architecture(
    tmp_path: Path,
):
    first = _save(tmp_path / "a", seed=1)
    again = musicssl.load(f"hf:{first}").fingerprint
    assert again == musicssl.load(f"hf:{first}").fingerprint
    assert again != musicssl.load(f"hf:{_save(tmp_path / 'b', seed=2)}").fingerprint
    random_a = build_baseline("random", reference=f"hf:{first}")
    random_b = build_baseline("random", reference=f"hf:{first}")
    trained = musicssl.load(f"hf:{first}").encoder.state_dict()
    drawn = random_a.encoder.state_dict()
    assert drawn.keys() == trained.keys()
    assert all(torch.equal(v, random_b.encoder.state_dict()[k]) for k, v in drawn.items())
    assert not all(torch.equal(v, trained[k]) for k, v in drawn.items())
    assert random_a.config()["encoder"]["name"] == "huggingface"
    # A report of random weights says whose: the reference's architecture, or the demo's.
    line = open_source("baseline:random", reference=f"hf:{first}").model_line
    assert line == f"random weights (seed 0) of the architecture of hf:{first} (huggingface)"
    demo = open_source("baseline:random").model_line
    assert demo == "random weights (seed 0) of the demo's encoder (branches)"
    # The source's identity (the cache key) is the fingerprint: new weights, new embeddings.
    weights = again.rsplit(":", 1)[0]  # the read-out changes nothing for these models
    assert open_source(f"hf:{first}").identity == {"huggingface": weights}
    assert open_source(f"hf:{first}", readout="mean").identity == {"huggingface": weights}


def test_an_hf_model_is_evaluated_beside_random_weights_of_its_architecture(
    tiny_corpus: Path, tmp_path: Path
):
    folder = _save(tmp_path / "model")
    results = evaluate(f"hf:{folder}", out=tmp_path / "out", corpus=tiny_corpus, tasks=["key"],
                       seeds=1, baselines=["random"], cache=tmp_path / "cache",
                       progress=False)  # fmt: skip
    assert set(results.tasks) == {"key"} and results.equivariance
    assert results.baselines is not None and set(results.baselines) == {"baseline:random"}
    assert len(list((tmp_path / "cache" / "embeddings").glob("*.npz"))) == 2
    assert not results.notes  # nothing of ours trained it: no training notes
    weights = open_source(f"hf:{folder}").identity["huggingface"]
    assert results.model == (f"wav2vec2 from {folder}: 3 layers of 32, 16000 Hz in 5 s windows, "
                             f"each normalised; weights sha256 {weights[:16]}")  # fmt: skip
    assert f"model**: wav2vec2 from {folder}" in (tmp_path / "out" / "report.md").read_text()


def test_embed_index_and_search_through_an_hf_model(tmp_path: Path):
    folder = _save(tmp_path / "model")
    audio = tmp_path / "audio"
    audio.mkdir()
    for seed, name in enumerate(("a", "b")):  # noise, and a tone
        rng = np.random.default_rng(seed)
        signal = rng.normal(0, 0.1, 24000) if seed == 0 else 0.5 * np.sin(np.arange(24000) / 9)
        soundfile.write(audio / f"{name}.wav", signal, 16000)
    command = ["embed", f"hf:{folder}", str(audio), "--out", str(tmp_path / "e.npz")]
    done = subprocess.run(
        [sys.executable, "-m", "musicssl", *command], capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    with np.load(tmp_path / "e.npz") as data:
        assert data["emb"].shape == (2, 32) and "checkpoint" not in data.files
        assert str(data["encoder"]) == musicssl.load(f"hf:{folder}").fingerprint
        assert str(data["model"]) == f"hf:{folder.resolve()}"  # its architecture, for random
    opened = open_source(str(tmp_path / "e.npz"))
    assert _random_reference(opened, "e.npz", warn=False) == f"hf:{folder.resolve()}"

    # Audio-to-audio search through the same model; text needs an audio-text run.
    def musicssl_cli(*words: str) -> subprocess.CompletedProcess:
        command = [sys.executable, "-m", "musicssl", *words]
        return subprocess.run(command, capture_output=True, text=True)

    assert (
        musicssl_cli("index", str(tmp_path / "e.npz"), "--out", str(tmp_path / "idx")).returncode
        == 0
    )
    found = musicssl_cli("search", str(tmp_path / "idx"), "--run", f"hf:{folder}", "--audio",
                         str(audio / "b.wav"), "-k", "1")  # fmt: skip
    assert found.returncode == 0 and found.stdout.split()[-1] == "b.wav"
    soundfile.write(tmp_path / "empty.wav", np.zeros(0), 16000)
    empty = musicssl_cli("search", str(tmp_path / "idx"), "--run", f"hf:{folder}", "--audio",
                         str(tmp_path / "empty.wav"))  # fmt: skip
    assert empty.returncode == 1 and "empty.wav: no audio in it" in empty.stderr
    done = musicssl_cli("search", str(tmp_path / "idx"), "--run", f"hf:{folder}", "--text", "x")
    assert done.returncode == 1 and "this model has no text tower" in done.stderr


def test_folders_it_cannot_read_are_refused_in_one_line(tmp_path: Path):
    with pytest.raises(MusicSSLError, match="nowhere: no such model folder"):
        musicssl.load(f"hf:{tmp_path / 'nowhere'}")
    folder = _save(tmp_path / "model")
    (folder / "preprocessor_config.json").unlink()
    with pytest.raises(MusicSSLError, match=r"preprocessor_config.json: missing \(the feature"):
        musicssl.load(f"hf:{folder}")
    custom = _save(tmp_path / "custom")  # a known model_type that brings its own code
    _edit_config(custom, auto_map={"AutoModel": "m.M"})
    with pytest.raises(MusicSSLError, match="comes with code of its own .* evaluate the .npz"):
        musicssl.load(f"hf:{custom}")
    for kind in ("sew", "speecht5"):  # strides over the waveform, but not frames to probe
        other = tmp_path / kind
        other.mkdir()
        (other / "config.json").write_text(json.dumps({"model_type": kind, "conv_stride": [5]}))
        with pytest.raises(MusicSSLError, match=f"a model of type {kind}; hf: reads wav2vec2, "):
            musicssl.load(f"hf:{other}")
    with pytest.raises(MusicSSLError, match="hf: names no folder"):
        musicssl.load("hf:")
    text = tmp_path / "bert"
    transformers.BertConfig(hidden_size=8, num_hidden_layers=1, num_attention_heads=1,
                            intermediate_size=8).save_pretrained(text)  # fmt: skip
    with pytest.raises(MusicSSLError, match="a model of type bert; hf: reads wav2vec2, "):
        musicssl.load(f"hf:{text}")
    other = _save(tmp_path / "other")  # a config of three blocks beside weights of two
    _edit_config(other, num_hidden_layers=3)
    with pytest.raises(MusicSSLError, match=r"other: the weights leave \d+ of the model's tensors"):
        musicssl.load(f"hf:{other}")
    wide = _save(tmp_path / "wide")  # a config whose width the weights do not have
    _edit_config(wide, hidden_size=48)
    with pytest.raises(
        MusicSSLError,
        match=r"wide: cannot load the model from model.safetensors \(tensors whose shapes",
    ):
        musicssl.load(f"hf:{wide}")
    fewer = _save(tmp_path / "fewer")  # a config of one block beside weights of two
    _edit_config(fewer, num_hidden_layers=1)
    with pytest.raises(MusicSSLError, match=r"fewer: the weights hold \d+ tensors the model's"):
        musicssl.load(f"hf:{fewer}")
    broken = _save(tmp_path / "broken")
    (broken / "model.safetensors").write_bytes(b"not weights")
    with pytest.raises(MusicSSLError, match="broken: cannot load the model from model.safetensors"):
        musicssl.load(f"hf:{broken}")
    done = subprocess.run([sys.executable, "-m", "musicssl", "embed", f"hf:{tmp_path / 'gone'}",
                           str(tmp_path), "--out", str(tmp_path / "e.npz")],
                          capture_output=True, text=True)  # fmt: skip
    assert done.returncode == 2 and "gone: no such folder" in done.stderr
    assert "Traceback" not in done.stderr


def test_the_command_line_reads_hf_folders_as_users_write_them(tmp_path: Path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path))
    folder = _save(tmp_path / "hubert")
    audio = tmp_path / "a.wav"
    soundfile.write(audio, np.random.default_rng(0).normal(0, 0.1, 8000), 16000)

    def embed(model: str) -> subprocess.CompletedProcess:
        command = ["embed", model, str(audio), "--out", str(tmp_path / f"{len(model)}.npz")]
        return subprocess.run([sys.executable, "-m", "musicssl", *command], capture_output=True,
                              text=True, env={**os.environ, "HOME": str(tmp_path)})  # fmt: skip

    done = embed("hf:~/hubert")  # the shell leaves ~ after hf: as it is
    assert done.returncode == 0, done.stderr
    assert "LOAD REPORT" not in done.stderr and "Loading" not in done.stderr
    assert "write hf: in lower case" in embed(f"HF:{folder}").stderr
    command = [sys.executable, "-m", "musicssl", "evaluate", f"HF:{folder}", "--out", "r"]
    evaluated = subprocess.run(command, capture_output=True, text=True, cwd=tmp_path)
    assert evaluated.returncode == 2 and "write hf: in lower case" in evaluated.stderr
    with pytest.raises(MusicSSLError, match="write hf: in lower case"):
        musicssl.load(f"Hf:{folder}")
    with pytest.raises(MusicSSLError, match="config.json: not a folder"):
        musicssl.load(f"hf:{folder / 'config.json'}")
    assert "hf: names no folder" in embed("hf:").stderr
    assert (
        f"{folder}: a Hugging Face model folder? name it hf:{folder}" in embed(str(folder)).stderr
    )
