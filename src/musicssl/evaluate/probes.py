"""Probes on frozen embeddings: a linear layer or a one-hidden-layer MLP, trained full-batch.

Inputs are standardised with the training mean and standard deviation (regression targets
too). The linear probe is convex and is trained to convergence by L-BFGS (for regression it
is ridge regression, solved exactly); the MLP by full-batch Adam with early stopping on the
validation loss. Both penalise the squared weights (not the biases) by ``weight_decay / 2``.
``select_probe`` tries a small grid of probe types and weight decays and keeps the best by a
validation score.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from typing import Literal

import numpy as np
import torch
import torch.nn.functional as F

from musicssl.errors import MusicSSLError

Objective = Literal["multiclass", "multilabel", "regression"]
OBJECTIVES = ("multiclass", "multilabel", "regression")


@dataclass(frozen=True)
class ProbeSpec:
    """One probe configuration.

    Attributes:
        type: "linear" or "mlp".
        weight_decay: L2 penalty on the weights (``weight_decay / 2 * sum(w ** 2)``).
        hidden: hidden width of the MLP.
        max_steps: L-BFGS iterations (linear) or Adam steps (MLP) at most; a trained probe's
            ``steps`` says how many it took (0 for ridge regression, solved exactly).
        lr: Adam learning rate (MLP).
    """

    type: Literal["linear", "mlp"]
    weight_decay: float
    hidden: int = 256
    max_steps: int = 150
    lr: float = 1e-2

    def __post_init__(self) -> None:
        if self.type not in ("linear", "mlp"):
            raise MusicSSLError(f"probe type {self.type!r} is not 'linear' or 'mlp'")
        if self.weight_decay < 0 or self.hidden < 1 or self.max_steps < 1 or self.lr <= 0:
            raise MusicSSLError(f"probe {self}: weight_decay >= 0, hidden, max_steps, lr > 0")

    @property
    def label(self) -> str:
        return f"{self.type}:{self.weight_decay:g}"

    def to_dict(self) -> dict:
        fields = asdict(self)
        if self.type == "linear":  # the MLP's settings mean nothing for a linear probe
            fields.pop("hidden")
            fields.pop("lr")
        return fields


# Linear fits are cheap, so their grid runs from almost no penalty to one strong enough that
# an embedding without information gets a near-constant prediction (chance), not overfitting.
GRID: tuple[ProbeSpec, ...] = tuple(
    ProbeSpec("linear", wd) for wd in (1e-4, 1e-3, 1e-2, 1e-1, 1.0, 10.0)
) + tuple(ProbeSpec("mlp", wd) for wd in (1e-4, 1e-2))

# Probe matrices are small (thousands of rows by hundreds of columns). When the cores are busy
# with other work, OpenMP's spinning barriers made torch's default two threads 4-5x slower
# than one on the protocol's benchmark (7 tasks of 1512/324/324 items, 512 dimensions), while
# a quiet machine gains under 2x from more threads. None leaves torch's setting alone.
PROBE_THREADS: int | None = 1

# MLP early stopping: look at the validation loss every this many steps, and stop after this
# many looks without improvement.
_CHECK_EVERY = 5
_PATIENCE = 3


@contextmanager
def probe_threads() -> Iterator[None]:
    """Run the block with ``PROBE_THREADS`` torch threads (see there), then as before."""
    before = torch.get_num_threads()
    if PROBE_THREADS is None or PROBE_THREADS == before:
        yield
        return
    torch.set_num_threads(PROBE_THREADS)
    try:
        yield
    finally:
        torch.set_num_threads(before)


class Probe:
    """A trained probe: standardises its input and maps it to scores.

    ``scores`` returns class probabilities (multiclass, shape (num_items, num_classes)),
    per-class sigmoid probabilities (multilabel, same shape) or values in the target's units
    (regression, shape (num_items,)).
    """

    def __init__(
        self,
        spec: ProbeSpec,
        objective: str,
        params: list[torch.Tensor],
        mean: np.ndarray,
        std: np.ndarray,
        target_mean: float = 0.0,
        target_std: float = 1.0,
        steps: int = 0,
    ) -> None:
        self.spec = spec
        self.objective = objective
        self.params = params
        self.mean, self.std = mean, std
        self.target_mean, self.target_std = target_mean, target_std
        self.steps = steps

    def _inputs(self, x: np.ndarray) -> torch.Tensor:
        x = np.asarray(x, dtype=np.float32)
        if x.ndim != 2 or x.shape[1] != len(self.mean):
            raise MusicSSLError(f"probe: inputs {x.shape} are not (num_items, {len(self.mean)})")
        return torch.from_numpy((x - self.mean) / self.std)

    @torch.no_grad()
    def scores(self, x: np.ndarray) -> np.ndarray:
        """Probe output for inputs of shape (num_items, dim)."""
        with probe_threads():
            out = _forward(self.params, self._inputs(x))
        if self.objective == "multiclass":
            return out.softmax(dim=1).numpy()
        if self.objective == "multilabel":
            return out.sigmoid().numpy()
        return out[:, 0].numpy().astype(np.float64) * self.target_std + self.target_mean

    def predict(self, x: np.ndarray) -> np.ndarray:
        """Class index (multiclass), 0/1 per class at 0.5 (multilabel), or value (regression)."""
        scores = self.scores(x)
        if self.objective == "multiclass":
            return scores.argmax(axis=1)
        if self.objective == "multilabel":
            return (scores >= 0.5).astype(np.int64)
        return scores


def _forward(params: list[torch.Tensor], x: torch.Tensor) -> torch.Tensor:
    if len(params) == 2:
        return torch.addmm(params[1], x, params[0])
    w1, b1, w2, b2 = params
    return torch.addmm(b2, torch.addmm(b1, x, w1).relu_(), w2)


def objective_loss(objective: str, out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """The probe's loss: softmax cross-entropy (multiclass), sigmoid binary cross-entropy
    (multilabel) or squared error (regression, on ``out[:, 0]``)."""
    if objective == "multiclass":
        return F.cross_entropy(out, y)
    if objective == "multilabel":
        return F.binary_cross_entropy_with_logits(out, y)
    return F.mse_loss(out[:, 0], y)


def _init(spec: ProbeSpec, dim: int, num_outputs: int, seed: int) -> list[torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    sizes = [dim, num_outputs] if spec.type == "linear" else [dim, spec.hidden, num_outputs]
    params = []
    for fan_in, fan_out in zip(sizes[:-1], sizes[1:]):
        bound = 1.0 / fan_in**0.5  # the default nn.Linear scale
        params.append((torch.rand(fan_in, fan_out, generator=generator) * 2 - 1) * bound)
        params.append(torch.zeros(fan_out))
    return [p.requires_grad_() for p in params]


def target_tensor(
    objective: str, y: np.ndarray, num_outputs: int | None
) -> tuple[torch.Tensor, int]:
    """Targets as ``objective_loss`` takes them, and the number of outputs they need.

    Raises:
        MusicSSLError: targets of another shape or type than ``fit_probe`` documents.
    """
    y = np.asarray(y)
    if objective == "multiclass":
        if y.ndim != 1 or not np.issubdtype(y.dtype, np.integer) or (y < 0).any():
            raise MusicSSLError("probe: multiclass targets must be class indices >= 0, (N,)")
        outputs = num_outputs or int(y.max()) + 1
        if y.max() >= outputs:
            raise MusicSSLError(f"probe: class index {y.max()} >= num_outputs {outputs}")
        return torch.from_numpy(y.astype(np.int64)), outputs
    if objective == "multilabel":
        if y.ndim != 2:
            raise MusicSSLError("probe: multilabel targets must be 0/1 of (N, num_classes)")
        return torch.from_numpy(y.astype(np.float32)), y.shape[1]
    if y.ndim != 1 or not np.isfinite(y).all():
        raise MusicSSLError("probe: regression targets must be finite values of shape (N,)")
    return torch.from_numpy(y.astype(np.float32)), 1


def fit_probe(
    x: np.ndarray,
    y: np.ndarray,
    *,
    objective: Objective,
    spec: ProbeSpec,
    num_outputs: int | None = None,
    seed: int = 0,
    x_valid: np.ndarray | None = None,
    y_valid: np.ndarray | None = None,
) -> Probe:
    """Train one probe, full batch, on CPU.

    Args:
        x: training inputs. Shape: (num_items, dim).
        y: class indices (multiclass, shape (num_items,)), 0/1 labels (multilabel, shape
            (num_items, num_classes)) or values (regression, shape (num_items,)).
        objective: "multiclass" (softmax cross-entropy), "multilabel" (sigmoid binary
            cross-entropy) or "regression" (squared error on the standardised target).
        spec: probe type and settings.
        num_outputs: number of classes (multiclass; default: largest index + 1).
        seed: initialises the weights.
        x_valid, y_valid: when given, the MLP stops early on their loss and keeps its best
            weights (the linear probe ignores them: it is trained to convergence).
    """
    with probe_threads():
        return _fit(x, y, objective, spec, num_outputs, seed, x_valid, y_valid)


def _fit(x, y, objective, spec, num_outputs, seed, x_valid, y_valid) -> Probe:
    if objective not in OBJECTIVES:
        raise MusicSSLError(f"probe: objective {objective!r} not one of {OBJECTIVES}")
    x = np.asarray(x, dtype=np.float32)
    if x.ndim != 2 or len(x) != len(y) or len(x) == 0:
        raise MusicSSLError(f"probe: inputs {x.shape} and {len(y)} targets do not match")
    if not np.isfinite(x).all():
        raise MusicSSLError("probe: inputs contain NaN or infinity")
    mean = x.mean(axis=0)
    std = x.std(axis=0)
    std[std < 1e-8] = 1.0  # a constant feature stays zero after centring
    target, outputs = target_tensor(objective, y, num_outputs)
    target_mean, target_std = 0.0, 1.0
    if objective == "regression":
        target_mean, target_std = float(target.mean()), float(target.std(correction=0)) or 1.0
        target = (target - target_mean) / target_std
    probe = Probe(spec, objective, [], mean, std, target_mean, target_std)
    inputs = probe._inputs(x)
    params = _init(spec, x.shape[1], outputs, seed)
    weights = params[0::2]

    def objective_value(out: torch.Tensor) -> torch.Tensor:
        penalty = sum(w.square().sum() for w in weights)
        return objective_loss(objective, out, target) + spec.weight_decay / 2 * penalty

    if spec.type == "linear" and objective == "regression":
        _ridge(params, inputs, target, spec.weight_decay)
        steps = 0
    elif spec.type == "linear":
        optimiser = torch.optim.LBFGS(
            params,
            lr=1.0,
            max_iter=spec.max_steps,
            history_size=10,
            tolerance_grad=1e-5,
            tolerance_change=1e-9,
            line_search_fn="strong_wolfe",
        )

        def closure() -> torch.Tensor:
            optimiser.zero_grad()
            value = objective_value(_forward(params, inputs))
            value.backward()
            return value

        optimiser.step(closure)
        steps = optimiser.state[params[0]].get("n_iter", 0)
    else:
        steps = _adam(params, inputs, objective_value, spec, probe, x_valid, y_valid, outputs)
    probe.params = [p.detach() for p in params]
    probe.steps = int(steps)
    return probe


@torch.no_grad()
def _ridge(params: list[torch.Tensor], x: torch.Tensor, y: torch.Tensor, weight_decay: float):
    """The exact minimiser of mean squared error + weight_decay / 2 * |w|^2.

    Inputs and target are centred, so the bias is 0; the normal equations are solved in
    float64: (X^T X / N + weight_decay / 2 I) w = X^T y / N.
    """
    x64 = x.double()
    gram = x64.T @ x64 / len(x) + weight_decay / 2 * torch.eye(x.shape[1], dtype=torch.float64)
    rhs = (x64.T @ y.double() / len(x))[:, None]
    if weight_decay > 0:
        solution = torch.linalg.solve(gram, rhs)
    else:  # may be singular (more dimensions than items): the least-squares solution
        solution = torch.linalg.lstsq(gram, rhs).solution
    params[0].copy_(solution.float())
    params[1].zero_()


def _adam(params, inputs, objective_value, spec, probe, x_valid, y_valid, outputs) -> int:
    optimiser = torch.optim.Adam(params, lr=spec.lr)
    valid = None
    if x_valid is not None and y_valid is not None and len(x_valid):
        valid_target, _ = target_tensor(probe.objective, y_valid, outputs)
        if probe.objective == "regression":
            valid_target = (valid_target - probe.target_mean) / probe.target_std
        valid = (probe._inputs(x_valid), valid_target)
    best, best_loss, best_step, looks = [p.detach().clone() for p in params], np.inf, 0, 0
    for step in range(1, spec.max_steps + 1):
        optimiser.zero_grad()
        objective_value(_forward(params, inputs)).backward()
        optimiser.step()
        if valid is None or step % _CHECK_EVERY:
            continue
        with torch.no_grad():
            loss = float(objective_loss(probe.objective, _forward(params, valid[0]), valid[1]))
        if loss < best_loss:
            best, best_loss, best_step, looks = [p.detach().clone() for p in params], loss, step, 0
        else:
            looks += 1
            if looks >= _PATIENCE:
                break
    if valid is None:
        return spec.max_steps
    with torch.no_grad():
        for param, kept in zip(params, best):
            param.copy_(kept)
    return best_step


def select_probe(
    x_train: np.ndarray,
    y_train: np.ndarray,
    x_valid: np.ndarray,
    y_valid: np.ndarray,
    *,
    objective: Objective,
    score: Callable[[Probe], float],
    grid: Sequence[ProbeSpec] = GRID,
    num_outputs: int | None = None,
    seed: int = 0,
    callback: Callable[[ProbeSpec, float], None] | None = None,
) -> tuple[Probe, dict[str, float]]:
    """Fit every probe of ``grid`` on train and keep the one ``score`` rates best on valid.

    Args:
        score: the task's headline metric of a probe on the validation set (higher = better).
        callback: called after each grid point with its spec and validation score.

    Returns:
        The best probe (trained with ``seed``) and each grid point's validation score, keyed
        by ``ProbeSpec.label``. Ties go to the earlier (simpler) grid point.
    """
    if not grid:
        raise MusicSSLError("select_probe: empty grid")
    best, best_score, scores = None, -np.inf, {}
    for spec in grid:
        probe = fit_probe(
            x_train,
            y_train,
            objective=objective,
            spec=spec,
            num_outputs=num_outputs,
            seed=seed,
            x_valid=x_valid,
            y_valid=y_valid,
        )
        scores[spec.label] = value = float(score(probe))
        if value > best_score or best is None:
            best, best_score = probe, value
        if callback is not None:
            callback(spec, value)
    assert best is not None  # the grid is not empty
    return best, scores
