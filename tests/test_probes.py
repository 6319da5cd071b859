import numpy as np
import pytest

from musicssl.errors import MusicSSLError
from musicssl.evaluate.layer_sum import learn_layer_weights, mix_layers
from musicssl.evaluate.probes import GRID, ProbeSpec, fit_probe, select_probe
from musicssl.evaluate.targets import ProbeData

LINEAR = ProbeSpec("linear", 1e-3)
MLP = ProbeSpec("mlp", 1e-3, hidden=64, max_steps=100)


def blobs(num_items: int, *, seed: int = 0, dim: int = 16, num_classes: int = 3):
    """Well separated Gaussian clusters, one per class, off the origin and badly scaled."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(num_classes, dim)) * 4
    labels = rng.integers(0, num_classes, num_items)
    x = centres[labels] + rng.normal(size=(num_items, dim))
    return (x * 50 + 1000).astype(np.float32), labels


@pytest.mark.parametrize("spec", [LINEAR, MLP])
def test_separable_classes_are_learnt(spec):
    x_all, y_all = blobs(600)
    probe = fit_probe(
        x_all[:400],
        y_all[:400],
        objective="multiclass",
        spec=spec,
        x_valid=x_all[400:500],
        y_valid=y_all[400:500],
    )
    assert probe.scores(x_all[500:]).shape == (100, 3)
    np.testing.assert_allclose(probe.scores(x_all[500:]).sum(axis=1), 1.0, rtol=1e-5)
    assert np.mean(probe.predict(x_all[500:]) == y_all[500:]) >= 0.98


def test_classes_never_seen_in_training_keep_an_output():
    x, y = blobs(100)
    probe = fit_probe(x, y, objective="multiclass", spec=LINEAR, num_outputs=5)
    assert probe.scores(x).shape == (100, 5)
    with pytest.raises(MusicSSLError, match="num_outputs"):
        fit_probe(x, y, objective="multiclass", spec=LINEAR, num_outputs=2)


@pytest.mark.parametrize("spec", [LINEAR, MLP])
def test_regression_fits_a_linear_target_in_its_own_units(spec):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(500, 8)).astype(np.float32)
    y = 300 + 40 * (x @ rng.normal(size=8)) + rng.normal(size=500)
    probe = fit_probe(
        x[:400], y[:400], objective="regression", spec=spec, x_valid=x[400:450], y_valid=y[400:450]
    )
    estimate = probe.predict(x[450:])
    residual = np.sum((estimate - y[450:]) ** 2) / np.sum((y[450:] - y[450:].mean()) ** 2)
    assert 1 - residual > (0.99 if spec.type == "linear" else 0.9)


def test_linear_regression_is_exact_ridge():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(60, 5)) * [1, 2, 3, 4, 5] + 10
    y = x @ rng.normal(size=5) + rng.normal(size=60)
    weight_decay = 0.3
    probe = fit_probe(x, y, objective="regression", spec=ProbeSpec("linear", weight_decay))
    # the same objective by hand: standardise, then (X^T X / N + wd / 2 I) w = X^T y / N
    xs = (x - x.mean(axis=0)) / x.std(axis=0)
    ys = (y - y.mean()) / y.std()
    w = np.linalg.solve(xs.T @ xs / 60 + weight_decay / 2 * np.eye(5), xs.T @ ys / 60)
    expected = xs @ w * y.std() + y.mean()
    np.testing.assert_allclose(probe.predict(x), expected, atol=1e-4 * y.std())  # float32
    assert probe.steps == 0


def test_multilabel_scores_rank_the_true_labels_first():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(400, 6)).astype(np.float32)
    y = (x[:, :3] > 0).astype(np.int64)
    probe = fit_probe(x[:300], y[:300], objective="multilabel", spec=LINEAR)
    scores = probe.scores(x[300:])
    assert scores.shape == (100, 3) and ((scores >= 0) & (scores <= 1)).all()
    assert np.mean(probe.predict(x[300:]) == y[300:]) > 0.95


def test_standardisation_makes_the_linear_probe_scale_free():
    x, y = blobs(200)
    probe = fit_probe(x, y, objective="multiclass", spec=LINEAR)
    rescaled = fit_probe(x * 1e-3 - 7, y, objective="multiclass", spec=LINEAR)
    np.testing.assert_allclose(probe.scores(x), rescaled.scores(x * 1e-3 - 7), atol=2e-3)


def test_seeds_reinitialise_the_mlp_and_repeat_exactly():
    x, y = blobs(200)
    first = fit_probe(x, y, objective="multiclass", spec=MLP, seed=3)
    again = fit_probe(x, y, objective="multiclass", spec=MLP, seed=3)
    other = fit_probe(x, y, objective="multiclass", spec=MLP, seed=4)
    np.testing.assert_array_equal(first.scores(x), again.scores(x))
    assert not np.array_equal(first.params[0].numpy(), other.params[0].numpy())
    assert first.steps == MLP.max_steps  # no validation set: no early stopping


def test_mlp_early_stopping_keeps_the_best_validation_step():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(300, 64)).astype(np.float32)
    y = rng.integers(0, 4, 300)  # pure noise: the validation loss rises almost at once
    spec = ProbeSpec("mlp", 0.0, hidden=64, max_steps=200)
    probe = fit_probe(
        x[:200], y[:200], objective="multiclass", spec=spec, x_valid=x[200:], y_valid=y[200:]
    )
    assert 0 < probe.steps < spec.max_steps and probe.steps % 5 == 0


def test_select_probe_keeps_the_best_validation_score():
    x, y = blobs(300)
    seen = []
    calls = iter(range(len(GRID)))
    # a made-up rating per grid point, in grid order, with a tie at the top
    ratings = [0.1 + 0.01 * i for i in range(len(GRID))]
    ratings[1] = ratings[3] = 0.9
    probe, valid = select_probe(
        x[:200],
        y[:200],
        x[200:],
        y[200:],
        objective="multiclass",
        score=lambda p: ratings[next(calls)],
        callback=lambda spec, value: seen.append(spec.label),
    )
    assert list(valid) == [spec.label for spec in GRID] == seen
    assert list(valid.values()) == ratings
    assert probe.spec == GRID[1]  # the tie goes to the earlier grid point


def test_select_probe_prefers_the_mlp_when_only_a_nonlinear_read_out_works():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(900, 8)).astype(np.float32)
    y = ((x[:, 0] > 0) ^ (x[:, 1] > 0)).astype(np.int64)  # XOR: no line separates it
    x_valid, y_valid = x[500:700], y[500:700]
    probe, valid = select_probe(
        x[:500],
        y[:500],
        x_valid,
        y_valid,
        objective="multiclass",
        score=lambda p: float(np.mean(p.predict(x_valid) == y_valid)),
    )
    assert probe.spec.type == "mlp"
    assert max(v for label, v in valid.items() if label.startswith("linear")) < 0.65
    assert np.mean(probe.predict(x[700:]) == y[700:]) > 0.85


def test_bad_inputs_raise():
    x, y = blobs(50)
    bad = x.copy()
    bad[3, 2] = np.nan
    with pytest.raises(MusicSSLError, match="NaN"):
        fit_probe(bad, y, objective="multiclass", spec=LINEAR)
    with pytest.raises(MusicSSLError, match="do not match"):
        fit_probe(x, y[:-1], objective="multiclass", spec=LINEAR)
    with pytest.raises(MusicSSLError, match="objective"):
        fit_probe(x, y, objective="ranking", spec=LINEAR)
    with pytest.raises(MusicSSLError, match="probe type"):
        ProbeSpec("svm", 1e-3)
    probe = fit_probe(x, y, objective="multiclass", spec=LINEAR)
    with pytest.raises(MusicSSLError, match=r"not \(num_items, 16\)"):
        probe.scores(x[:, :8])


# --- a learned weighted sum of layers ----------------------------------------------------------


def _layer_data(x: dict[str, np.ndarray], y: dict[str, np.ndarray]) -> ProbeData:
    return ProbeData(y, "multiclass", 2, lambda split, out, rows: {}, chance={}, x=x)


def test_the_weighted_sum_learns_to_read_the_layer_that_holds_the_label():
    rng = np.random.default_rng(0)
    sizes = {"train": 400, "valid": 100, "test": 100}
    y = {split: rng.integers(0, 2, n) for split, n in sizes.items()}
    noise = [{s: rng.normal(size=(n, 8)) for s, n in sizes.items()} for _ in range(3)]
    # Layer 1 holds the label in its first feature; layers 0 and 2 are noise alone.
    noise[1] = {s: x + 3.0 * (2 * y[s][:, None] - 1) * np.eye(8)[0] for s, x in noise[1].items()}
    layers = [_layer_data(x, y) for x in noise]
    weights = learn_layer_weights(layers)
    assert weights.shape == (3,) and weights.sum() == pytest.approx(1.0)
    assert weights[1] > 0.6 and weights[1] == weights.max()


def test_mixing_standardises_each_layer_by_train_and_weighs_it():
    x0 = {"train": np.array([[0.0], [2.0]]), "test": np.array([[4.0]])}
    x1 = {"train": np.array([[10.0], [30.0]]), "test": np.array([[0.0]])}
    y = {"train": np.array([0, 1]), "test": np.array([1])}
    mixed = mix_layers([_layer_data(x0, y), _layer_data(x1, y)], np.array([0.25, 0.75]))
    # Train means 1 and 20, stds 1 and 10: test is 0.25 * (4 - 1) / 1 + 0.75 * (0 - 20) / 10.
    assert mixed.x["test"] == pytest.approx(np.array([[0.25 * 3.0 - 0.75 * 2.0]]))
    assert mixed.x["train"] == pytest.approx(np.array([[-1.0], [1.0]]))
    assert mixed.y is y


def test_a_weighted_sum_refuses_layers_of_different_widths():
    y = {"train": np.array([0, 1]), "valid": np.array([0, 1])}
    narrow = _layer_data({s: np.zeros((2, 3)) for s in y}, y)
    wide = _layer_data({s: np.zeros((2, 4)) for s in y}, y)
    with pytest.raises(MusicSSLError, match="one width"):
        learn_layer_weights([narrow, wide])
    with pytest.raises(MusicSSLError, match="two or more layers"):
        learn_layer_weights([narrow])
