"""Search by text and by audio: the index folder, the text side of a run, the two verbs."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

import musicssl
from musicssl import checkpoint
from musicssl.cli import main
from musicssl.encoders import build_encoder
from musicssl.errors import MusicSSLError
from musicssl.evaluate.zeroshot import zero_shot_accuracy
from musicssl.methods import build_method
from musicssl.recipe import Recipe
from musicssl.search import build_index, has_text_tower, load_index, search_text

CAPTIONS = {
    "organ.wav": "a slow organ piece in a minor key",
    "fiddle.wav": "a lively fiddle tune in a major key",
    "choir.wav": "a choir sings a slow chorale",
    "brass.wav": "brass plays a lively march",
}
WORDS = sorted({word for text in CAPTIONS.values() for word in text.split()})


class BagOfWords:
    """A stand-in for a trained run: a clip's 'embedding' is the bag of its caption's words."""

    embedding_dim = len(WORDS)

    def embed_text(self, texts: list[str]) -> np.ndarray:
        return np.stack([self.bag(text) for text in texts])

    def project_audio(self, clips: np.ndarray) -> np.ndarray:
        return clips / np.linalg.norm(clips, axis=1, keepdims=True)

    @staticmethod
    def bag(text: str) -> np.ndarray:
        vector = np.array([float(word in text.split()) for word in WORDS])
        return vector / np.linalg.norm(vector)


def _npz(path: Path) -> Path:
    names = sorted(CAPTIONS)
    np.savez(
        path, names=np.array(names), emb=np.stack([BagOfWords.bag(CAPTIONS[n]) for n in names])
    )
    return path


def test_text_search_puts_the_clip_of_its_own_caption_first(tmp_path):
    about = build_index(_npz(tmp_path / "emb.npz"), out=tmp_path / "index")
    assert about["count"] == 4 and about["dim"] == len(WORDS)
    index = load_index(tmp_path / "index")
    for name, caption in CAPTIONS.items():
        found = search_text(index, BagOfWords(), caption, k=4)
        assert found[0] == (name, pytest.approx(1.0))
        assert [score for _, score in found] == sorted((s for _, s in found), reverse=True)
    # Audio-to-audio: a row's own vector finds itself first.
    first = index.search(index.vectors[2], k=2)[0]
    assert first[0] == (sorted(CAPTIONS)[2], pytest.approx(1.0))
    for wordless in ("  ", "!!!", "🎻🎹", "\u200b"):
        with pytest.raises(MusicSSLError, match="holds no word"):
            search_text(index, BagOfWords(), wordless)
    # Mistakes from Python are told as such, not as faiss's bare assertions.
    with pytest.raises(MusicSSLError, match="k must be a whole number >= 1, got 0"):
        search_text(index, BagOfWords(), CAPTIONS[sorted(CAPTIONS)[0]], k=0)
    with pytest.raises(MusicSSLError, match="in the rows' space"):
        index.search(np.ones(len(WORDS) + 1))
    with pytest.raises(MusicSSLError, match="must be a string"):
        search_text(index, BagOfWords(), None)  # type: ignore[arg-type]


def test_index_refuses_a_folder_it_did_not_write_and_replaces_its_own(tmp_path):
    npz = _npz(tmp_path / "emb.npz")
    foreign = tmp_path / "mine"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("keep me")
    with pytest.raises(MusicSSLError, match="not an index of ours"):
        build_index(npz, out=foreign)
    assert (foreign / "notes.txt").read_text() == "keep me"
    build_index(npz, out=tmp_path / "index")
    build_index(npz, out=tmp_path / "index")  # its own: replaced
    with pytest.raises(MusicSSLError, match="not an index folder"):
        load_index(foreign)


def test_zero_shot_accuracy_by_hand():
    audio = np.array([[1.0, 0.1], [0.2, 1.0], [1.0, 0.0]])
    text = np.array([[1.0, 0.0], [0.0, 1.0]])
    # Predictions: a, b, a. Truths: a; b; (b, c): two hits of three.
    accuracy, chance = zero_shot_accuracy(audio, [("a",), ("b",), ("b", "c")], ["a", "b"], text)
    assert accuracy == pytest.approx(2 / 3)
    assert chance == pytest.approx((1 / 2 + 1 / 2 + 1 / 2) / 3)


@pytest.fixture(scope="module")
def clap_run(tmp_path_factory):
    """A CLAP run folder of one checkpoint (untrained), its tokenizer learnt from a file."""
    folder = tmp_path_factory.mktemp("clap")
    captions = folder / "captions.txt"
    captions.write_text("\n".join(CAPTIONS.values()) + "\nzorblat\n")
    encoder_options = {"num_blocks": 4, "channels": [8, 8, 16, 16, 16, 32], "sample_rate": 8000}
    text_options = {"width": 32, "depth": 1, "heads": 2, "vocab_size": 128,
                    "tokenizer_corpus": str(captions)}  # fmt: skip
    recipe = Recipe.from_dict({
        "encoder": {"name": "sample_cnn", "options": encoder_options},
        "method": {"name": "clap", "options": {"hidden_dim": 16, "projection_dim": 8,
                                               "text_options": text_options}},
        "augment": {"name": "clmr"},
    })  # fmt: skip
    torch.manual_seed(0)
    method = build_method("clap", build_encoder("sample_cnn", **encoder_options),
                          **recipe.method.options)  # fmt: skip
    run = folder / "run"
    checkpoint.start_run(run, recipe)
    checkpoint.write_checkpoint(run, step=1, encoder_name="sample_cnn", method=method,
                                training_state={"step": 1}, recipe=recipe)  # fmt: skip
    captions.unlink()  # the tokenizer must come back from the weights alone
    method.eval()
    return run, method


def test_a_loaded_run_embeds_text_as_the_trained_method_did(clap_run):
    run, method = clap_run
    model = musicssl.load(run)
    assert model.has_text and has_text_tower(run)
    texts = ["zorblat", "a slow organ piece in a minor key"]
    with torch.no_grad():
        expected = method.embed_text(texts).numpy()
        clips = torch.randn(3, method.encoder.embedding_dim)
        expected_audio = method.project_audio(clips).numpy()
    np.testing.assert_allclose(model.embed_text(texts), expected, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(model.project_audio(clips.numpy()), expected_audio, rtol=1e-5,
                               atol=1e-6)  # fmt: skip
    assert np.allclose(np.linalg.norm(model.embed_text(texts), axis=1), 1.0)


def test_a_damaged_method_file_is_one_line_and_a_missing_one_means_no_text_tower(
    clap_run, tmp_path
):
    import shutil

    copy = tmp_path / "checkpoint"
    shutil.copytree(checkpoint.latest(clap_run[0]), copy)
    weights = copy / "method.safetensors"
    weights.write_bytes(weights.read_bytes()[:3000])
    with pytest.raises(MusicSSLError, match="method.safetensors: cannot read the weights") as error:
        has_text_tower(copy)
    assert "\n" not in str(error.value)
    weights.unlink()
    assert not has_text_tower(copy)


def test_index_and_search_verbs(clap_run, tmp_path, capsys):
    run, _ = clap_run
    audio = tmp_path / "audio"
    audio.mkdir()
    times = np.arange(8000) / 8000
    for i, name in enumerate(sorted(CAPTIONS)):
        tone = 0.3 * np.sin(2 * np.pi * (220 * 2 ** (i / 3)) * times) * (1 + i * times)
        sf.write(audio / name, tone.astype(np.float32), 8000)
    assert main(["embed", str(run), str(audio), "--out", str(tmp_path / "e.npz")]) == 0
    assert main(["index", str(tmp_path / "e.npz"), "--out", str(tmp_path / "idx")]) == 0
    capsys.readouterr()
    query = str(audio / "choir.wav")
    assert main(["search", str(tmp_path / "idx"), "--run", str(run), "--audio", query]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 4 and lines[0].split() == ["1", "+1.0000", "choir.wav"]
    status = main(["search", str(tmp_path / "idx"), "--run", str(run), "--k", "2",
                   "--text", "a slow organ piece"])  # fmt: skip
    assert status == 0 and len(capsys.readouterr().out.splitlines()) == 2
    # An index of other vectors: one line, naming the mismatch.
    np.savez(tmp_path / "other.npz", names=np.array(["x.wav"]), emb=np.ones((1, 3)))
    assert main(["index", str(tmp_path / "other.npz"), "--out", str(tmp_path / "other")]) == 0
    status = main(["search", str(tmp_path / "other"), "--run", str(run), "--text", "organ"])
    assert status == 1 and "same run" in capsys.readouterr().err


def test_search_refuses_an_index_embedded_by_other_weights(clap_run, tmp_path, capsys):
    from conftest import untrained_run

    run, _ = clap_run
    encoder = checkpoint.load_encoder(run)
    with torch.no_grad():
        next(encoder.parameters()).add_(0.01)  # the same shapes, other weights
    other = untrained_run(tmp_path / "other-run", encoder, checkpoint.encoder_spec(run)["name"])
    audio = tmp_path / "audio"
    audio.mkdir()
    sf.write(audio / "a.wav", (0.3 * np.sin(np.arange(8000) * 0.2)).astype(np.float32), 8000)
    for source, name in ((other, "other"), (run, "same")):
        assert main(["embed", str(source), str(audio), "--out", str(tmp_path / f"{name}.npz")]) == 0
        assert main(["index", str(tmp_path / f"{name}.npz"), "--out", str(tmp_path / name)]) == 0
    assert load_index(tmp_path / "same").encoder == musicssl.load(run).fingerprint
    capsys.readouterr()
    query = ["--run", str(run), "--audio", str(audio / "a.wav")]
    assert main(["search", str(tmp_path / "other"), *query]) == 1
    error = capsys.readouterr().err.strip()
    assert len(error.splitlines()) == 1 and "embeddings of other weights" in error
    assert main(["search", str(tmp_path / "same"), *query]) == 0
    assert capsys.readouterr().out.split()[1:] == ["+1.0000", "a.wav"]
    # A text query through a run with no text tower says so first, whatever the index holds.
    assert main(["search", str(tmp_path / "same"), "--run", str(other), "--text", "organ"]) == 1
    assert "the run has no text tower" in capsys.readouterr().err


def test_zero_shot_results_say_what_one_class_would_score_and_that_seeds_do_not_resample(
    tiny_corpus: Path,
):
    import json
    from collections import Counter

    from musicssl.evaluate.zeroshot import zero_shot_results

    class AlwaysMajor:  # a text tower whose every answer is "major", the mode of most clips
        def project_audio(self, vectors):
            return np.tile([1.0, 0.0], (len(vectors), 1))

        def embed_text(self, prompts):
            return np.tile([1.0, 0.0] if "major" in prompts[0] else [0.0, 1.0], (len(prompts), 1))

    rows = [json.loads(line) for line in (tiny_corpus / "manifest.jsonl").read_text().splitlines()]
    test = [row for row in rows if row["split"] == "test"]
    vectors = {row["path"].removeprefix("audio/"): np.zeros(4) for row in test}
    mode = zero_shot_results(AlwaysMajor(), tiny_corpus, vectors)["zeroshot_mode"]
    modes = Counter(row["key"].split()[-1] for row in test)
    assert mode.metrics["accuracy"].mean == pytest.approx(modes["major"] / len(test))
    assert mode.probe is None
    most, count = modes.most_common(1)[0]
    assert mode.notes == [
        "one value, whatever the seeds: no probe to fit, no test set resampled",
        f"always answering the most common class ({most}) scores {count / len(test):.3f} here",
    ]
