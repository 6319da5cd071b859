"""SSL methods: an encoder, a head and a loss over the views the method needs.

A method is a ``Method`` (``methods/base.py``) whose ``forward(x_a, x_b)`` returns
``dict(loss=..., term=...)`` for one batch of view pairs, with two hooks the trainer calls:
``parameter_groups()`` and ``after_optimizer_step(step, total_steps)`` (e.g. an EMA target
update). ``METHODS`` maps a recipe's method name to a factory
``factory(encoder, **options) -> Method``.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from typing import Any

from torch import nn

from musicssl.encoders import Encoder
from musicssl.errors import MusicSSLError
from musicssl.methods.barlow import BarlowTwins, barlow_twins
from musicssl.methods.base import Method
from musicssl.methods.bestrq import BestRQ
from musicssl.methods.byol import BYOL, byol
from musicssl.methods.clap import CLAP, clap
from musicssl.methods.combined import Combined, combined
from musicssl.methods.mae import MAE, mae
from musicssl.methods.pesto import PESTO, pesto
from musicssl.methods.simclr import SimCLR, simclr
from musicssl.methods.slap import SLAP, slap
from musicssl.methods.stone import STONE, stone
from musicssl.methods.tempo import TempoEquivariance, tempo
from musicssl.methods.vicreg import VICReg, vicreg
from musicssl.options import did_you_mean, typed_options
from musicssl.plugins import add_plugin, plugin_names

METHODS: dict[str, Callable[..., Method]] = {
    "simclr": simclr,
    "byol": byol,
    "vicreg": vicreg,
    "barlow_twins": barlow_twins,
    "mae": mae,
    "bestrq": BestRQ,
    "clap": clap,
    "slap": slap,
    "pesto": pesto,
    "stone": stone,
    "tempo": tempo,
    "combined": combined,
}


def build_method(name: str, encoder: Encoder, /, **options: Any) -> Method:
    """The method ``name`` around ``encoder``.

    Raises:
        MusicSSLError: as ``method_options`` says.
    """
    options = method_options(name, options)  # first: it refuses an unknown name
    if not isinstance(encoder, nn.Module):
        raise MusicSSLError(f"method {name!r}: encoder must be an encoder module "
                            f"(build_encoder(NAME) makes one), got {encoder!r}")  # fmt: skip
    method = METHODS[name](encoder, **options)
    if not isinstance(method, Method) or getattr(method, "encoder", None) is not encoder:
        raise MusicSSLError(
            f"method {name!r}: its factory must return a musicssl.methods.Method that keeps "
            f"the encoder it is given as self.encoder (got {type(method).__name__})"
        )
    return method


def method_options(name: str, options: Mapping[str, Any]) -> dict[str, Any]:
    """``options`` for the method ``name``, each read as the type of the argument it sets.

    Raises:
        MusicSSLError: ``name`` is not in ``METHODS`` (the message lists the valid names), or
            an option is not one the method takes, or not of its type.
    """
    if not add_plugin("method", name, METHODS):
        known = sorted(METHODS) + [n for n in plugin_names("method") if n not in METHODS]
        raise MusicSSLError(
            f"method.name: unknown method {name!r} (nor an installed package's); choose one "
            f"of {', '.join(known)}{did_you_mean(name, known)}"
        )
    factory = METHODS[name]
    typed = typed_options(f"method {name}", "method.options", factory, options, given=["encoder"])
    for key, value in typed.items():  # every method's loss weights and temperatures alike
        if key.endswith("_weight") and not 0 <= value < math.inf:
            raise MusicSSLError(f"method.options.{key}: a loss weight must be >= 0 and finite, "
                                f"got {value}")  # fmt: skip
        if key.endswith("temperature") and not 0 < value < math.inf:
            raise MusicSSLError(f"method.options.{key}: a temperature must be > 0 and finite, "
                                f"got {value}")  # fmt: skip
    return typed


__all__ = [
    "BYOL",
    "CLAP",
    "MAE",
    "METHODS",
    "SLAP",
    "STONE",
    "BarlowTwins",
    "BestRQ",
    "Combined",
    "Method",
    "PESTO",
    "SimCLR",
    "TempoEquivariance",
    "VICReg",
    "build_method",
    "method_options",
]
