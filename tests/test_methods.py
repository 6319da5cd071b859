import pytest
import torch

from musicssl.encoders import SampleCNN
from musicssl.errors import MusicSSLError
from musicssl.methods import METHODS, build_method

SMALL_HEADS = {"hidden_dim": 32, "projection_dim": 16}


def _encoder() -> SampleCNN:
    return SampleCNN(num_blocks=4, channels=[8, 8, 16, 16, 16, 32], sample_rate=8000)


def _step(method, x_a, x_b):
    """The method on its views of a batch, with one caption per clip if it reads text."""
    views = (x_a, x_b)[: method.num_views]
    if not method.uses_text:
        return method(*views)
    texts = [f"clip {i}: a {('slow', 'lively')[i % 2]} piece" for i in range(len(x_a))]
    return method(*views, texts=texts)


@pytest.mark.parametrize("name", sorted(METHODS))
def test_every_method_steps_and_every_trained_parameter_gets_a_gradient(name):
    torch.manual_seed(0)
    method = build_method(name, _encoder(), **SMALL_HEADS)
    x_a, x_b = torch.randn(2, 6, 243).unbind(0)
    outputs = _step(method, x_a, x_b)
    assert outputs["loss"].ndim == 0 and torch.isfinite(outputs["loss"])
    outputs["loss"].backward()
    for parameter_name, parameter in method.named_parameters():
        if parameter.requires_grad:
            assert parameter.grad is not None, parameter_name
            assert torch.isfinite(parameter.grad).all(), parameter_name
        else:
            assert parameter_name.startswith("target_"), parameter_name


@pytest.mark.parametrize("name", sorted(METHODS))
def test_every_method_lowers_its_loss_on_a_fixed_batch(name):
    torch.manual_seed(0)
    method = build_method(name, _encoder(), **SMALL_HEADS)
    x = torch.randn(8, 243)
    x_a, x_b = x + 0.05 * torch.randn_like(x), x + 0.05 * torch.randn_like(x)
    optimizer = torch.optim.Adam([p for p in method.parameters() if p.requires_grad], lr=1e-3)
    losses = []
    for step in range(15):
        loss = _step(method, x_a, x_b)["loss"]
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        if hasattr(method, "after_optimizer_step"):
            method.after_optimizer_step(step + 1, 15)
        losses.append(loss.item())
    assert losses[-1] < losses[0]


def test_byol_target_follows_the_online_network_by_ema():
    torch.manual_seed(0)
    method = build_method("byol", _encoder(), **SMALL_HEADS, base_momentum=0.9)
    online = method.encoder.layers[0][0].weight
    target = method.target_encoder.layers[0][0].weight
    assert torch.equal(online, target)
    with torch.no_grad():
        online.add_(1.0)
    before = target.clone()
    momentum = method.after_optimizer_step(0, 10)["momentum"]
    assert momentum == pytest.approx(0.9)
    torch.testing.assert_close(target, 0.9 * before + 0.1 * online)


def test_byol_predictor_gets_its_own_learning_rate_scale():
    method = build_method("byol", _encoder(), **SMALL_HEADS, predictor_lr_scale=10.0)
    rest, predictor = method.parameter_groups()
    assert predictor["lr_scale"] == 10.0 and "lr_scale" not in rest
    assert {id(p) for p in predictor["params"]} == {id(p) for p in method.predictor.parameters()}
    trained = {id(p) for p in method.parameters() if p.requires_grad}
    grouped = [id(p) for group in (rest, predictor) for p in group["params"]]
    assert len(grouped) == len(set(grouped)) and set(grouped) == trained


def test_unknown_method_names_the_valid_ones():
    with pytest.raises(MusicSSLError, match="simclr"):
        build_method("simsiam", _encoder())
