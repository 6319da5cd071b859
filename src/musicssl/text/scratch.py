"""A small transformer text encoder with its own WordPiece tokenizer, trained from nothing.

The tokenizer is learnt from captions (by default the built-in corpus's caption generator,
so no file or network is needed) and kept in the encoder's state as the bytes of its JSON
(``tokenizer_json``, a uint8 buffer): the weights file of a trained run rebuilds it exactly,
whatever the caption generator writes by then.
"""

from __future__ import annotations

import os
from collections import Counter
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from musicssl.errors import MusicSSLError
from musicssl.text.base import TextEncoder, device_of

PAD, UNK, CLS = "[PAD]", "[UNK]", "[CLS]"
SPECIAL_TOKENS = (PAD, UNK, CLS)  # ids 0, 1, 2
BUILTIN_SAMPLES = 5000  # drawn captions the built-in tokenizer is learnt from


def train_tokenizer(captions: list[str], *, vocab_size: int) -> Any:
    """A lower-cased WordPiece tokenizer learnt from ``captions`` (a ``tokenizers.Tokenizer``).

    The vocabulary is the special tokens, every character of the captions (alone and as a
    ``##`` continuation, so that any word made of them tokenises into pieces instead of
    ``[UNK]``), then the most frequent whole words (ties in alphabetical order) up to
    ``vocab_size``. It is counted here rather than by the library's WordPiece trainer, which
    breaks ties between merges differently from run to run: the same captions must give the
    same tokenizer, so that a resumed run's weights fit.
    """
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers

    normalizer = normalizers.BertNormalizer(lowercase=True)
    splitter = pre_tokenizers.BertPreTokenizer()
    counts: Counter[str] = Counter()
    for text in captions:
        counts.update(word for word, _ in splitter.pre_tokenize_str(normalizer.normalize_str(text)))
    characters = sorted({character for word in counts for character in word})
    vocabulary = [*SPECIAL_TOKENS, *characters, *(f"##{c}" for c in characters)]
    if len(vocabulary) > vocab_size:
        raise MusicSSLError(
            f"vocab_size {vocab_size} is below the {len(vocabulary)} special tokens and "
            "characters of the captions"
        )
    words = sorted((w for w in counts if len(w) > 1), key=lambda word: (-counts[word], word))
    vocabulary += words[: vocab_size - len(vocabulary)]
    tokenizer = Tokenizer(
        models.WordPiece({token: i for i, token in enumerate(vocabulary)}, unk_token=UNK)
    )
    tokenizer.normalizer = normalizer
    tokenizer.pre_tokenizer = splitter
    tokenizer.decoder = decoders.WordPiece()
    return tokenizer


def tokenizer_captions(corpus: str) -> list[str]:
    """The captions a tokenizer learns from: ``"builtin"``, or a text file of one a line."""
    if corpus == "builtin":
        from musicssl.builtin.labels import caption_samples

        return caption_samples(BUILTIN_SAMPLES, seed=0)
    path = Path(corpus)
    try:
        lines = [line.strip() for line in path.read_text(encoding="utf-8").splitlines()]
    except (OSError, UnicodeDecodeError) as error:
        raise MusicSSLError(f"{path}: cannot read captions for the tokenizer ({error})") from None
    captions = [line for line in lines if line]
    if not captions:
        raise MusicSSLError(f"{path}: no captions to learn a tokenizer from (one per line)")
    return captions


class ScratchTextEncoder(TextEncoder):
    """Token and position embeddings, a pre-norm transformer, masked mean pooling.

    Args:
        tokenizer: a ``tokenizers.Tokenizer`` whose ids are below ``vocab_size``, pad id 0.
        vocab_size: rows of the token embedding table.
        width: model width (the output size).
        depth: transformer layers.
        heads: attention heads.
        max_tokens: longer texts are cut to this many tokens (after ``[CLS]``).
        dropout: dropout inside the transformer.
        tokenizer_corpus: where the tokenizer was learnt (kept for ``config``).
    """

    def __init__(
        self,
        tokenizer: Any,
        *,
        vocab_size: int,
        width: int,
        depth: int,
        heads: int,
        max_tokens: int,
        dropout: float = 0.1,
        tokenizer_corpus: str = "builtin",
    ) -> None:
        super().__init__()
        if tokenizer.get_vocab_size() > vocab_size:
            raise MusicSSLError(
                f"the tokenizer has {tokenizer.get_vocab_size()} tokens, more than vocab_size "
                f"{vocab_size}"
            )
        self.embedding_dim = width
        self.max_tokens = max_tokens
        self.options = dict(vocab_size=vocab_size, width=width, depth=depth, heads=heads,
                            max_tokens=max_tokens, dropout=dropout,
                            tokenizer_corpus=tokenizer_corpus)  # fmt: skip
        self.tokenizer = tokenizer
        self.register_buffer("tokenizer_json", _to_bytes(tokenizer.to_str()))
        self.tokens = nn.Embedding(vocab_size, width)
        self.positions = nn.Parameter(torch.randn(max_tokens + 1, width) * 0.02)
        layer = nn.TransformerEncoderLayer(
            width, heads, dim_feedforward=4 * width, dropout=dropout, activation="gelu",
            batch_first=True, norm_first=True,
        )  # fmt: skip
        self.transformer = nn.TransformerEncoder(layer, depth, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(width)

    def token_ids(self, texts: list[str]) -> tuple[Tensor, Tensor]:
        """``[CLS]`` + the tokens of each text, padded: (ids, mask), Shape: (batch, tokens)."""
        cls_id = self.tokenizer.token_to_id(CLS)
        rows = [[cls_id, *e.ids[: self.max_tokens]] for e in self.tokenizer.encode_batch(texts)]
        length = max(len(row) for row in rows)
        ids = torch.zeros(len(rows), length, dtype=torch.long)
        for i, row in enumerate(rows):
            ids[i, : len(row)] = torch.tensor(row)
        return ids, ids != 0

    def forward(self, texts: list[str]) -> Tensor:
        """Shape: (len(texts), width)."""
        if not texts:
            raise MusicSSLError("the text encoder got no texts")
        ids, mask = (t.to(device_of(self)) for t in self.token_ids(list(texts)))
        x = self.tokens(ids) + self.positions[: ids.shape[1]]  # (B, N, D)
        x = self.norm(self.transformer(x, src_key_padding_mask=~mask))
        weights = mask.unsqueeze(-1).to(x.dtype)
        return (x * weights).sum(dim=1) / weights.sum(dim=1)

    def config(self) -> dict[str, Any]:
        return dict(self.options)

    def _load_from_state_dict(
        self, state_dict: dict[str, Any], prefix: str, *args: Any, **kwargs: Any
    ) -> None:
        # The saved tokenizer replaces this one, whatever its size.
        saved = state_dict.get(prefix + "tokenizer_json")
        if saved is not None:
            from tokenizers import Tokenizer

            self.tokenizer_json = saved.detach().to(torch.uint8).clone()
            self.tokenizer = Tokenizer.from_str(bytes(saved.tolist()).decode("utf-8"))
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)


def _to_bytes(text: str) -> Tensor:
    return torch.tensor(list(text.encode("utf-8")), dtype=torch.uint8)


def scratch(
    *,
    tokenizer_corpus: str | os.PathLike = "builtin",
    vocab_size: int = 1024,
    width: int = 128,
    depth: int = 2,
    heads: int = 4,
    max_tokens: int = 64,
    dropout: float = 0.1,
) -> ScratchTextEncoder:
    """A 2-layer, 128-wide transformer whose WordPiece tokenizer is learnt here.

    Args:
        tokenizer_corpus: ``"builtin"`` (captions drawn from the built-in corpus's caption
            generator) or a text file with one caption a line (your own data's captions).
        vocab_size: the tokenizer's largest vocabulary, and the embedding table's rows.
    """
    corpus = str(tokenizer_corpus)
    tokenizer = train_tokenizer(tokenizer_captions(corpus), vocab_size=vocab_size)
    return ScratchTextEncoder(
        tokenizer, vocab_size=vocab_size, width=width, depth=depth, heads=heads,
        max_tokens=max_tokens, dropout=dropout, tokenizer_corpus=corpus,
    )  # fmt: skip


__all__ = ["ScratchTextEncoder", "scratch", "train_tokenizer"]
