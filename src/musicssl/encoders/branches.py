"""Several encoders side by side on the same audio, their embeddings concatenated."""

from __future__ import annotations

import json
from typing import Any, cast

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from musicssl.encoders._shared import check_waveforms, resolve_layer
from musicssl.encoders.base import Encoder
from musicssl.errors import MusicSSLError

__all__ = ["Branches"]

SPEC_KEYS = {"name", "options", "layers"}


class Branches(Encoder):
    """Named encoders (branches) that each read the whole input; one encoder to the outside.

    Built for recipes that combine objectives of different families, each on the encoder it
    needs (``methods/combined.py``): e.g. a contrastive short-chunk CNN for timbre and style
    beside a transposition-equivariant CQT branch for key and pitch.

    Layers: every layer of every branch in order (branch 0's layers, then branch 1's, ...),
    then a joint last layer: the layers each branch names (its last by default) side by
    side, each brought to the frame count of the finest one by repeating frames (so each
    branch's own pooling over frames, max or mean, gives the value it gives alone). Frame
    features of the encoder are the joint layer's; the clip embedding is each of its parts
    pooled by its branch, centred and scaled to unit norm (see ``pool``).

    Args:
        branches: name -> ``{"name": registry name, "options": {...}, "layers": [...]}``.
            Every branch must take the same sample rate. ``layers`` (default ``[-1]``, the
            branch's own clip embedding) names the branch's layers that the clip embedding
            holds: e.g. ``[-3, -2, -1]`` for the key CNN keeps its last block's summary over
            the CQT bins (which transposition leaves unchanged) and its pitch classes (which
            it rotates) beside its key logits.
    """

    def __init__(self, *, branches: dict[str, dict[str, Any]]) -> None:
        super().__init__()
        from musicssl.encoders import build_encoder  # the registry imports this module

        if not branches:
            raise MusicSSLError("Branches: give at least one branch")
        self._config: dict[str, Any] = {"branches": {}}
        built = {}
        # (branch, layer index, channels) of each part of the joint layer, in order.
        self._parts: list[tuple[str, int, int]] = []
        for key, spec in branches.items():
            if not isinstance(spec, dict) or set(spec) - SPEC_KEYS or "name" not in spec:
                raise MusicSSLError(
                    f"Branches: branch {key!r} must be {{name: ENCODER, options: {{...}}, "
                    f"layers: [...]}}, got {spec!r}"
                )
            options = dict(spec.get("options") or {})
            encoder = build_encoder(spec["name"], **options)
            built[key] = encoder
            self._parts.extend(_parts(key, encoder, spec.get("layers", [-1])))
            self._config["branches"][key] = {"name": spec["name"], "options": options}
            if "layers" in spec:
                self._config["branches"][key]["layers"] = list(spec["layers"])
        self.branches = nn.ModuleDict(built)
        rates = {encoder.sample_rate for encoder in built.values()}
        if len(rates) != 1:
            raise MusicSSLError(f"Branches: every branch must take one sample rate, got {rates}")
        self.sample_rate = rates.pop()
        self.input_samples = max(encoder.input_samples for encoder in built.values())
        self.embedding_dim = sum(channels for _, _, channels in self._parts)
        self.num_layers = sum(encoder.num_layers for encoder in built.values()) + 1

    def encoders(self) -> list[Encoder]:
        """The branches' encoders, in order."""
        return [cast(Encoder, encoder) for encoder in self.branches.values()]

    def config(self) -> dict[str, Any]:
        """Constructor arguments, as plain JSON/YAML values: ``Branches(**config())``."""
        return json.loads(json.dumps(self._config))

    def layer_labels(self) -> list[str]:
        """ "BRANCH layer I" for each branch's layers (I counted within the branch), then
        "joint" for the joint last layer."""
        labels = [
            f"{key} layer {index}"
            for key, encoder in zip(self.branches, self.encoders())
            for index in range(encoder.num_layers)
        ]
        return [*labels, "joint"]

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
        layers: dict[str, list[Tensor]] = {}
        for key, encoder in zip(self.branches, self.encoders(), strict=True):
            own_maps = getattr(encoder, "forward_maps", None)
            if own_maps is not None:
                branch_maps = own_maps(x)
                layers[key] = [h.amax(dim=2) for h in branch_maps]
            else:
                layers[key] = encoder.forward_layers(x)
                branch_maps = [h.unsqueeze(2) for h in layers[key]]
            maps.extend(branch_maps)
        parts = [layers[key][index] for key, index, _ in self._parts]
        num_frames = max(h.shape[-1] for h in parts)
        joint = [h if h.shape[-1] == num_frames else _repeat_frames(h, num_frames) for h in parts]
        return [*maps, torch.cat(joint, dim=1).unsqueeze(2)]

    def pool(self, features: Tensor) -> Tensor:
        """Each branch's pooling over its channels of the joint layer, standardised, side by side.

        The branches' clip embeddings come in unlike units (maxima of ReLU maps, logits,
        probabilities) and each carries an offset shared by every clip, which puts every
        cosine similarity near 1 and lets the largest part decide it. Each part is therefore
        centred over its own channels and scaled to unit norm (per clip, nothing estimated
        from other clips), so that every branch counts alike in a cosine similarity.
        """
        parts = features.split([channels for _, _, channels in self._parts], dim=1)
        pooled = []
        for (key, _, _), part in zip(self._parts, parts, strict=True):
            vector = cast(Encoder, self.branches[key]).pool(part)
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


def _parts(key: str, encoder: Encoder, layers: list[int]) -> list[tuple[str, int, int]]:
    """(key, layer index, channels) of the branch's layers that its part of the embedding holds."""
    if not isinstance(layers, list) or not layers:
        raise MusicSSLError(f"Branches: branch {key!r}: layers must be a list of layer numbers")
    indices = [
        resolve_layer(layer, encoder.num_layers, f"Branches branch {key!r}") for layer in layers
    ]
    if len(set(indices)) != len(indices):
        raise MusicSSLError(f"Branches: branch {key!r} names a layer twice: {layers}")
    channels = {encoder.num_layers - 1: encoder.embedding_dim}
    if set(indices) - set(channels):  # the other layers' widths: one small pass, weights kept
        was_training = encoder.training
        encoder.eval()
        with torch.no_grad():
            probe = 0.01 * torch.randn(1, encoder.input_samples, generator=torch.Generator())
            channels = {k: h.shape[1] for k, h in enumerate(encoder.forward_layers(probe))}
        encoder.train(was_training)
    return [(key, index, channels[index]) for index in indices]


def _repeat_frames(h: Tensor, num_frames: int) -> Tensor:
    """Shape: (B, C, T) -> (B, C, num_frames), each frame repeated over its share of time."""
    return F.interpolate(h, size=num_frames, mode="nearest")
