"""The encoder zoo: one file per encoder and the ``ENCODERS`` registry.

Every encoder is an ``Encoder`` (``encoders/base.py``) with this interface (checked for every
registry entry by ``tests/test_encoders.py``):

- ``forward(x) -> Tensor``: clip embeddings. ``x``: float waveforms, shape
  (batch_size, num_samples); returns shape (batch_size, embedding_dim).
- ``forward_features(x, *, layer=None) -> Tensor``: frame features after layer ``layer``
  (None: the last; negative: counted from the end), shape (batch_size, channels, num_frames).
- ``forward_layers(x) -> list[Tensor]``: the frame features of every layer from one pass
  (entry ``k`` equals ``forward_features(x, layer=k)``), so that all layers cost one forward
  pass, not one per layer.
- ``pool(features) -> Tensor``: the clip embedding from the last layer's frame features,
  shape (batch_size, embedding_dim, num_frames) -> (batch_size, embedding_dim);
  ``forward(x) == pool(forward_features(x))``.
- ``frame_hop(layer=None) -> int``: input samples between consecutive frames of that layer.
- ``num_layers: int``: valid ``layer`` values are ``0 .. num_layers - 1``.
- ``embedding_dim: int``, ``sample_rate: int`` (the rate the input must have),
  ``input_samples: int`` (the crop length it trains on; SampleCNN accepts exactly that,
  others any length from a minimum).
- ``config() -> dict``: the constructor arguments as plain values, so
  ``build_encoder(name, **encoder.config())`` rebuilds it (then load the weights).

Three things have defaults an encoder may change (``encoders/base.py``):
``frame_centres(num_frames, *, window, layer=None)`` says where a window's frames are centred
(default: ``frame_hop`` apart, their span centred in the window); ``shortest_input``, set by an
encoder that reads any length from that many samples, has ``embed`` encode a signal shorter
than one window as it is instead of padding it; ``window_hop`` sets the samples between window
starts when no hop is asked for (default: the window's length).

Encoders take waveforms and own their front end (e.g. a log-mel), so features are computed
on the device and a checkpoint rebuilds the whole preprocessing from ``config()``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from torch import nn

from musicssl.encoders.base import Encoder
from musicssl.encoders.branches import Branches
from musicssl.encoders.frame_transformer import FrameTransformer
from musicssl.encoders.heads import predictor, projection_head
from musicssl.encoders.key_cnn import KeyCNN
from musicssl.encoders.pesto_cnn import PestoCNN
from musicssl.encoders.sample_cnn import SampleCNN
from musicssl.encoders.short_chunk_cnn import ShortChunkCNN
from musicssl.encoders.spectrogram_vit import SpectrogramViT
from musicssl.encoders.tempo_cnn import TempoCNN
from musicssl.errors import MusicSSLError
from musicssl.options import did_you_mean, typed_options
from musicssl.plugins import add_plugin, plugin_names

__all__ = [
    "ENCODERS",
    "Branches",
    "Encoder",
    "FrameTransformer",
    "KeyCNN",
    "PestoCNN",
    "SampleCNN",
    "ShortChunkCNN",
    "SpectrogramViT",
    "TempoCNN",
    "build_encoder",
    "encoder_name",
    "encoder_options",
    "predictor",
    "projection_head",
]


ENCODERS: dict[str, type[Encoder]] = {
    "sample_cnn": SampleCNN,
    "short_chunk_cnn": ShortChunkCNN,
    "spectrogram_vit": SpectrogramViT,
    "frame_transformer": FrameTransformer,
    "pesto_cnn": PestoCNN,
    "key_cnn": KeyCNN,
    "tempo_cnn": TempoCNN,
    "branches": Branches,
}


def build_encoder(name: str, /, **options: Any) -> Encoder:
    """Build the registered encoder ``name`` with keyword arguments ``options``.

    Raises:
        MusicSSLError: as ``encoder_options`` says; or the encoder (one of a package's) lacks
            part of the interface, or its ``config()`` would not rebuild it.
    """
    options = encoder_options(name, options)  # first: it refuses an unknown name
    encoder = ENCODERS[name](**options)
    _check_interface(name, encoder)
    return encoder


# What every encoder defines, beyond ``Encoder``'s defaults (see the module's doc).
DEFINED = ("forward_layers", "frame_hop", "config")
ATTRIBUTES = ("embedding_dim", "sample_rate", "input_samples", "num_layers")


def _check_interface(name: str, encoder: Encoder) -> None:
    """Refuse, as it is built, an encoder that training, ``embed``, ``evaluate`` or its
    checkpoint would find wanting later (an encoder of a package of one's own, say)."""
    if not isinstance(encoder, Encoder):
        raise MusicSSLError(f"encoder {name!r}: not a musicssl.encoders.Encoder")
    lacks = [part for part in DEFINED if getattr(type(encoder), part) is getattr(Encoder, part)]
    lacks += [f"an int {attribute}" for attribute in ATTRIBUTES
              if not isinstance(getattr(encoder, attribute, None), int)]  # fmt: skip
    if lacks:
        raise MusicSSLError(
            f"encoder {name!r} lacks {', '.join(lacks)} (what every encoder defines: see "
            "the docstring of musicssl.encoders)"
        )
    try:
        encoder_options(name, encoder.config())
    except MusicSSLError as error:
        raise MusicSSLError(
            f"encoder {name!r}: its config() would not rebuild it, as a checkpoint does ({error})"
        ) from None


def encoder_options(name: str, options: Mapping[str, Any]) -> dict[str, Any]:
    """``options`` for the encoder ``name``, each read as the type of the argument it sets.

    Raises:
        MusicSSLError: ``name`` is not in ``ENCODERS`` (the message lists the valid names), or
            an option is not one the encoder takes, or not of its type.
    """
    if not add_plugin("encoder", name, ENCODERS):
        known = sorted(ENCODERS) + [n for n in plugin_names("encoder") if n not in ENCODERS]
        raise MusicSSLError(
            f"encoder.name: unknown encoder {name!r} (nor an installed package's: is its "
            f"package installed?); valid names: {', '.join(known)}{did_you_mean(name, known)}"
        )
    return typed_options(f"encoder {name}", "encoder.options", ENCODERS[name], options)


def encoder_name(encoder: nn.Module) -> str:
    """The registry name of ``encoder``'s class, for storing beside its ``config()``."""
    for name, cls in ENCODERS.items():
        if type(encoder) is cls:
            return name
    raise MusicSSLError(f"{type(encoder).__name__} is not a registered encoder")
