"""Several objectives at once, each on its own branch of a ``Branches`` encoder.

As OMAR-RQ and MATPAC combine objectives so that one model keeps what each one alone would
throw away: here a contrastive term can shape a timbre branch while an equivariant term makes
a second branch follow transposition, and the encoder's embedding holds both.
"""

from __future__ import annotations

from typing import Any, cast

from torch import Tensor, nn

from musicssl.encoders import Branches, Encoder
from musicssl.errors import MusicSSLError
from musicssl.methods.base import Method

TERM_KEYS = {"method", "weight", "lr_scale", "options"}


class Combined(Method):
    """One training step: the weighted sum of each branch's method on the same views.

    Every term gets the batch's views cut to its branch's training crop (their first
    ``input_samples`` samples, so a short-crop branch pays for no more audio than it trains
    on); the terms' own values are logged as ``BRANCH.VALUE``.

    Args:
        encoder: the ``Branches`` encoder.
        terms: branch name -> the method on that branch.
        weights: branch name -> the weight of its loss.
        lr_scales: branch name -> its learning rate over the recipe's (the families' own
            recipes train at different rates).
    """

    encoder: Branches

    def __init__(
        self,
        encoder: Branches,
        terms: dict[str, Method],
        weights: dict[str, float],
        lr_scales: dict[str, float],
    ) -> None:
        super().__init__()
        self.encoder = encoder
        self.terms = nn.ModuleDict(terms)
        self.weights = dict(weights)
        self.lr_scales = dict(lr_scales)
        self.num_views = terms[next(iter(terms))].num_views
        self.uses_text = any(term.uses_text for term in terms.values())

    def named_terms(self) -> list[tuple[str, Method]]:
        """(branch name, its method), in the branches' order."""
        return [(name, cast(Method, term)) for name, term in self.terms.items()]

    def forward(self, *views: Tensor, texts: list[str] | None = None) -> dict[str, Tensor]:
        """Loss of one batch. views Shape: (batch_size, num_samples) each."""
        total: Tensor | None = None
        logged: dict[str, Tensor] = {}
        for name, term in self.named_terms():
            crop = [x[..., : term.encoder.input_samples] for x in views]
            outputs = term(*crop, texts=texts) if term.uses_text else term(*crop)
            weighted = self.weights[name] * outputs["loss"]
            total = weighted if total is None else total + weighted
            for key, value in outputs.items():
                logged[f"{name}.{key}"] = value.detach()
        assert total is not None  # at least one term (checked when built)
        return {"loss": total, **logged}

    def parameter_groups(self) -> list[dict[str, Any]]:
        """Every term's groups (each branch's parameters belong to its term alone)."""
        groups = []
        for name, term in self.named_terms():
            for group in term.parameter_groups():
                scale = group.get("lr_scale", 1.0) * self.lr_scales[name]
                groups.append({**group, "lr_scale": scale})
        return groups

    def after_optimizer_step(self, step: int, total_steps: int) -> dict[str, float]:
        """Every term's hook, its values logged as ``BRANCH.VALUE``."""
        logged = {}
        for name, term in self.named_terms():
            for key, value in term.after_optimizer_step(step, total_steps).items():
                logged[f"{name}.{key}"] = value
        return logged


def combined(encoder: Encoder, *, terms: dict[str, dict[str, Any]]) -> Combined:
    """``terms``: branch name -> ``{"method": NAME, "weight": W, "lr_scale": S, "options": {...}}``.

    ``weight`` and ``lr_scale`` default to 1.

    Every branch of the encoder needs a term (a branch without one would not train), and the
    terms must agree on the number of views.
    """
    from musicssl.methods import build_method  # the registry imports this module

    if not isinstance(encoder, Branches):
        raise MusicSSLError(f"method combined needs encoder branches, got {type(encoder).__name__}")
    if set(terms) != set(encoder.branches):
        raise MusicSSLError(
            f"combined: terms {sorted(terms)} must name the encoder's branches "
            f"{sorted(encoder.branches)}, one term each"
        )
    built, weights, lr_scales = {}, {}, {}
    for name, spec in terms.items():
        if not isinstance(spec, dict) or "method" not in spec or set(spec) - TERM_KEYS:
            raise MusicSSLError(
                f"combined: term {name!r} must be {{method: NAME, weight: W, lr_scale: S, "
                f"options: {{...}}}}, got {spec!r}"
            )
        if spec["method"] == "combined":
            raise MusicSSLError(f"combined: term {name!r} cannot itself be combined")
        weights[name] = float(spec.get("weight", 1.0))
        lr_scales[name] = float(spec.get("lr_scale", 1.0))
        if weights[name] < 0 or lr_scales[name] <= 0:
            raise MusicSSLError(
                f"combined: term {name!r} needs weight >= 0 and lr_scale > 0, got "
                f"{weights[name]} and {lr_scales[name]}"
            )
        branch = cast(Encoder, encoder.branches[name])
        built[name] = build_method(spec["method"], branch, **spec.get("options", {}))
    if len({term.num_views for term in built.values()}) != 1:
        raise MusicSSLError(
            "combined: the terms must take the same number of views, got "
            + ", ".join(f"{name}: {term.num_views}" for name, term in built.items())
        )
    return Combined(encoder, built, weights, lr_scales)
