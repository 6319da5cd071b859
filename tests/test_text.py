"""The text towers: the scratch tokenizer and transformer, and a local Hugging Face model."""

from __future__ import annotations

import pytest
import torch

from musicssl.errors import MusicSSLError
from musicssl.methods import build_method
from musicssl.methods.clap import CLAP
from musicssl.text import TEXT_ENCODERS, build_text_encoder, train_tokenizer
from musicssl.text.scratch import tokenizer_captions

SMALL = {"width": 32, "depth": 1, "heads": 2, "max_tokens": 16}
VOCAB = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "a", "slow", "organ", "piece", "in",
         "minor", "key", "major", "lively", "##s"]  # fmt: skip


@pytest.fixture(scope="module")
def tiny_bert(tmp_path_factory):
    """A randomly initialised 2-layer, 32-wide BERT and its tokenizer, saved to a folder."""
    transformers = pytest.importorskip(
        "transformers", reason="transformers (the huggingface extra) is not installed"
    )
    folder = tmp_path_factory.mktemp("bert")
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, processors

    wordpiece = Tokenizer(models.WordPiece({t: i for i, t in enumerate(VOCAB)}, unk_token="[UNK]"))
    wordpiece.normalizer = normalizers.BertNormalizer(lowercase=True)
    wordpiece.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    wordpiece.post_processor = processors.BertProcessing(("[SEP]", 3), ("[CLS]", 2))
    tokenizer = transformers.PreTrainedTokenizerFast(
        tokenizer_object=wordpiece, unk_token="[UNK]", pad_token="[PAD]", cls_token="[CLS]",
        sep_token="[SEP]", mask_token="[MASK]",
    )  # fmt: skip
    tokenizer.save_pretrained(folder / "model")
    config = transformers.BertConfig(vocab_size=len(VOCAB), hidden_size=32, num_hidden_layers=2,
                                     num_attention_heads=2, intermediate_size=64,
                                     max_position_embeddings=32)  # fmt: skip
    torch.manual_seed(0)
    transformers.BertModel(config).save_pretrained(folder / "model")
    return folder / "model"


def _options(name, tiny_bert):
    return SMALL if name == "scratch" else {"path": str(tiny_bert), "max_tokens": 16}


@pytest.mark.parametrize("name", sorted(TEXT_ENCODERS))
def test_every_text_encoder_embeds_a_batch_and_trains(name, request, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    tiny = request.getfixturevalue("tiny_bert") if name == "huggingface" else None
    torch.manual_seed(0)
    encoder = build_text_encoder(name, **_options(name, tiny))
    texts = ["a slow organ piece", "lively", "a piece in a minor key"]
    out = encoder(texts)
    assert out.shape == (3, encoder.embedding_dim) and torch.isfinite(out).all()
    out.pow(2).sum().backward()
    trained = [p for p in encoder.parameters() if p.requires_grad]
    assert trained and any(p.grad is not None and p.grad.abs().sum() > 0 for p in trained)
    encoder.eval()
    # Padding does not change a text's vector: alone or beside a longer text.
    alone = encoder(["lively"])
    torch.testing.assert_close(encoder(texts)[1:2], alone, atol=1e-5, rtol=1e-4)


def test_huggingface_loads_the_saved_tiny_model_with_no_network(tiny_bert, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    transformers = pytest.importorskip(
        "transformers", reason="transformers (the huggingface extra) is not installed"
    )
    encoder = build_text_encoder("huggingface", path=str(tiny_bert), pooling="cls")
    reference = transformers.BertModel.from_pretrained(tiny_bert, local_files_only=True).eval()
    encoder.eval()
    ids = torch.tensor([[2, 6, 7, 8, 3]])  # [CLS] slow organ piece [SEP]
    expected = reference(input_ids=ids).last_hidden_state[:, 0]
    torch.testing.assert_close(encoder(["slow organ piece"]), expected, atol=1e-5, rtol=1e-4)
    with pytest.raises(MusicSSLError, match="no such model folder"):
        build_text_encoder("huggingface", path=str(tiny_bert.parent / "missing"))
    with pytest.raises(MusicSSLError, match="pooling"):
        build_text_encoder("huggingface", path=str(tiny_bert), pooling="max")


def test_clap_trains_a_huggingface_text_tower(tiny_bert, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    from musicssl.encoders import SampleCNN

    encoder = SampleCNN(num_blocks=4, channels=[8, 8, 16, 16, 16, 32], sample_rate=8000)
    method = build_method("clap", encoder, hidden_dim=16, projection_dim=8,
                          text_encoder="huggingface",
                          text_options={"path": str(tiny_bert)})  # fmt: skip
    assert isinstance(method, CLAP)
    loss = method(torch.randn(4, 243), texts=["slow", "lively", "organ", "a minor key"])["loss"]
    loss.backward()
    assert method.text_encoder.model.embeddings.word_embeddings.weight.grad is not None


def test_tokenizer_is_the_same_for_the_same_captions_and_splits_unknown_words():
    captions = tokenizer_captions("builtin")
    first = train_tokenizer(captions, vocab_size=600)
    assert first.to_str() == train_tokenizer(captions, vocab_size=600).to_str()
    assert first.get_vocab_size() <= 600
    tokens = first.encode("Slow organ piece in F# minor").tokens
    assert tokens[:2] == ["slow", "organ"] and "minor" in tokens and "[UNK]" not in tokens
    assert "piece" not in first.get_vocab()  # never in a caption: spelt in pieces
    with pytest.raises(MusicSSLError, match="vocab_size"):
        train_tokenizer(captions, vocab_size=10)


def test_scratch_encoder_brings_its_tokenizer_back_from_its_weights(tmp_path):
    captions = tmp_path / "captions.txt"
    captions.write_text("a zorblat tune\nzorblat zorblat on the glimmerphone\n")
    torch.manual_seed(0)
    trained = build_text_encoder("scratch", tokenizer_corpus=str(captions), vocab_size=256, **SMALL)
    assert trained.tokenizer.encode("zorblat").tokens == ["zorblat"]
    rebuilt = build_text_encoder("scratch", vocab_size=256, **SMALL)  # the built-in tokenizer
    assert rebuilt.tokenizer.encode("zorblat").tokens != ["zorblat"]
    rebuilt.load_state_dict(trained.state_dict())
    assert rebuilt.tokenizer.encode("zorblat").tokens == ["zorblat"]
    trained.eval(), rebuilt.eval()
    texts = ["a zorblat tune", "glimmerphone"]
    torch.testing.assert_close(rebuilt(texts), trained(texts))


def test_text_encoder_faults_are_one_line_errors(tmp_path):
    with pytest.raises(MusicSSLError, match="unknown text encoder"):
        build_text_encoder("gpt")
    with pytest.raises(MusicSSLError, match="text_options for scratch"):
        build_text_encoder("scratch", colour="red")
    empty = tmp_path / "empty.txt"
    empty.write_text("\n")
    with pytest.raises(MusicSSLError, match="no captions"):
        build_text_encoder("scratch", tokenizer_corpus=str(empty))


def test_slap_retrieves_in_the_space_its_loss_compares():
    """The clip and caption vectors that search and zero-shot use are the online predictions
    the loss sets against the other modality's EMA targets (not the projections, which keep
    an offset between the modalities that the loss never closes)."""
    import torch.nn.functional as F

    from musicssl.encoders import SampleCNN

    torch.manual_seed(0)
    encoder = SampleCNN(num_blocks=4, channels=[8, 8, 16, 16, 16, 32], sample_rate=8000)
    method = build_method("slap", encoder, hidden_dim=16, projection_dim=8,
                          predictor_hidden_dim=32, text_encoder="scratch",
                          text_options=SMALL).eval()  # fmt: skip
    x, texts = torch.randn(4, 243), ["slow organ", "lively", "a minor key", "organ piece"]
    with torch.no_grad():
        terms = method(x, texts=texts)
        audio, text = method.project_audio(encoder(x)), method.embed_text(texts)
        target_audio = F.normalize(method.target_audio_projection(method.target_encoder(x)), dim=-1)
        target_text = F.normalize(
            method.target_text_projection(method.target_text_encoder(texts)), dim=-1
        )
    torch.testing.assert_close(audio.norm(dim=-1), torch.ones(4))
    torch.testing.assert_close(terms["audio_to_text"], 1 - (audio * target_text).sum(-1).mean())
    torch.testing.assert_close(terms["text_to_audio"], 1 - (text * target_audio).sum(-1).mean())
