"""Losses: hand-computed values, symmetry, a falling toy loss, and the distributed gather."""

from __future__ import annotations

import math
import os
import socket
from pathlib import Path

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from torch import nn

from musicssl.errors import MusicSSLError
from musicssl.losses import (
    barlow_twins_loss,
    byol_loss,
    clip_loss,
    codebook_usage,
    cosine_ema_momentum,
    ema_update,
    gather_with_grad,
    masked_code_cross_entropy,
    masked_patch_mse,
    normalise_patches,
    nt_xent,
    random_patch_mask,
    random_projection_codes,
    slap_loss,
    span_mask,
    vicreg_loss,
)

R2 = math.sqrt(2.0)


def _t(rows: list[list[float]]) -> torch.Tensor:
    return torch.tensor(rows, dtype=torch.float32)


# ---------------------------------------------------------------------------------- NT-Xent


def test_nt_xent_orthogonal_pairs_by_hand():
    # a_i == b_i == e_i, temperature 1. Every anchor: positive similarity 1, two negatives of
    # similarity 0, the anchor itself excluded: loss = -1 + log(e^1 + e^0 + e^0).
    z = _t([[1, 0], [0, 1]])
    expected = math.log(math.e + 2.0) - 1.0  # 0.55144...
    assert nt_xent(z, z.clone(), temperature=1.0).item() == pytest.approx(expected, rel=1e-6)


def test_nt_xent_unnormalised_by_hand():
    # After L2 normalisation: a1 = (1, 0), a2 = (0, 1), b1 = (1, 1) / sqrt2, b2 = (0, -1).
    # Temperature 0.5 doubles every cosine. Logits per anchor (positive first):
    #   a1: b1 = 2/sqrt2 = sqrt2 | a2 = 0,      b2 = 0
    #   a2: b2 = -2              | a1 = 0,      b1 = sqrt2
    #   b1: a1 = sqrt2           | a2 = sqrt2,  b2 = -sqrt2
    #   b2: a2 = -2              | a1 = 0,      b1 = -sqrt2
    # loss(anchor) = -positive + log(sum of exp over the three logits).
    z_a = _t([[3, 0], [0, 2]])
    z_b = _t([[1, 1], [0, -5]])
    e = math.exp
    per_anchor = [
        -R2 + math.log(e(R2) + 1 + 1),
        2 + math.log(e(-2) + 1 + e(R2)),
        -R2 + math.log(e(R2) + e(R2) + e(-R2)),
        2 + math.log(e(-2) + 1 + e(-R2)),
    ]
    expected = sum(per_anchor) / 4
    assert nt_xent(z_a, z_b, temperature=0.5).item() == pytest.approx(expected, rel=1e-6)


def test_nt_xent_symmetric_and_permutation_invariant():
    gen = torch.Generator().manual_seed(0)
    z_a, z_b = torch.randn(6, 4, generator=gen), torch.randn(6, 4, generator=gen)
    loss = nt_xent(z_a, z_b, temperature=0.2)
    assert nt_xent(z_b, z_a, temperature=0.2).item() == pytest.approx(loss.item(), rel=1e-6)
    order = torch.randperm(6, generator=gen)
    permuted = nt_xent(z_a[order], z_b[order], temperature=0.2)
    assert permuted.item() == pytest.approx(loss.item(), rel=1e-6)


def test_nt_xent_rejects_bad_input():
    with pytest.raises(MusicSSLError, match=r"\(4, 3\) and \(4, 2\)"):
        nt_xent(torch.randn(4, 3), torch.randn(4, 2), temperature=0.1)
    with pytest.raises(MusicSSLError, match="temperature"):
        nt_xent(torch.randn(4, 3), torch.randn(4, 3), temperature=0.0)


# ------------------------------------------------------------------------------------- BYOL


def test_byol_loss_by_hand_and_stop_gradient():
    # Pair 1: (1, 0) vs (0, 1): cos 0 -> 2. Pair 2: (1, 1) vs (2, 0): cos 1/sqrt2 -> 2 - sqrt2.
    p = _t([[1, 0], [1, 1]]).requires_grad_()
    z = _t([[0, 1], [2, 0]]).requires_grad_()
    loss = byol_loss(p, z)
    assert loss.item() == pytest.approx((2 + 2 - R2) / 2, rel=1e-6)
    assert byol_loss(z, p).item() == pytest.approx(loss.item(), rel=1e-6)
    loss.backward()
    assert z.grad is None  # the target gets no gradient
    assert p.grad is not None and torch.isfinite(p.grad).all() and p.grad.abs().sum() > 0


def test_cosine_ema_momentum_schedule():
    assert cosine_ema_momentum(0, 100) == pytest.approx(0.996)
    assert cosine_ema_momentum(50, 100) == pytest.approx(1 - 0.004 * 0.5)  # cos(pi/2) = 0
    assert cosine_ema_momentum(100, 100) == pytest.approx(1.0)
    assert cosine_ema_momentum(150, 100) == pytest.approx(1.0)
    assert cosine_ema_momentum(25, 100, base=0.9) == pytest.approx(
        1 - 0.1 * (math.cos(math.pi / 4) + 1) / 2
    )
    # Rising to a final momentum below 1: (0.99 + 0.999) / 2 halfway, constant if equal.
    assert cosine_ema_momentum(50, 100, base=0.99, final=0.999) == pytest.approx(0.9945)
    assert cosine_ema_momentum(100, 100, base=0.99, final=0.999) == pytest.approx(0.999)
    assert cosine_ema_momentum(70, 100, base=0.99, final=0.99) == pytest.approx(0.99)
    with pytest.raises(MusicSSLError, match="total_steps"):
        cosine_ema_momentum(0, 0)
    with pytest.raises(MusicSSLError, match="base <= final"):
        cosine_ema_momentum(0, 10, base=0.99, final=0.9)


def test_ema_update_moves_parameters_and_copies_buffers():
    online = nn.Sequential(nn.Linear(2, 2), nn.BatchNorm1d(2))
    target = nn.Sequential(nn.Linear(2, 2), nn.BatchNorm1d(2))
    with torch.no_grad():
        for param in online.parameters():
            param.fill_(1.0)
        for param in target.parameters():
            param.fill_(0.0)
        online[1].running_mean.fill_(3.0)
    ema_update(target, online, momentum=0.9)
    for param in target.parameters():
        torch.testing.assert_close(param, torch.full_like(param, 0.1))  # 0.9 * 0 + 0.1 * 1
    torch.testing.assert_close(target[1].running_mean, torch.full((2,), 3.0))
    with pytest.raises(MusicSSLError, match="differ"):
        ema_update(nn.Linear(2, 2), online, momentum=0.9)


# ----------------------------------------------------------------------------------- VICReg


def test_vicreg_by_hand():
    # z_a = [[1, 0], [-1, 2]], z_b = [[0, 0], [0, 1]]; n = 2 rows, d = 2 dims.
    # invariance: squared differences 1, 0, 1, 1 -> mean 3/4.
    # variance (unbiased, eps = 1e-4): z_a columns (1, -1) and (0, 2) have var 2, std > 1 ->
    #   hinge 0. z_b columns (0, 0): var 0, std 0.01 -> 0.99; (0, 1): var 0.5 ->
    #   1 - sqrt(0.5001). h(z_b) = mean of both; variance = (h(z_a) + h(z_b)) / 2.
    # covariance: centred z_a columns (1, -1) and (-1, 1): C_01 = C_10 = -2 / (n - 1) = -2,
    #   sum of squares 8, / d -> 4. z_b's first column is constant -> 0.
    z_a = _t([[1, 0], [-1, 2]])
    z_b = _t([[0, 0], [0, 1]])
    invariance = 0.75
    h_b = ((1 - math.sqrt(1e-4)) + (1 - math.sqrt(0.5 + 1e-4))) / 2
    variance = (0.0 + h_b) / 2
    covariance = 4.0
    loss, terms = vicreg_loss(z_a, z_b)
    assert terms["invariance"].item() == pytest.approx(invariance, rel=1e-6)
    assert terms["variance"].item() == pytest.approx(variance, rel=1e-5)
    assert terms["covariance"].item() == pytest.approx(covariance, rel=1e-6)
    assert loss.item() == pytest.approx(25 * invariance + 25 * variance + covariance, rel=1e-5)
    weighted, _ = vicreg_loss(z_a, z_b, sim_weight=1.0, var_weight=2.0, cov_weight=3.0)
    assert weighted.item() == pytest.approx(invariance + 2 * variance + 3 * covariance, rel=1e-5)
    swapped, _ = vicreg_loss(z_b, z_a)
    assert swapped.item() == pytest.approx(loss.item(), rel=1e-6)


def test_vicreg_needs_two_rows():
    with pytest.raises(MusicSSLError, match="at least 2"):
        vicreg_loss(torch.randn(1, 4), torch.randn(1, 4))


# ------------------------------------------------------------------------------ Barlow Twins


def test_barlow_twins_by_hand():
    # n = 3, d = 2, eps = 0 so that the numbers are exact. Standardised columns (biased var):
    #   z_a[:, 0] = (1, 0, -1):  var 2/3 -> (1, 0, -1) / sqrt(2/3)
    #   z_a[:, 1] = (0, 1, 2):   var 2/3 -> (-1, 0, 1) / sqrt(2/3)
    #   z_b[:, 0] = (2, 0, 1):   var 2/3 -> (1, -1, 0) / sqrt(2/3)
    #   z_b[:, 1] = (0, 0, 3):   var 2   -> (-1, -1, 2) / sqrt(2)
    # C = a^T b / 3:  C_00 = 1 / (3 * 2/3) = 1/2
    #                 C_11 = (1 + 2) / (3 * sqrt(4/3)) = sqrt(3)/2
    #                 C_01 = (-1 - 2) / (3 * sqrt(4/3)) = -sqrt(3)/2
    #                 C_10 = -1 / (3 * 2/3) = -1/2
    # invariance = (1 - 1/2)^2 + (1 - sqrt(3)/2)^2; redundancy = 3/4 + 1/4 = 1.
    z_a = _t([[1, 0], [0, 1], [-1, 2]])
    z_b = _t([[2, 0], [0, 0], [1, 3]])
    invariance = 0.25 + (1 - math.sqrt(3) / 2) ** 2
    loss, terms = barlow_twins_loss(z_a, z_b, lambda_offdiag=0.1, eps=0.0)
    assert terms["invariance"].item() == pytest.approx(invariance, rel=1e-5)
    assert terms["redundancy"].item() == pytest.approx(1.0, rel=1e-5)
    assert loss.item() == pytest.approx(invariance + 0.1, rel=1e-5)
    swapped, _ = barlow_twins_loss(z_b, z_a, lambda_offdiag=0.1, eps=0.0)
    assert swapped.item() == pytest.approx(loss.item(), rel=1e-6)
    # The default eps (1e-5, as batch norm) barely moves it.
    default, _ = barlow_twins_loss(z_a, z_b, lambda_offdiag=0.1)
    assert default.item() == pytest.approx(loss.item(), rel=1e-4)


# ------------------------------------------------------------------------------- all losses


def _nt_xent(z_a, z_b):
    return nt_xent(z_a, z_b, temperature=0.5)


def _byol(z_a, z_b):
    return byol_loss(z_a, z_b) + byol_loss(z_b, z_a)


def _vicreg(z_a, z_b):
    return vicreg_loss(z_a, z_b)[0]


def _barlow(z_a, z_b):
    return barlow_twins_loss(z_a, z_b, lambda_offdiag=0.05)[0]


def _clip(z_a, z_b):
    return clip_loss(z_a, z_b, temperature=0.5)


def _slap(z_a, z_b):
    # Each side's output is its prediction and the other side's target.
    return slap_loss(z_a, z_b, z_b, z_a)[0]


LOSSES = {
    "nt_xent": _nt_xent,
    "byol": _byol,
    "vicreg": _vicreg,
    "barlow_twins": _barlow,
    "clip": _clip,
    "slap": _slap,
}


@pytest.mark.parametrize("name", sorted(LOSSES))
def test_loss_falls_on_a_toy_problem(name):
    # Two noisy views of 16 random points through one trainable linear map.
    gen = torch.Generator().manual_seed(1)
    points = torch.randn(16, 8, generator=gen)
    x_a = points + 0.3 * torch.randn(16, 8, generator=gen)
    x_b = points + 0.3 * torch.randn(16, 8, generator=gen)
    torch.manual_seed(2)
    model = nn.Linear(8, 8)
    optimiser = torch.optim.Adam(model.parameters(), lr=0.05)
    losses = []
    for _ in range(15):
        loss = LOSSES[name](model(x_a), model(x_b))
        optimiser.zero_grad()
        loss.backward()
        assert all(torch.isfinite(p.grad).all() for p in model.parameters())
        optimiser.step()
        losses.append(loss.item())
    assert losses[-1] < 0.9 * losses[0], losses


@pytest.mark.parametrize("name", sorted(LOSSES))
def test_loss_runs_under_bf16_autocast_in_float32(name):
    z_a = torch.randn(8, 4).requires_grad_()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        bf16 = LOSSES[name](z_a, z_a.detach() + 0.1)
    assert bf16.dtype == torch.float32
    assert bf16.item() == pytest.approx(LOSSES[name](z_a, z_a.detach() + 0.1).item(), rel=1e-6)


def test_half_precision_inputs_and_keywords():
    z_a, z_b = torch.randn(8, 4), torch.randn(8, 4)
    full = nt_xent(z_a, z_b, temperature=0.1)
    half = nt_xent(z_a=z_a.bfloat16(), z_b=z_b.bfloat16(), temperature=0.1)
    assert half.dtype == torch.float32
    # Only the rounding of the inputs to bf16 (8 bits of mantissa) remains.
    assert half.item() == pytest.approx(full.item(), rel=2e-2)
    assert nt_xent(z_a.double(), z_b.double(), temperature=0.1).dtype == torch.float64


# ------------------------------------------------------------------------ CLAP and SLAP


def test_clip_loss_by_hand():
    # Matching one-hot pairs at temperature 1: every row is log(1 + e^-1).
    eye = _t([[1, 0], [0, 1]])
    assert clip_loss(eye, eye, temperature=1.0).item() == pytest.approx(math.log(1 + math.exp(-1)))
    # Audio (1, 0), (0, 1); text (1, 0), (1, 1) (unnormalised), temperature 0.5.
    audio, text = _t([[1, 0], [0, 1]]), _t([[1, 0], [3, 3]])
    audio_to_text = [
        -2 + math.log(math.exp(2) + math.exp(R2)),  # row (2, sqrt 2), positive 0
        -R2 + math.log(1 + math.exp(R2)),  # row (0, sqrt 2), positive 1
    ]
    text_to_audio = [
        -2 + math.log(math.exp(2) + 1),  # row (2, 0), positive 0
        math.log(2.0),  # row (sqrt 2, sqrt 2), positive 1
    ]
    expected = (sum(audio_to_text) / 2 + sum(text_to_audio) / 2) / 2
    assert clip_loss(audio, text, temperature=0.5).item() == pytest.approx(expected, rel=1e-6)
    # Symmetric in its two sides.
    assert clip_loss(text, audio, temperature=0.5).item() == pytest.approx(expected, rel=1e-6)


def test_clip_loss_learns_its_temperature():
    log_scale = torch.tensor(math.log(1 / 0.07), requires_grad=True)
    z = torch.randn(6, 4)
    loss = clip_loss(z, z + 0.01, temperature=torch.exp(-log_scale))
    loss.backward()
    # Matching pairs: a sharper softmax (a larger scale) lowers the loss.
    assert log_scale.grad is not None and log_scale.grad.item() < 0
    with pytest.raises(MusicSSLError, match="temperature"):
        clip_loss(z, z, temperature=0.0)


def test_slap_loss_by_hand_and_stop_gradient():
    q_audio = _t([[1, 0]]).requires_grad_()
    q_text = _t([[0, 1]]).requires_grad_()
    target_audio = _t([[2, 0]]).requires_grad_()
    target_text = _t([[1, 1]]).requires_grad_()
    loss, terms = slap_loss(q_audio, q_text, target_audio, target_text)
    assert terms["audio_to_text"].item() == pytest.approx(1 - 1 / R2)
    assert terms["text_to_audio"].item() == pytest.approx(1.0)
    assert terms["audio"].item() == pytest.approx(0.0, abs=1e-7)
    assert terms["text"].item() == pytest.approx(1 - 1 / R2)
    # lambda (L_AT + L_TA) + (1 - lambda) (L_A + L_T) at lambda 0.5.
    assert loss.item() == pytest.approx(1.5 - 1 / R2)
    only_inter, _ = slap_loss(q_audio, q_text, target_audio, target_text, intermodal_weight=1.0)
    assert only_inter.item() == pytest.approx(2 - 1 / R2)
    loss.backward()
    assert q_audio.grad is not None and q_text.grad is not None
    assert target_audio.grad is None and target_text.grad is None
    with pytest.raises(MusicSSLError, match="intermodal_weight"):
        slap_loss(q_audio, q_text, target_audio, target_text, intermodal_weight=1.5)


# ------------------------------------------------------------------------------ distributed

WORLD_SIZE = 2
LOCAL_BATCH = 4


def _data() -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(3)
    x_a = torch.randn(WORLD_SIZE * LOCAL_BATCH, 5, generator=gen)
    return x_a, x_a + 0.2 * torch.randn(x_a.shape, generator=gen)


def _model() -> nn.Linear:
    torch.manual_seed(4)
    return nn.Linear(5, 3)


def _worker(rank: int, port: int, out_dir: str) -> None:
    torch.set_num_threads(1)
    dist.init_process_group(
        "gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=WORLD_SIZE
    )
    try:
        rows = slice(rank * LOCAL_BATCH, (rank + 1) * LOCAL_BATCH)
        x_a, x_b = _data()
        x_a, x_b = x_a[rows], x_b[rows]
        results: dict[str, torch.Tensor] = {}
        gathered = gather_with_grad(torch.full((2, 1), float(rank)))
        results["gathered"] = gathered
        ddp = nn.parallel.DistributedDataParallel(_model())
        for name, loss_fn in LOSSES.items():
            # Loss and gradient with respect to this process's embeddings.
            model = _model()
            z_a, z_b = model(x_a).detach(), model(x_b).detach()
            z_a.requires_grad_()
            z_b.requires_grad_()
            loss = loss_fn(z_a, z_b)
            loss.backward()
            results[f"{name}/loss"] = loss.detach()
            results[f"{name}/grad_a"] = z_a.grad
            results[f"{name}/grad_b"] = z_b.grad
            # The gradient that data-parallel training actually applies.
            ddp.zero_grad()
            loss_fn(ddp(x_a), ddp(x_b)).backward()
            results[f"{name}/ddp_weight_grad"] = ddp.module.weight.grad.clone()
        results["nt_xent_local/loss"] = nt_xent(
            _model()(x_a), _model()(x_b), temperature=0.5, gather=False
        ).detach()
        torch.save(results, Path(out_dir) / f"rank{rank}.pt")
    finally:
        dist.destroy_process_group()


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def distributed_results(tmp_path_factory) -> list[dict[str, torch.Tensor]]:
    out_dir = tmp_path_factory.mktemp("dist")
    os.environ.setdefault("GLOO_SOCKET_IFNAME", "lo")
    mp.spawn(_worker, args=(_free_port(), str(out_dir)), nprocs=WORLD_SIZE, join=True)
    return [torch.load(out_dir / f"rank{rank}.pt") for rank in range(WORLD_SIZE)]


def test_gather_with_grad_orders_ranks(distributed_results):
    expected = _t([[0], [0], [1], [1]])
    for results in distributed_results:
        torch.testing.assert_close(results["gathered"], expected)


@pytest.mark.parametrize("name", sorted(LOSSES))
def test_distributed_matches_single_process_over_the_whole_batch(name, distributed_results):
    x_a, x_b = _data()
    model = _model()
    z_a, z_b = model(x_a).detach(), model(x_b).detach()
    z_a.requires_grad_()
    z_b.requires_grad_()
    loss = LOSSES[name](z_a, z_b)
    loss.backward()
    model = _model()
    LOSSES[name](model(x_a), model(x_b)).backward()

    # Data-parallel training averages the processes' losses and gradients.
    mean_loss = sum(r[f"{name}/loss"] for r in distributed_results) / WORLD_SIZE
    torch.testing.assert_close(mean_loss, loss.detach())
    for rank, results in enumerate(distributed_results):
        rows = slice(rank * LOCAL_BATCH, (rank + 1) * LOCAL_BATCH)
        # Each process's gradient is WORLD_SIZE times its slice, so that the average over
        # processes is the whole-batch gradient.
        torch.testing.assert_close(results[f"{name}/grad_a"], WORLD_SIZE * z_a.grad[rows])
        torch.testing.assert_close(results[f"{name}/grad_b"], WORLD_SIZE * z_b.grad[rows])
        torch.testing.assert_close(results[f"{name}/ddp_weight_grad"], model.weight.grad)


def test_nt_xent_without_gather_uses_local_negatives(distributed_results):
    x_a, x_b = _data()
    model = _model()
    for rank, results in enumerate(distributed_results):
        rows = slice(rank * LOCAL_BATCH, (rank + 1) * LOCAL_BATCH)
        local = nt_xent(model(x_a[rows]), model(x_b[rows]), temperature=0.5)
        torch.testing.assert_close(results["nt_xent_local/loss"], local.detach())


# ----------------------------------------------------------------------------- masked modelling


def test_random_patch_mask_hides_the_stated_fraction_of_each_example():
    generator = torch.Generator().manual_seed(0)
    keep_index, mask = random_patch_mask(64, 20, mask_ratio=0.75, generator=generator)
    assert keep_index.shape == (64, 5) and mask.shape == (64, 20)
    assert (mask.sum(dim=1) == 15).all()
    assert (keep_index.diff(dim=1) > 0).all()  # sorted, no repeats
    assert not mask.gather(1, keep_index).any()  # the kept patches are the visible ones
    # Each example draws its own mask, and every patch gets hidden in some example.
    assert len({tuple(row) for row in keep_index.tolist()}) > 60 and mask.any(dim=0).all()
    same = random_patch_mask(64, 20, mask_ratio=0.75, generator=torch.Generator().manual_seed(0))
    assert torch.equal(same[0], keep_index)
    assert random_patch_mask(2, 3, mask_ratio=0.9)[0].shape == (2, 1)  # one patch stays
    with pytest.raises(MusicSSLError, match="mask_ratio"):
        random_patch_mask(2, 8, mask_ratio=1.0)


def test_masked_patch_mse_by_hand_ignores_visible_patches():
    prediction = torch.tensor([[[1.0, 1.0], [0.0, 0.0], [2.0, 0.0]]], requires_grad=True)
    target = torch.zeros(1, 3, 2)
    mask = torch.tensor([[True, False, True]])
    # Per-patch MSE 1, 0, 2; the hidden patches' mean is 1.5.
    loss = masked_patch_mse(prediction, target, mask)
    assert loss.item() == pytest.approx(1.5)
    changed = target.clone()
    changed[0, 1] = torch.tensor([5.0, -7.0])  # a visible patch's target
    assert masked_patch_mse(prediction, changed, mask).item() == pytest.approx(1.5)
    loss.backward()
    assert torch.equal(prediction.grad[0, 1], torch.zeros(2))
    # d/dp of ((p1^2 + p2^2) / 2) / 2 hidden patches = p / 2.
    torch.testing.assert_close(prediction.grad[0, 0], torch.tensor([0.5, 0.5]))
    with pytest.raises(MusicSSLError, match="do not match"):
        masked_patch_mse(prediction, target, mask[:, :2])


def test_normalise_patches_by_hand():
    patches = torch.tensor([[1.0, 3.0], [2.0, 2.0]])
    out = normalise_patches(patches, eps=0.0 + 1e-12)
    torch.testing.assert_close(out[0], torch.tensor([-1.0, 1.0]))
    torch.testing.assert_close(out[1], torch.zeros(2))  # a flat patch stays finite


def test_span_mask_hides_whole_spans_at_the_expected_rate():
    generator = torch.Generator().manual_seed(0)
    mask = span_mask(400, 100, start_probability=0.05, span=10, generator=generator)
    assert mask.shape == (400, 100) and mask.any(dim=1).all()
    expected = 1 - 0.95**10  # 0.401, spans overlapping
    assert mask.float().mean().item() == pytest.approx(expected, abs=0.03)
    # Every run of hidden frames that ends before the last frame is at least one span long.
    padded = torch.nn.functional.pad(mask.int(), (1, 1))
    changes = padded.diff(dim=1)
    for row_starts, row_ends in zip(changes == 1, changes == -1):
        starts, ends = row_starts.nonzero()[:, 0], row_ends.nonzero()[:, 0]
        lengths = (ends - starts)[ends < 100]
        assert (lengths >= 10).all()
    assert span_mask(3, 5, start_probability=1.0, span=2).all()
    # Too rare to start anywhere: one span is still drawn per example.
    rare = span_mask(8, 50, start_probability=1e-9, span=3)
    assert (rare.sum(dim=1) >= 1).all() and (rare.sum(dim=1) <= 3).all()


def test_random_projection_codes_by_hand():
    projection = torch.eye(2)[None]  # (1, 2, 2): the frames themselves
    codebooks = torch.tensor([[[0.0, 1.0], [1.0, 0.0], [-1.0, 0.0]]])  # (1, 3, 2)
    frames = torch.tensor([[[2.0, 0.1], [-3.0, 0.2], [0.1, 5.0]]])  # (1, 3, 2)
    codes = random_projection_codes(frames, projection, codebooks)
    assert codes.tolist() == [[[1], [2], [0]]]
    # Only the direction counts: a frame scaled by 10 keeps its code.
    assert torch.equal(random_projection_codes(10 * frames, projection, codebooks), codes)


def test_masked_code_cross_entropy_by_hand_ignores_visible_frames():
    # Frame 0: uniform over 2 codes (CE log 2); frame 1: p(code 0) = 3/4 (CE log 4/3).
    logits = torch.tensor([[[[0.0, 0.0]], [[math.log(3.0), 0.0]]]])  # (1, 2, 1, 2)
    codes = torch.tensor([[[1], [0]]])
    both = masked_code_cross_entropy(logits, codes, torch.tensor([[True, True]]))
    assert both.item() == pytest.approx((math.log(2) + math.log(4 / 3)) / 2)
    second = masked_code_cross_entropy(logits, codes, torch.tensor([[False, True]]))
    assert second.item() == pytest.approx(math.log(4 / 3))
    other = codes.clone()
    other[0, 0, 0] = 0  # the visible frame's target
    assert masked_code_cross_entropy(logits, other, torch.tensor([[False, True]])) == second


def test_codebook_usage_by_hand():
    # Histogram 1/2, 1/4, 1/4, 0: entropy 1.5 ln 2, perplexity 2^1.5; 3 of 4 codes used.
    perplexity, used = codebook_usage(torch.tensor([[0], [0], [1], [2]]), 4)
    assert perplexity.item() == pytest.approx(2**1.5) and used.item() == pytest.approx(0.75)
    # Two codebooks average: one collapsed (perplexity 1, 1/4 used), one uniform (4, all).
    perplexity, used = codebook_usage(torch.tensor([[3, 0], [3, 1], [3, 2], [3, 3]]), 4)
    assert perplexity.item() == pytest.approx(2.5) and used.item() == pytest.approx(0.625)
    # Only the counted targets: two of code 0 and one of code 1 (histogram 2/3, 1/3).
    counted = torch.tensor([True, True, True, False])
    perplexity, used = codebook_usage(torch.tensor([[0], [0], [1], [2]]), 4, counted)
    entropy = -(2 / 3) * math.log(2 / 3) - (1 / 3) * math.log(1 / 3)
    assert perplexity.item() == pytest.approx(math.exp(entropy))
    assert used.item() == pytest.approx(0.5)
