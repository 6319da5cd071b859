"""LAION-CLAP from a local Hugging Face folder (``hf:FOLDER``), on tiny models made here: its
audio tower's layers and clip embedding as transformers computes them, its frames in time
order, its text tower, zero-shot in ``evaluate``, and the one-line refusals."""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile
import torch

import musicssl
from musicssl.errors import MusicSSLError
from musicssl.evaluate.run import evaluate
from musicssl.evaluate.sources import open_source

transformers = pytest.importorskip(
    "transformers", reason="transformers (the huggingface extra) is not installed"
)
from tokenizers import ByteLevelBPETokenizer  # noqa: E402  (a dependency of transformers)

RATE, CROP = 16000, 32000  # 2 s crops; a log-mel of 16 bands every 160 samples: 201 frames
CAPTIONS = ["a piano plays a chord", "the sound of drums", "a guitar in a major key"]


def _save(folder: Path, *, fusion: bool = False, seed: int = 1, tokenizer: bool = True) -> Path:
    """A CLAP of two HTS-AT stages over a 64 x 64 image (4 quarters of 16 mel bands x 64
    columns), with its feature extractor and tokenizer, as save_pretrained writes them."""
    folder.mkdir(parents=True)
    bpe = ByteLevelBPETokenizer()
    bpe.train_from_iterator(CAPTIONS * 4, vocab_size=300, min_frequency=1,
                            special_tokens=["<s>", "<pad>", "</s>", "<unk>", "<mask>"])  # fmt: skip
    vocab, merges = bpe.save_model(str(folder))
    text = transformers.RobertaTokenizer(vocab=vocab, merges=merges)
    text_config = dict(vocab_size=len(text), hidden_size=16, num_hidden_layers=2,
                       num_attention_heads=2, intermediate_size=32, max_position_embeddings=40,
                       projection_dim=8)  # fmt: skip
    audio_config = dict(spec_size=64, num_mel_bins=16, patch_size=4, patch_stride=(4, 4),
                        patch_embeds_hidden_size=8, hidden_size=16, depths=[1, 1],
                        num_attention_heads=[2, 2], window_size=4, enable_fusion=fusion,
                        projection_dim=8)  # fmt: skip
    config = transformers.ClapConfig(
        text_config=text_config, audio_config=audio_config, projection_dim=8
    )
    torch.manual_seed(seed)
    transformers.ClapModel(config).save_pretrained(folder)
    extractor = transformers.ClapFeatureExtractor(
        feature_size=16, sampling_rate=RATE, hop_length=160, max_length_s=2, fft_window_size=400,
        frequency_max=RATE // 2,
        truncation="fusion" if fusion else "rand_trunc", padding="repeatpad",
    )  # fmt: skip
    if tokenizer:
        transformers.ClapProcessor(feature_extractor=extractor, tokenizer=text).save_pretrained(
            folder
        )
    else:
        extractor.save_pretrained(folder)
        for name in ("vocab.json", "merges.txt"):
            (folder / name).unlink()
    return folder


def _reference(folder: Path) -> tuple:
    model = transformers.ClapModel.from_pretrained(folder).eval()
    extractor = transformers.AutoFeatureExtractor.from_pretrained(folder)
    return model, extractor


@pytest.mark.parametrize("fusion", [False, True])
def test_the_clip_embedding_and_layers_are_the_audio_towers_as_transformers_computes_them(
    tmp_path: Path, fusion: bool
):
    folder = _save(tmp_path / "clap", fusion=fusion)
    model = musicssl.load(f"hf:{folder}")
    assert (model.sample_rate, model.window_samples, model.num_layers) == (RATE, CROP, 3)
    assert model.embedding_dim == 16 and model.has_text
    reference, extractor = _reference(folder)
    signal = np.random.default_rng(0).normal(0, 0.2, CROP).astype(np.float32)
    short = signal[: CROP // 4 + 123]  # repeated 3 times, then padded with silence
    for clip in (signal, short):
        inputs = extractor(clip, sampling_rate=RATE, return_tensors="pt")
        with torch.no_grad():
            expected = reference.audio_model(input_features=inputs["input_features"],
                                             is_longer=torch.zeros(1, 1, dtype=torch.bool),
                                             output_hidden_states=True)  # fmt: skip
        embedded = model.embed(clip, RATE, layers="all")
        np.testing.assert_allclose(embedded.clip, expected.pooler_output[0].numpy(), atol=1e-5)
        # The patch embedding (8 channels), then each stage (16): every layer's mean.
        means = [state[0].mean(dim=(1, 2)).numpy() for state in expected.hidden_states[:-1]]
        means.append(expected.last_hidden_state[0].mean(dim=(1, 2)).numpy())
        assert [layer.shape for layer in embedded.layers] == [(8,), (16,), (16,)]
        for ours, theirs in zip(embedded.layers, means):
            np.testing.assert_allclose(ours, theirs, atol=1e-5)


def test_the_frames_follow_the_music_in_time_across_the_stacked_quarters(tmp_path: Path):
    model = musicssl.load(f"hf:{_save(tmp_path / 'clap')}")
    # Noise from 0.5 s to 1.0 s of a 2 s crop, silence around it: in the patch embedding (no
    # attention yet), a frame over silence equals every other frame over silence.
    signal = np.zeros(CROP, np.float32)
    signal[8000:16000] = np.random.default_rng(0).normal(0, 0.3, 8000)
    embedded = model.embed(signal, RATE, layers=0, frames=True)
    assert embedded.frames.shape == (64, 8)  # 4 quarters of 16 columns
    np.testing.assert_allclose(np.diff(embedded.times), 2 / 64, atol=2e-3)
    loud = np.abs(embedded.frames - embedded.frames[0]).max(axis=1) > 1e-4
    heard = embedded.times[loud]
    # A frame is 31 ms; the spectrogram's window reaches 12.5 ms either side of its centre,
    # and stretching 201 frames onto 256 columns (bicubic) spreads a column or two further.
    assert heard.min() > 0.5 - 0.05 and heard.max() < 1.0 + 0.05
    assert loud[(embedded.times > 0.55) & (embedded.times < 0.95)].all()
    # The last layer's 32 frames, from one crop; a clip of 0.6 s keeps those within it.
    # Frame i covers columns [8 i, 8 i + 8) of 256, centred on 8 i + 3.5, which is spectrogram
    # frame (8 i + 3.5) * 200 / 255, 160 samples each: frame 9 at 0.592 s, frame 10 at 0.655 s.
    assert model.embed(signal, RATE, frames=True).frames.shape == (32, 16)
    times = model.embed(signal[:9600], RATE, frames=True).times
    np.testing.assert_allclose(times, (8 * np.arange(10) + 3.5) * 200 / 255 * 160 / RATE)


def test_texts_and_clips_meet_in_the_joint_space_as_transformers_computes_it(tmp_path: Path):
    folder = _save(tmp_path / "clap", fusion=True)
    model = musicssl.load(f"hf:{folder}")
    reference, extractor = _reference(folder)
    tokenizer = transformers.AutoTokenizer.from_pretrained(folder)
    with torch.no_grad():
        text = reference.get_text_features(**tokenizer(CAPTIONS, padding=True,
                                                       return_tensors="pt"))  # fmt: skip
    text = getattr(text, "pooler_output", text)  # an output object from transformers 5
    np.testing.assert_allclose(model.embed_text(CAPTIONS), text.numpy(), atol=1e-5)
    signals = np.random.default_rng(1).normal(0, 0.2, (2, CROP)).astype(np.float32)
    clips = np.stack([model.embed(signal, RATE).clip for signal in signals])
    inputs = extractor(list(signals), sampling_rate=RATE, return_tensors="pt")
    shorter = torch.zeros(2, 1, dtype=torch.bool)  # no crop longer: no fusion branch taken
    with torch.no_grad():
        audio = reference.get_audio_features(inputs["input_features"], is_longer=shorter)
    audio = getattr(audio, "pooler_output", audio)
    np.testing.assert_allclose(model.project_audio(clips), audio.numpy(), atol=1e-5)
    assert np.allclose(np.linalg.norm(model.project_audio(clips), axis=1), 1)
    # A batch gives each clip what it gives alone, and numpy's random state is left alone.
    state = np.random.get_state()[1].copy()  # noqa: NPY002  (the global state itself)
    with torch.no_grad():
        batch = model.encoder(torch.from_numpy(signals)).numpy()
    np.testing.assert_allclose(batch, clips, atol=1e-5)
    assert (np.random.get_state()[1] == state).all()  # noqa: NPY002


def test_a_clap_is_evaluated_with_zero_shot_beside_its_random_weights(
    tiny_corpus: Path, tmp_path: Path
):
    folder = _save(tmp_path / "clap")
    results = evaluate(f"hf:{folder}", out=tmp_path / "out", corpus=tiny_corpus, tasks=["key"],
                       seeds=1, baselines=["random"], cache=tmp_path / "cache",
                       progress=False)  # fmt: skip
    assert {"key", "zeroshot_mode", "zeroshot_family"} <= set(results.tasks)
    assert results.baselines is not None and set(results.baselines) == {"baseline:random"}
    assert results.model.startswith(
        f"clap from {folder.resolve()}: the patch embedding and 2 HTS-AT stages (up to 16 wide)"
    )
    score = results.tasks["zeroshot_mode"].metrics["accuracy"].mean
    assert 0 <= score <= 1 and results.tasks["zeroshot_mode"].split_sizes["test"] > 0
    # Zero-shot scores the whole test split: with the pitch task alone (monophonic clips
    # only) it is left out, and the report says why.
    pitch = evaluate(f"hf:{folder}", out=tmp_path / "pitch", corpus=tiny_corpus,
                     tasks=["pitch"], seeds=1, baselines=[], cache=tmp_path / "cache",
                     progress=False)  # fmt: skip
    assert not any(name.startswith("zeroshot") for name in pitch.tasks)
    assert any(note.startswith("zero-shot left out: it scores all") for note in pitch.notes)


def test_search_by_text_through_a_clap_folder(tmp_path: Path):
    folder = _save(tmp_path / "clap")
    audio = tmp_path / "audio"
    audio.mkdir()
    for seed in range(3):
        soundfile.write(audio / f"{seed}.wav", np.random.default_rng(seed).normal(0, 0.1, RATE),
                        RATE)  # fmt: skip

    def musicssl_cli(*words: str) -> subprocess.CompletedProcess:
        command = [sys.executable, "-m", "musicssl", *words]
        return subprocess.run(command, capture_output=True, text=True)

    done = musicssl_cli("embed", f"hf:{folder}", str(audio), "--out", str(tmp_path / "e.npz"))
    assert done.returncode == 0, done.stderr
    assert (
        musicssl_cli("index", str(tmp_path / "e.npz"), "--out", str(tmp_path / "i")).returncode == 0
    )
    found = musicssl_cli("search", str(tmp_path / "i"), "--run", f"hf:{folder}", "--text",
                         "a piano", "-k", "3")  # fmt: skip
    assert found.returncode == 0, found.stderr
    model = musicssl.load(f"hf:{folder}")
    with np.load(tmp_path / "e.npz") as data:
        scores = model.project_audio(data["emb"]) @ model.embed_text("a piano")[0]
        best = str(data["names"][int(np.argmax(scores))])
    assert best in found.stdout.splitlines()[0] and found.stdout.count(".wav") == 3


def test_without_a_usable_tokenizer_the_audio_tower_works_and_text_says_why(tmp_path: Path):
    silent = _save(tmp_path / "no-tokenizer", tokenizer=False)
    half = _save(tmp_path / "half")  # a partial copy: the vocabulary's files left behind
    for name in ("tokenizer.json", "vocab.json", "merges.txt"):
        (half / name).unlink()
    damaged = _save(tmp_path / "damaged")
    (damaged / "tokenizer.json").write_text('{"version": "1.0", "trunc')
    for folder, reason in [
        (silent, "no tokenizer beside the CLAP model"),
        (half, r"its tokenizer knows \d+ tokens, the text tower \d+: a tokenizer file missing"),
        (damaged, r"its tokenizer is unreadable \("),
    ]:
        model = musicssl.load(f"hf:{folder}")
        assert not model.has_text
        assert "no zero-shot: its tokenizer is missing or unreadable" in model.encoder.describe()
        with pytest.raises(MusicSSLError, match=f"{folder.name}: {reason}"):
            model.embed_text("a piano")
        assert model.embed(np.zeros(RATE, np.float32), RATE).clip.shape == (16,)  # audio works
    # The tokenizer's files are part of what names the model's zero-shot results.
    whole = open_source(f"hf:{_save(tmp_path / 'whole')}").identity
    assert set(whole) == {"huggingface", "tokenizer"}
    assert set(open_source(f"hf:{silent}").identity) == {"huggingface"}


def _edit_extractor(folder: Path, **changes) -> None:
    """Change the feature extractor's settings in the processor's file."""
    processor = json.loads((folder / "processor_config.json").read_text())
    processor["feature_extractor"].update(changes)
    (folder / "processor_config.json").write_text(json.dumps(processor))


def test_clap_folders_it_cannot_use_are_refused_in_one_line(tmp_path: Path):
    model = musicssl.load(f"hf:{_save(tmp_path / 'clap')}")
    with pytest.raises(MusicSSLError, match=r"reads at most 32000 samples \(one crop\)"):
        model.encoder.forward_layers(torch.zeros(1, CROP + 1))
    with pytest.raises(MusicSSLError, match="embed_text: no texts to embed"):
        model.embed_text([])
    with pytest.raises(MusicSSLError, match=r"project_audio: clip embeddings of shape \(2, 12\)"):
        model.project_audio(np.zeros((2, 12), np.float32))
    assert model.encoder.layer_labels() == ["patch embedding", "stage 1", "stage 2"]
    mismatched = _save(tmp_path / "mismatched")  # a model without fusion, a fusion extractor
    _edit_extractor(mismatched, truncation="fusion")
    with pytest.raises(MusicSSLError, match="truncation 'fusion' for a model with enable_fusion "
                       "False: set truncation to rand_trunc"):  # fmt: skip
        musicssl.load(f"hf:{mismatched}")
    bands = _save(tmp_path / "bands")
    _edit_extractor(bands, feature_size=32)
    with pytest.raises(MusicSSLError, match="makes 32 mel bands, the model reads 16"):
        musicssl.load(f"hf:{bands}")
    long = _save(tmp_path / "long")
    _edit_extractor(long, max_length_s=6)
    with pytest.raises(MusicSSLError, match="crop makes 601 frames, more than the model's 256"):
        musicssl.load(f"hf:{long}")
    nested = _save(tmp_path / "nested")
    (nested / "processor_config.json").write_text(json.dumps({"processor_class": "X"}))
    with pytest.raises(MusicSSLError, match="processor_config.json: holds no feature_extractor"):
        musicssl.load(f"hf:{nested}")
