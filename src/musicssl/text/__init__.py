"""Text towers for the audio-text methods (CLAP, SLAP): one file per text encoder.

A text encoder is a ``TextEncoder`` (``text/base.py``): ``forward(texts)`` maps a list of
strings to one vector per string, tokenising inside, so a method hands it the batch's
captions as they are. ``TEXT_ENCODERS`` maps a recipe's ``text_encoder`` name to a factory
``factory(**options) -> TextEncoder``:

- ``scratch``: a small transformer with its own WordPiece tokenizer, trained from nothing on
  the built-in corpus's captions (offline; the tokenizer travels in the weights);
- ``huggingface``: a model folder on this machine, loaded with ``transformers`` offline
  (``pip install musicssl[huggingface]``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from musicssl.errors import MusicSSLError
from musicssl.text.base import TextEncoder
from musicssl.text.huggingface import HuggingFaceTextEncoder, huggingface
from musicssl.text.scratch import ScratchTextEncoder, scratch, train_tokenizer

TEXT_ENCODERS: dict[str, Callable[..., TextEncoder]] = {
    "scratch": scratch,
    "huggingface": huggingface,
}


def build_text_encoder(name: str, /, **options: Any) -> TextEncoder:
    """The text encoder ``name`` with ``options``; unknown names or options raise ours."""
    if name not in TEXT_ENCODERS:
        raise MusicSSLError(f"unknown text encoder {name!r}; choose one of {sorted(TEXT_ENCODERS)}")
    try:
        return TEXT_ENCODERS[name](**options)
    except TypeError as error:  # an option the factory does not take
        raise MusicSSLError(f"text_options for {name}: {error}") from None


__all__ = [
    "TEXT_ENCODERS",
    "HuggingFaceTextEncoder",
    "ScratchTextEncoder",
    "TextEncoder",
    "build_text_encoder",
    "train_tokenizer",
]
