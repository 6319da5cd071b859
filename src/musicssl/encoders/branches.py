"""Several encoders side by side on the same audio, their embeddings concatenated."""

from __future__ import annotations

from typing import Any, cast

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from musicssl.encoders._shared import check_waveforms, resolve_layer
from musicssl.encoders.base import Encoder
from musicssl.errors import MusicSSLError

__all__ = ["Branches"]


class Branches(Encoder):
    """Named encoders (branches) that each read the whole input; one encoder to the outside.

    Built for recipes that combine objectives of different families, each on the encoder it
    needs (``methods/combined.py``): e.g. a contrastive short-chunk CNN for timbre and style
    beside a transposition-equivariant CQT branch for key and pitch. The clip embedding is
    the branches' clip embeddings side by side, in the order the branches are given, each
    centred and scaled to unit norm (see ``pool``).

    Layers: every layer of every branch in order (branch 0's layers, then branch 1's, ...),
    then a joint last layer: the branches' last layers side by side, each brought to the
    frame count of the finest one by repeating frames (so each branch's own pooling over
    frames, max or mean, gives the value it gives alone). Frame features of the encoder are
    the joint layer's.

    Args:
        branches: name -> ``{"name": registry name, "options": {...}}``. Every branch must
            take the same sample rate and give its clip embedding from its last layer's
            channels (every encoder of the zoo does).
    """

    def __init__(self, *, branches: dict[str, dict[str, Any]]) -> None:
        super().__init__()
        from musicssl.encoders import build_encoder  # the registry imports this module

        if not branches:
            raise MusicSSLError("Branches: give at least one branch")
        self._config: dict[str, Any] = {"branches": {}}
        built = {}
        for key, spec in branches.items():
            if not isinstance(spec, dict) or set(spec) - {"name", "options"} or "name" not in spec:
                raise MusicSSLError(
                    f"Branches: branch {key!r} must be {{name: ENCODER, options: {{...}}}}, "
                    f"got {spec!r}"
                )
            options = dict(spec.get("options") or {})
            built[key] = build_encoder(spec["name"], **options)
            self._config["branches"][key] = {"name": spec["name"], "options": options}
        self.branches = nn.ModuleDict(built)
        rates = {encoder.sample_rate for encoder in built.values()}
        if len(rates) != 1:
            raise MusicSSLError(f"Branches: every branch must take one sample rate, got {rates}")
        self.sample_rate = rates.pop()
        self.input_samples = max(encoder.input_samples for encoder in built.values())
        self.embedding_dim = sum(encoder.embedding_dim for encoder in built.values())
        self.num_layers = sum(encoder.num_layers for encoder in built.values()) + 1

    def encoders(self) -> list[Encoder]:
        """The branches' encoders, in order."""
        return [cast(Encoder, encoder) for encoder in self.branches.values()]

    def config(self) -> dict[str, Any]:
        """Constructor arguments, as plain JSON/YAML values: ``Branches(**config())``."""
        return {"branches": {k: dict(v) for k, v in self._config["branches"].items()}}

    def forward_layers(self, x: Tensor) -> list[Tensor]:
        """Every branch's layers in order, then the joint last layer (see the class)."""
        return [h.amax(dim=2) for h in self.forward_maps(x)]

    def forward_maps(self, x: Tensor) -> list[Tensor]:
        """The layers as 2-D maps, (B, C, F, T) each, from one pass.

        A branch with maps of its own (the short-chunk CNN's frequency bins) gives them; the
        other branches' layers and the joint layer have one bin. The maximum of each map over
        its bins is the matching entry of ``forward_layers``, so the ``freq`` read-out of
        ``musicssl.embed`` keeps the bins where a branch has them.
        """
        check_waveforms(x, "Branches")
        maps: list[Tensor] = []
        lasts = []
        for encoder in self.encoders():
            own_maps = getattr(encoder, "forward_maps", None)
            if own_maps is not None:
                branch_maps = own_maps(x)
                last_layer = branch_maps[-1].amax(dim=2)
            else:
                layers = encoder.forward_layers(x)
                branch_maps, last_layer = [h.unsqueeze(2) for h in layers], layers[-1]
            if last_layer.shape[1] != encoder.embedding_dim:
                raise MusicSSLError(
                    f"Branches: {type(encoder).__name__}'s last layer has "
                    f"{last_layer.shape[1]} channels, not its embedding size "
                    f"{encoder.embedding_dim}"
                )
            maps.extend(branch_maps)
            lasts.append(last_layer)
        num_frames = max(h.shape[-1] for h in lasts)
        joint = [h if h.shape[-1] == num_frames else _repeat_frames(h, num_frames) for h in lasts]
        return [*maps, torch.cat(joint, dim=1).unsqueeze(2)]

    def pool(self, features: Tensor) -> Tensor:
        """Each branch's pooling over its channels of the joint layer, standardised, side by side.

        The branches' clip embeddings come in unlike units (maxima of ReLU maps, logits,
        probabilities) and each carries an offset shared by every clip, which puts every
        cosine similarity near 1 and lets the largest part decide it. Each part is therefore
        centred over its own channels and scaled to unit norm (per clip, nothing estimated
        from other clips), so that every branch counts alike in a cosine similarity.
        """
        encoders = self.encoders()
        parts = features.split([encoder.embedding_dim for encoder in encoders], dim=1)
        pooled = []
        for encoder, part in zip(encoders, parts, strict=True):
            vector = encoder.pool(part)
            vector = vector - vector.mean(dim=-1, keepdim=True)
            pooled.append(vector / vector.norm(dim=-1, keepdim=True).clamp_min(1e-12))
        return torch.cat(pooled, dim=-1)

    def frame_hop(self, layer: int | None = None) -> int:
        """Input samples between frames: a branch layer's own, the finest branch's for the joint."""
        index = resolve_layer(layer, self.num_layers, "Branches")
        for encoder in self.encoders():
            if index < encoder.num_layers:
                return encoder.frame_hop(index)
            index -= encoder.num_layers
        return min(encoder.frame_hop() for encoder in self.encoders())


def _repeat_frames(h: Tensor, num_frames: int) -> Tensor:
    """Shape: (B, C, T) -> (B, C, num_frames), each frame repeated over its share of time."""
    return F.interpolate(h, size=num_frames, mode="nearest")
