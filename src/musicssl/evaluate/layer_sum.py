"""A learned weighted sum of an encoder's layers: which mix of layers a task reads best.

As s3prl's featurizer and MARBLE's ``LayerWeightedSum`` weigh the layers of a model, one
weight per layer (a softmax over learned logits) mixes the layers' standardised vectors,
learned jointly with a linear probe on the training split by full-batch Adam, stopping early
on the validation loss. The probe's L2 penalty is chosen from a few by that validation loss,
as the probes' own is chosen on the validation split. The weights are then fixed,
and the mixed vectors are probed as any layer is (``protocol``): the same probe grid, seeds
and test resamples. The test split never moves a weight. Every layer must have the same
width.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import numpy as np
import torch

from musicssl.errors import MusicSSLError
from musicssl.evaluate.probes import objective_loss, probe_threads, target_tensor
from musicssl.evaluate.targets import ProbeData

# Joint fit of the weights and a linear probe: Adam's rate, the L2 penalties on the probe's
# weights tried, steps at most, and early stopping on the validation loss (look every
# CHECK_EVERY steps, stop after PATIENCE looks without improvement).
LR = 1e-2
WEIGHT_DECAYS = (1e-3, 1e-1, 10.0)
MAX_STEPS = 300
CHECK_EVERY = 5
PATIENCE = 3


def learn_layer_weights(layers: Sequence[ProbeData], *, seed: int = 0) -> np.ndarray:
    """Softmax weights of the layers, learned with a linear probe on train (see above).

    Args:
        layers: one task's probe data per layer, in layer order (the same items, targets
            and width).
        seed: initialises the probe.

    Returns:
        Shape: (num_layers,), non-negative, summing to 1.

    Raises:
        MusicSSLError: fewer than two layers, or layers of different widths.
    """
    widths = {data.x["train"].shape[1] for data in layers}
    if len(layers) < 2 or len(widths) != 1:
        raise MusicSSLError(
            f"a weighted sum needs two or more layers of one width, got {len(layers)} "
            f"of widths {sorted(widths)}"
        )
    if len({tuple(len(x) for x in data.x.values()) for data in layers}) != 1:
        raise MusicSSLError("a weighted sum needs the same items in every layer")
    first = layers[0]
    train = _standardised(layers, "train")  # (N, L, D)
    valid = _standardised(layers, "valid")
    target, outputs = target_tensor(first.objective, first.y["train"], first.num_outputs)
    valid_target, _ = target_tensor(first.objective, first.y["valid"], outputs)
    if first.objective == "regression":
        mean, std = float(target.mean()), float(target.std(correction=0)) or 1.0
        target, valid_target = (target - mean) / std, (valid_target - mean) / std
    with probe_threads():
        fits = [
            _joint_fit(
                train,
                target,
                valid,
                valid_target,
                first.objective,
                outputs,
                weight_decay=weight_decay,
                seed=seed,
            )  # fmt: skip
            for weight_decay in WEIGHT_DECAYS
        ]
    return min(fits, key=lambda fit: fit[1])[0].softmax(0).numpy().astype(np.float64)


def _joint_fit(
    train: torch.Tensor,
    target: torch.Tensor,
    valid: torch.Tensor,
    valid_target: torch.Tensor,
    objective: str,
    outputs: int,
    *,
    weight_decay: float,
    seed: int,
) -> tuple[torch.Tensor, float]:
    """The layer logits of the best validation loss of one joint fit, and that loss."""
    generator = torch.Generator().manual_seed(seed)
    width = train.shape[2]
    logits = torch.zeros(train.shape[1], requires_grad=True)  # every layer alike at first
    weight = (torch.rand(width, outputs, generator=generator) * 2 - 1) / width**0.5
    weight.requires_grad_()
    bias = torch.zeros(outputs, requires_grad=True)

    def loss_of(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        mixed = torch.einsum("l,nld->nd", logits.softmax(0), x)
        return objective_loss(objective, mixed @ weight + bias, y)

    optimiser = torch.optim.Adam([logits, weight, bias], lr=LR)
    best, best_loss, looks = logits.detach().clone(), float("inf"), 0
    for step in range(1, MAX_STEPS + 1):
        optimiser.zero_grad()
        (loss_of(train, target) + weight_decay / 2 * weight.square().sum()).backward()
        optimiser.step()
        if step % CHECK_EVERY:
            continue
        with torch.no_grad():
            loss = float(loss_of(valid, valid_target))
        if loss < best_loss:
            best, best_loss, looks = logits.detach().clone(), loss, 0
        else:
            looks += 1
            if looks >= PATIENCE:
                break
    return best, best_loss


def mix_layers(layers: Sequence[ProbeData], weights: np.ndarray) -> ProbeData:
    """The first layer's probe data with every split's inputs replaced by the ``weights``'
    sum of the layers' inputs, each standardised by its training mean and std."""
    x = {
        split: np.einsum("l,nld->nd", weights, _standardised(layers, split).numpy())
        for split in layers[0].x
    }
    return dataclasses.replace(layers[0], x=x)


def _standardised(layers: Sequence[ProbeData], split: str) -> torch.Tensor:
    """Every layer's inputs on ``split`` with its training mean and std.

    Shape: (num_items, num_layers, dim)."""
    parts = []
    for data in layers:
        train = data.x["train"]
        std = train.std(axis=0)
        std[std < 1e-8] = 1.0  # a constant feature stays zero after centring
        parts.append((data.x[split] - train.mean(axis=0)) / std)
    return torch.from_numpy(np.stack(parts, axis=1).astype(np.float32))
