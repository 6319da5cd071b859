"""What every method offers the trainer: a loss over view pairs, and two optional hooks."""

from __future__ import annotations

from typing import Any

from torch import nn

from musicssl.encoders import Encoder


class Method(nn.Module):
    """An SSL method: an encoder (``self.encoder``), heads, and a loss over a batch of views.

    Subclasses define ``forward(*views) -> dict(loss=..., term=...)`` over ``num_views``
    augmented crops of each clip: two (``x_a, x_b``) for the two-view families, one for masked
    prediction. The two hooks have defaults that do nothing special; a method overrides the
    ones it needs.
    """

    encoder: Encoder
    num_views: int = 2
    # A method that learns from text as well gets the clips' captions (the store rows'
    # ``caption`` field) as ``forward(*views, texts=[...])``.
    uses_text: bool = False

    def parameter_groups(self) -> list[dict[str, Any]]:
        """Optimiser groups; a group may carry ``lr_scale`` (its learning rate over the rest's)."""
        return [{"params": [p for p in self.parameters() if p.requires_grad]}]

    def compile_for_training(self, mode: str | None) -> None:
        """Compile in place what a training step runs (``torch.compile``'s ``mode``).

        By default each network's ``forward`` and not the loss: Triton failed to build the
        fused NT-Xent kernel on an H100. A method whose step reaches its networks through
        other calls than ``forward`` (the masked ones) compiles its whole ``forward``.
        """
        for network in self.children():
            network.compile(mode=mode)

    def after_optimizer_step(self, step: int, total_steps: int) -> dict[str, float]:
        """Called after each optimiser step (e.g. an EMA target update); returns values to log."""
        return {}
