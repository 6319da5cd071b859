"""A text encoder from a Hugging Face model folder on this machine, loaded offline.

``transformers`` is an optional extra (``pip install musicssl[huggingface]``): it is large, its
releases have broken checkpoint loading before, and the default text tower needs none of it.
Nothing is downloaded: the folder must hold the model's config, weights and tokenizer
(``save_pretrained``); a trained run keeps the weights, and needs the folder again only for
its config and tokenizer.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from torch import Tensor

from musicssl.errors import MusicSSLError
from musicssl.huggingface import first_line, need_transformers
from musicssl.text.base import TextEncoder, device_of

POOLINGS = ("mean", "cls")


class HuggingFaceTextEncoder(TextEncoder):
    """A ``transformers`` model's last hidden states, pooled to one vector per text.

    Args:
        model: an ``AutoModel`` (its output has ``last_hidden_state``).
        tokenizer: its tokenizer.
        path: the folder both came from (kept for ``config``).
        pooling: ``mean`` over the tokens (padding left out) or the first (``cls``) token.
        max_tokens: longer texts are cut to this many tokens.
    """

    def __init__(
        self, model: Any, tokenizer: Any, *, path: str, pooling: str, max_tokens: int
    ) -> None:
        super().__init__()
        if pooling not in POOLINGS:
            raise MusicSSLError(f"text_options.pooling must be one of {POOLINGS}, got {pooling!r}")
        self.model = model
        self.tokenizer = tokenizer
        self.embedding_dim = int(model.config.hidden_size)
        self.options = dict(path=path, pooling=pooling, max_tokens=max_tokens)

    def forward(self, texts: list[str]) -> Tensor:
        """Shape: (len(texts), hidden_size)."""
        if not texts:
            raise MusicSSLError("the text encoder got no texts")
        batch = self.tokenizer(
            list(texts),
            padding=True,
            truncation=True,
            max_length=self.options["max_tokens"],
            return_tensors="pt",
        )
        batch = {key: value.to(device_of(self)) for key, value in batch.items()}
        hidden = self.model(**batch).last_hidden_state  # (B, N, D)
        if self.options["pooling"] == "cls":
            return hidden[:, 0]
        weights = batch["attention_mask"].unsqueeze(-1).to(hidden.dtype)
        return (hidden * weights).sum(dim=1) / weights.sum(dim=1).clamp(min=1)

    def config(self) -> dict[str, Any]:
        return dict(self.options)


def huggingface(
    *, path: str | os.PathLike, pooling: str = "mean", max_tokens: int = 64
) -> HuggingFaceTextEncoder:
    """The model and tokenizer saved in the folder ``path``, with no network access.

    Raises:
        MusicSSLError: ``transformers`` is not installed, or the folder holds no loadable
            model and tokenizer.
    """
    folder = Path(path)
    transformers = need_transformers(f"text encoder huggingface ({folder})")
    if not folder.is_dir():
        raise MusicSSLError(f"{folder}: no such model folder (a local save_pretrained folder)")
    try:
        tokenizer = transformers.AutoTokenizer.from_pretrained(folder, local_files_only=True)
        model = transformers.AutoModel.from_pretrained(folder, local_files_only=True)
    except Exception as error:  # transformers and safetensors raise many kinds for a bad file
        raise MusicSSLError(
            f"{folder}: cannot load a model and tokenizer ({first_line(error)})"
        ) from None
    return HuggingFaceTextEncoder(
        model, tokenizer, path=str(folder), pooling=pooling, max_tokens=max_tokens
    )
