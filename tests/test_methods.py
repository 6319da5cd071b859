import csv
import math
from pathlib import Path

import numpy as np
import pytest
import torch

from musicssl.encoders import (
    Branches,
    FrameTransformer,
    KeyCNN,
    PestoCNN,
    SampleCNN,
    SpectrogramViT,
    TempoCNN,
    build_encoder,
)
from musicssl.encoders._transformer import Block
from musicssl.errors import MusicSSLError
from musicssl.losses import codebook_usage
from musicssl.methods import METHODS, build_method
from musicssl.methods._draws import Draws
from musicssl.methods.bestrq import BestRQ
from musicssl.pack import pack
from musicssl.recipe import Recipe, recipe_path
from musicssl.store import SampleStore
from musicssl.train import pretrain

SMALL_HEADS = {"hidden_dim": 32, "projection_dim": 16}


def _encoder() -> SampleCNN:
    return SampleCNN(num_blocks=4, channels=[8, 8, 16, 16, 16, 32], sample_rate=8000)


def _tiny_vit() -> SpectrogramViT:
    """16 mel bands x 16 frames of a 243-sample input: a 4 x 4 grid of 4 x 4 patches."""
    return SpectrogramViT(width=16, depth=1, num_heads=2, patch=(4, 4), sample_rate=8000,
                          n_fft=64, hop_length=16, n_bins=16, input_samples=243)  # fmt: skip


def _tiny_frames() -> FrameTransformer:
    """8 tokens of 2 stacked 16-band frames from a 243-sample input."""
    return FrameTransformer(width=16, depth=1, num_heads=2, stack=2, sample_rate=8000,
                            n_fft=64, hop_length=16, n_bins=16, input_samples=243)  # fmt: skip


# Methods that hide part of their input need the encoder whose tokens they hide.
MASKED_SETUPS = {
    "mae": (_tiny_vit, {"decoder_width": 16, "decoder_depth": 1, "decoder_heads": 2}),
    "bestrq": (_tiny_frames, {"codebook_size": 32, "start_probability": 0.3, "span": 2}),
}


# Methods that read bins of their own encoder (CQT, log-tempo), sized for 243 samples at
# 8 kHz; views that change little (no timbre change, small stretches, many frames per clip),
# so that their random shifts do not hide a falling loss in a few steps.
BINNED_SETUPS = {
    "pesto": (lambda: PestoCNN(sample_rate=8000, hop_length=64, num_octaves=4, max_shift=6,
                               channels=4, depth=2, output_kernel=15, input_samples=243),
              {"frames_per_clip": 64, "eq_db": 0.0, "noise_db": (-120.0, -100.0)}),
    "stone": (lambda: KeyCNN(sample_rate=8000, hop_length=32, num_octaves=4, channels=4,
                             depth=2, output_kernel=9, input_samples=243),
              {"temperature": 0.02}),
    "tempo": (lambda: TempoCNN(sample_rate=8000, hop_length=8, n_mels=8, min_bpm=4000.0,
                               tempo_bins=32, bins_per_octave=12, channels=4, depth=2,
                               output_kernel=9, input_samples=243),
              {"max_shift": 1}),
}  # fmt: skip


def _branches() -> Branches:
    """A SampleCNN branch beside the key CNN of ``BINNED_SETUPS``, both on 243 samples."""
    sample_cnn = {"num_blocks": 4, "channels": [8, 8, 16, 16, 16, 32], "sample_rate": 8000}
    key_cnn = {
        "sample_rate": 8000,
        "hop_length": 32,
        "num_octaves": 4,
        "channels": 4,
        "depth": 2,
        "output_kernel": 9,
        "input_samples": 243,
    }
    return Branches(branches={"timbre": {"name": "sample_cnn", "options": sample_cnn},
                              "key": {"name": "key_cnn", "options": key_cnn}})  # fmt: skip


COMBINED_TERMS = {
    "timbre": {"method": "simclr", "options": SMALL_HEADS},
    "key": {"method": "stone", "weight": 0.5, "lr_scale": 3.0, "options": {"temperature": 0.02}},
}
BINNED_SETUPS["combined"] = (_branches, {"terms": COMBINED_TERMS})


def _method(name: str):
    """The registry entry ``name`` on a tiny encoder it accepts, with small heads."""
    setups = {**MASKED_SETUPS, **BINNED_SETUPS}
    if name in setups:
        build, options = setups[name]
        return build_method(name, build(), **options)
    return build_method(name, _encoder(), **SMALL_HEADS)


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
    method = _method(name)
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
    method = _method(name)
    x = torch.randn(8, 243)
    x_a, x_b = x + 0.05 * torch.randn_like(x), x + 0.05 * torch.randn_like(x)
    optimizer = torch.optim.Adam([p for p in method.parameters() if p.requires_grad], lr=1e-3)
    losses = []
    for step in range(15):
        torch.manual_seed(step)
        loss = _step(method, x_a, x_b)["loss"]
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        if hasattr(method, "after_optimizer_step"):
            method.after_optimizer_step(step + 1, 15)
        losses.append(loss.item())
    _restart_draws(method)  # measured again on the first step's draws, its own and torch's
    torch.manual_seed(0)
    assert _step(method, x_a, x_b)["loss"].item() < losses[0]


def test_combined_is_the_weighted_sum_of_its_terms_on_their_branches():
    torch.manual_seed(0)
    method = build_method("combined", _branches(), terms=COMBINED_TERMS)
    x_a, x_b = torch.randn(2, 6, 243).unbind(0)
    outputs = method(x_a, x_b)
    # The terms alone, on the same draws (STONE's counter restarted):
    _restart_draws(method)
    simclr = method.terms["timbre"](x_a, x_b)["loss"]
    stone = method.terms["key"](x_a, x_b)
    torch.testing.assert_close(outputs["loss"], simclr + 0.5 * stone["loss"])
    torch.testing.assert_close(outputs["key.cpsd"], stone["cpsd"])
    scales = [group["lr_scale"] for group in method.parameter_groups()]
    assert scales == [1.0, 3.0]
    assert method.terms["key"].encoder is method.encoder.branches["key"]


def test_combined_refuses_terms_that_do_not_match_the_branches():
    with pytest.raises(MusicSSLError, match="must name the encoder's branches"):
        build_method("combined", _branches(), terms={"timbre": COMBINED_TERMS["timbre"]})
    with pytest.raises(MusicSSLError, match="needs encoder branches"):
        build_method("combined", _encoder(), terms=COMBINED_TERMS)
    bad = {**COMBINED_TERMS, "key": {"method": "stone", "weight": -1.0}}
    with pytest.raises(MusicSSLError, match="weight >= 0"):
        build_method("combined", _branches(), terms=bad)
    vit = _tiny_vit()
    two_families = Branches(branches={
        "timbre": _branches().config()["branches"]["timbre"],
        "masked": {"name": "spectrogram_vit", "options": vit.config()}})  # fmt: skip
    mixed = {"timbre": COMBINED_TERMS["timbre"], "masked": {"method": "mae", "options": {
        "decoder_width": 16, "decoder_depth": 1, "decoder_heads": 2}}}  # fmt: skip
    with pytest.raises(MusicSSLError, match="same number of views"):
        build_method("combined", two_families, terms=mixed)


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


def test_mae_encoder_sees_only_the_visible_patches_and_masks_follow_the_seed():
    torch.manual_seed(0)
    method = build_method("mae", _tiny_vit(), mask_ratio=0.75, decoder_width=16,
                          decoder_depth=1, decoder_heads=2)  # fmt: skip
    seen = []
    original = method.encoder.forward_tokens

    def spy(tokens, keep_index=None):
        seen.append(keep_index.clone())
        return original(tokens, keep_index)

    method.encoder.forward_tokens = spy
    x = torch.randn(5, 243)
    first = method(x)["loss"]
    method(x)
    # 16 patches, 75% hidden: 4 visible per example, each example its own draw.
    assert seen[0].shape == (5, 4) and len({tuple(row) for row in seen[0].tolist()}) > 1
    assert not torch.equal(seen[0], seen[1])  # a new mask every step
    assert int(method.state_dict()["draws.count"]) == 2
    again = build_method("mae", _tiny_vit(), mask_ratio=0.75, decoder_width=16,
                         decoder_depth=1, decoder_heads=2)  # fmt: skip
    # A checkpoint from when the count was the method's own buffer ("draws") loads too.
    older = {k: v for k, v in method.state_dict().items() if k != "draws.count"}
    again.load_state_dict({**older, "draws": torch.tensor(0)})
    method.encoder.forward_tokens = original
    # Loading forgets the count the method kept on the host: it draws from 0 again.
    method.load_state_dict({**method.state_dict(), "draws.count": torch.tensor(0)})
    torch.testing.assert_close(again(x)["loss"], method(x)["loss"])
    assert torch.isfinite(first)


def test_mae_noise_is_at_the_drawn_snr():
    from musicssl.methods._draws import add_noise

    x = torch.sin(torch.arange(16000.0) * 0.05)[None].repeat(4, 1)
    noisy = add_noise(x, (20.0, 20.0), torch.Generator().manual_seed(0))
    snr = 10 * torch.log10(x.pow(2).mean(-1) / (noisy - x).pow(2).mean(-1))
    torch.testing.assert_close(snr, torch.full((4,), 20.0), atol=0.1, rtol=0)
    spread = add_noise(x, (0.0, 40.0), torch.Generator().manual_seed(0)) - x
    powers = spread.pow(2).mean(-1)
    assert powers.max() / powers.min() > 10  # a ratio drawn per example


def test_noise_share_leaves_the_other_examples_clean():
    from musicssl.methods._draws import add_noise

    x = torch.sin(torch.arange(4000.0) * 0.05)[None].repeat(64, 1)
    noisy = add_noise(x, (20.0, 20.0), torch.Generator().manual_seed(0), share=0.25)
    touched = (noisy != x).any(dim=-1)
    assert 4 <= int(touched.sum()) <= 32  # about a quarter of 64, drawn
    snr = 10 * torch.log10(x[touched].pow(2).mean(-1) / (noisy - x)[touched].pow(2).mean(-1))
    torch.testing.assert_close(snr, torch.full_like(snr, 20.0), atol=0.3, rtol=0)
    everyone = add_noise(x, (20.0, 20.0), torch.Generator().manual_seed(0))
    assert (everyone != x).any(dim=-1).all()
    for name in ("mae", "bestrq"):
        for share in (0.0, 1.5):
            with pytest.raises(MusicSSLError, match=f"{name}: noise_share must be in"):
                build_method(name, _tiny_vit(), noise_snr_db=[20, 40], noise_share=share)


def test_mae_with_noise_encodes_the_noisy_crop_and_reconstructs_the_clean_one():
    from musicssl.losses import masked_patch_mse, normalise_patches
    from musicssl.methods._draws import add_noise

    torch.manual_seed(0)
    method = build_method("mae", _tiny_vit(), mask_ratio=0.75, decoder_width=16,
                          decoder_depth=1, decoder_heads=2, noise_snr_db=[10, 30])  # fmt: skip
    x = torch.randn(3, 243)
    loss = method(x)["loss"]
    # By hand, from the same draws: the mask, then the noise.
    encoder = method.encoder
    generator, clean, grid, keep, mask = _mae_draws(method, x)
    noisy = encoder.spectrogram(add_noise(x, (10.0, 30.0), generator))
    latent = encoder.forward_tokens(encoder.embed_patches(noisy), keep)
    target = normalise_patches(encoder.patchify(clean))
    expected = masked_patch_mse(method.decoder(latent, keep, grid), target, mask)
    torch.testing.assert_close(loss, expected)
    with pytest.raises(MusicSSLError, match="noise_snr_db"):
        build_method("mae", _tiny_vit(), noise_snr_db=[30, 10])


def test_mae_seen_visible_target_reconstructs_the_visible_patches_as_the_encoder_read_them():
    from musicssl.methods._draws import add_noise

    torch.manual_seed(0)
    method = build_method("mae", _tiny_vit(), mask_ratio=0.75, decoder_width=16,
                          decoder_depth=1, decoder_heads=2, noise_snr_db=[10, 30],
                          visible_weight=0.5, visible_target="seen")  # fmt: skip
    x = torch.randn(3, 243)
    loss = method(x)["loss"]
    generator, clean, grid, keep, mask = _mae_draws(method, x)
    noisy = method.encoder.spectrogram(add_noise(x, (10.0, 30.0), generator))
    error = _mae_error(method, noisy, keep, grid)
    seen = error(noisy, ~mask)
    torch.testing.assert_close(loss, error(clean, mask) + 0.5 * seen)
    # not the clean patches: the noise changed what the visible ones are asked to be
    assert not torch.isclose(seen, error(clean, ~mask))
    with pytest.raises(MusicSSLError, match="visible_target must be clean, noisy or seen"):
        build_method("mae", _tiny_vit(), visible_target="loud")


def test_mae_noisy_visible_target_keeps_the_noise_but_not_the_tuning_offset():
    from musicssl.methods._draws import add_noise, detune, tuning_offsets

    torch.manual_seed(0)
    method = build_method("mae", _tiny_cqt_vit(), mask_ratio=0.75, decoder_width=16,
                          decoder_depth=1, decoder_heads=2, noise_snr_db=[10, 30],
                          detune_cents=50, visible_weight=0.5,
                          visible_target="noisy")  # fmt: skip
    x = torch.randn(3, 1024)
    loss = method(x)["loss"]
    generator, clean, grid, keep, mask = _mae_draws(method, x)
    noisy = method.encoder.spectrogram(add_noise(x, (10.0, 30.0), generator))
    seen = detune(noisy, tuning_offsets(3, 50.0, generator, x.device), 12)
    error = _mae_error(method, seen, keep, grid)
    visible = error(noisy, ~mask)
    torch.testing.assert_close(loss, error(clean, mask) + 0.5 * visible)
    assert not torch.isclose(visible, error(seen, ~mask))  # in tune, not as the encoder read it


def test_mae_visible_weight_adds_the_loss_on_the_visible_patches():
    from musicssl.losses import masked_patch_mse, normalise_patches, random_patch_mask

    torch.manual_seed(0)
    x = torch.randn(6, 243)
    generator = Draws(seed=0).next(x.device)
    outputs: list[torch.Tensor] = []
    options = {"mask_ratio": 0.75, "decoder_width": 16, "decoder_depth": 1, "decoder_heads": 2}
    plain = build_method("mae", _tiny_vit(), **options)
    original = plain.decoder.forward
    plain.decoder.forward = lambda *a: outputs.append(original(*a)) or outputs[-1]
    _, mask = random_patch_mask(6, 16, mask_ratio=0.75, generator=generator, device=x.device)
    target = normalise_patches(plain.encoder.patchify(plain.encoder.spectrogram(x)))
    weighted = build_method("mae", _tiny_vit(), visible_weight=0.5, **options)
    weighted.load_state_dict(plain.state_dict())
    hidden_only = plain(x)["loss"]
    assert 0 < mask.float().mean() < 1
    torch.testing.assert_close(hidden_only, masked_patch_mse(outputs[0], target, mask))
    visible = masked_patch_mse(outputs[0], target, ~mask)
    assert visible > 0
    logged = weighted(x)
    torch.testing.assert_close(logged["loss"], hidden_only + 0.5 * visible)
    # The two terms are logged apart, so a curve can be read against each one's own scale.
    torch.testing.assert_close(logged["hidden"], hidden_only.detach())
    torch.testing.assert_close(logged["visible"], visible.detach())
    assert "hidden" not in plain(x)  # the loss is the hidden patches' error alone
    with pytest.raises(MusicSSLError, match="visible_weight"):
        build_method("mae", _tiny_vit(), visible_weight=-1.0, **options)


def test_mae_consistency_pulls_the_noisy_latents_to_the_clean_ones():
    options = {"mask_ratio": 0.75, "decoder_width": 16, "decoder_depth": 1,
               "decoder_heads": 2, "noise_snr_db": [10, 20]}  # fmt: skip
    torch.manual_seed(0)
    plain = build_method("mae", _tiny_vit(), **options)
    pulled = build_method("mae", _tiny_vit(), consistency_weight=0.5, **options)
    pulled.load_state_dict(plain.state_dict())
    latents: list[torch.Tensor] = []
    original = pulled.encoder.forward_tokens
    pulled.encoder.forward_tokens = lambda *a: latents.append(original(*a)) or latents[-1]
    x = torch.randn(3, 243)
    out = pulled(x)
    noisy, clean = latents  # the encoder read the noisy crop, then the clean one
    assert noisy.shape == clean.shape and not clean.requires_grad
    gap = (noisy - clean).pow(2).mean()
    assert gap > 0
    torch.testing.assert_close(out["loss"], plain(x)["loss"] + 0.5 * gap)
    torch.testing.assert_close(out["consistency"], gap.detach())  # logged beside the loss
    with pytest.raises(MusicSSLError, match="consistency_weight: a loss weight must be >= 0"):
        build_method("mae", _tiny_vit(), consistency_weight=-1.0)


BESTRQ_TINY = {"codebook_size": 32, "start_probability": 0.3, "span": 1}


@pytest.mark.parametrize(
    ("name", "encoder", "options", "norm"),
    [
        (
            "mae",
            _tiny_vit,
            {"decoder_width": 16, "decoder_depth": 1, "decoder_heads": 2},
            "decoder.input_norm",
        ),
        ("bestrq", _tiny_vit, BESTRQ_TINY, "norm"),
        ("bestrq", _tiny_frames, BESTRQ_TINY, "norm"),
    ],
)
def test_masked_methods_normalise_the_tokens_and_resume_runs_whose_encoder_held_the_norm(
    name, encoder, options, norm
):
    torch.manual_seed(0)
    method = build_method(name, encoder(), **options)
    # The head reads the tokens through its own norm: scaling them changes nothing.
    tokens = torch.randn(2, 16, 16)
    layer = method.get_submodule(norm)
    torch.testing.assert_close(layer(tokens * 5.0), layer(tokens), atol=1e-4, rtol=1e-4)
    # An older run held that norm as the encoder's final one: it lands in the head's.
    older = {
        (
            "encoder.norm." + key.removeprefix(f"{norm}.") if key.startswith(f"{norm}.") else key
        ): value
        for key, value in method.state_dict().items()
    }
    older["encoder.norm.weight"] = torch.full((16,), 2.0)
    fresh = build_method(name, encoder(), **options)
    fresh.load_state_dict(older)  # strict
    assert torch.equal(fresh.get_parameter(f"{norm}.weight"), torch.full((16,), 2.0))


def test_bestrq_reconstruction_regresses_every_tokens_clean_input():
    from musicssl.losses import normalise_patches

    options = {"codebook_size": 32, "start_probability": 0.3, "span": 1, "head_depth": 1}
    torch.manual_seed(0)
    plain = build_method("bestrq", _tiny_vit(), **options).eval()
    both = build_method("bestrq", _tiny_vit(), reconstruct_weight=0.5, **options).eval()
    missing = both.load_state_dict(plain.state_dict(), strict=False).missing_keys
    assert sorted(missing) == ["reconstruct.bias", "reconstruct.weight"]
    guesses: list[torch.Tensor] = []
    original = both.reconstruct.forward
    both.reconstruct.forward = lambda h: guesses.append(original(h)) or guesses[-1]
    x = torch.randn(6, 243)
    out = both(x)
    target = normalise_patches(plain.tokens(x)[0])  # (6, 16, 16): the clean patches
    assert guesses[0].shape == target.shape
    error = (guesses[0] - target).pow(2).mean()  # hidden and seen tokens alike
    torch.testing.assert_close(out["reconstruction"], error.detach())
    torch.testing.assert_close(out["loss"], plain(x)["loss"] + 0.5 * error)
    torch.testing.assert_close(out["codes"], plain(x)["loss"].detach())  # logged apart
    out["loss"].backward()
    assert both.encoder.patch_embed.weight.grad.abs().sum() > 0
    with pytest.raises(MusicSSLError, match="reconstruct_weight: a loss weight must be >= 0"):
        build_method("bestrq", _tiny_vit(), reconstruct_weight=-1.0)
    for key, value, rule in (
        ("head_depth", -1, ">= 0"),
        ("span", 0, ">= 1"),
        ("start_probability", 1.5, r"in \(0, 1\]"),
        ("noise_std", -0.1, ">= 0"),
        ("codebook_size", 1, ">= 2"),
        ("code_dim", 0, ">= 1"),
    ):
        with pytest.raises(MusicSSLError, match=f"bestrq: {key} must be {rule}.*, got {value}"):
            build_method("bestrq", _tiny_vit(), **{key: value})
    # 1 - (1 - p) ** span of the frames hidden: refused above 90%
    for p, span, said in ((1.0, 1, "100%"), (0.08, 1000, "100%"), (0.5, 4, "94%")):
        with pytest.raises(MusicSSLError, match=f"span={span} hides about {said} of the frames"):
            build_method("bestrq", _tiny_vit(), start_probability=p, span=span)
    build_method("bestrq", _tiny_vit(), start_probability=0.5, span=3)  # 88%: taken


@pytest.mark.parametrize("name", ["mae", "bestrq"])
@pytest.mark.parametrize("seed", [-1, 2**64])
def test_masked_methods_refuse_a_seed_no_generator_takes(name, seed):
    with pytest.raises(MusicSSLError, match=f"{name}: seed must be a whole number"):
        build_method(name, _tiny_vit(), seed=seed)
    build_method(name, _tiny_vit(), seed=2**63 - 1)  # the largest is fine


def test_bestrq_seen_reconstruction_regresses_the_seen_tokens_as_the_encoder_read_them():
    from musicssl.losses import normalise_patches, span_mask
    from musicssl.methods._draws import add_noise

    torch.manual_seed(0)
    method = build_method("bestrq", _tiny_vit(), codebook_size=32, start_probability=0.3,
                          span=1, noise_snr_db=[10, 30], reconstruct_weight=0.5,
                          reconstruct_target="seen").eval()  # fmt: skip
    assert isinstance(method, BestRQ)
    guesses: list[torch.Tensor] = []
    original = method.reconstruct.forward
    method.reconstruct.forward = lambda h: guesses.append(original(h)) or guesses[-1]
    x = torch.randn(6, 243)
    out = method(x)
    # The same draws by hand: the hidden columns, then the noise.
    rows, columns = method.tokens(x)[1]
    generator = Draws(seed=0).next(x.device)
    hidden = span_mask(6, columns, start_probability=0.3, span=1, generator=generator,
                       device=x.device)  # fmt: skip
    mask = hidden[:, None, :].expand(-1, rows, -1).reshape(6, rows * columns)
    assert mask.shape == (6, 16) and 0 < mask.float().mean() < 1
    clean = method.tokens(x)[0]
    noisy = method.tokens(add_noise(x, (10.0, 30.0), generator))[0]
    target = normalise_patches(torch.where(mask[..., None], clean, noisy))
    error = (guesses[0] - target).pow(2).mean()
    torch.testing.assert_close(out["reconstruction"], error.detach())
    clean_error = (guesses[0] - normalise_patches(clean)).pow(2).mean()
    assert not torch.isclose(error, clean_error)  # the seen tokens' targets carry the noise
    with pytest.raises(MusicSSLError, match="reconstruct_target must be clean or seen"):
        build_method("bestrq", _tiny_vit(), reconstruct_target="noisy")


@pytest.mark.parametrize("mask_by", ["column", "row"])
def test_bestrq_hides_whole_columns_or_each_rows_own_spans(mask_by):
    from musicssl.losses import span_mask

    torch.manual_seed(0)
    method = build_method("bestrq", _tiny_vit(), codebook_size=32, start_probability=0.3,
                          span=2, mask_by=mask_by).eval()  # fmt: skip
    read: list[torch.Tensor] = []
    original = method._encode
    method._encode = lambda hidden, grid: read.append(hidden) or original(hidden, grid)
    x = torch.randn(8, 243)
    method(x)
    inputs, (rows, columns) = method.tokens(x)
    hidden = (read[0] != inputs).any(dim=-1).view(8, rows, columns)  # noise where hidden
    # The same draws by hand: a span mask per example (column) or per example and row.
    drawn = rows if mask_by == "row" else 1
    generator = Draws(seed=0).next(x.device)
    expected = span_mask(8 * drawn, columns, start_probability=0.3, span=2, generator=generator)
    expected = expected.view(8, drawn, columns)
    assert torch.equal(hidden, expected.expand(-1, rows, -1))
    rows_alike = bool((hidden == hidden[:, :1]).all())
    assert rows_alike is (mask_by == "column")  # rows apart: some column half hidden
    with pytest.raises(MusicSSLError, match="mask_by must be column or row, got 'patch'"):
        build_method("bestrq", _tiny_vit(), mask_by="patch")


def _tiny_cqt_vit() -> SpectrogramViT:
    """A 12-bin constant-Q ViT (one octave of semitones): 3 x 8 patches of 4 x 4."""
    return SpectrogramViT(frontend="cqt", n_bins=12, f_min=200.0, patch=(4, 4), width=16,
                          depth=1, num_heads=2, sample_rate=8000, hop_length=32,
                          input_samples=1024)  # fmt: skip


def test_mae_consistency_reference_is_the_clean_crop_in_tune():
    from musicssl.losses import random_patch_mask

    torch.manual_seed(0)
    method = build_method("mae", _tiny_cqt_vit(), mask_ratio=0.5, decoder_width=16,
                          decoder_depth=1, decoder_heads=2, detune_cents=50,
                          consistency_weight=1.0)  # fmt: skip
    latents: list[torch.Tensor] = []
    encoder = method.encoder
    original = encoder.forward_tokens
    encoder.forward_tokens = lambda *a: latents.append(original(*a)) or latents[-1]
    x = torch.randn(3, 1024)
    out = method(x)
    generator = Draws(seed=0).next(x.device)
    keep, _ = random_patch_mask(3, 24, mask_ratio=0.5, generator=generator, device=x.device)
    in_tune = original(encoder.embed_patches(encoder.spectrogram(x)), keep)
    torch.testing.assert_close(latents[1], in_tune)
    assert out["consistency"] > 0  # detuned alone, the reading differs from the reference
    with pytest.raises(MusicSSLError, match="consistency_weight needs noise_snr_db or detune"):
        build_method("mae", _tiny_vit(), consistency_weight=1.0)


def test_detune_moves_each_spectrum_by_its_drawn_fraction_of_a_bin():
    from musicssl.methods._draws import detune, tuning_offsets

    spec = torch.zeros(3, 8, 2)
    spec[:, 4] = 1.0  # one partial in bin 4
    spec[:, 0] = 0.5  # and something in the lowest bin, at the edge
    offsets = tuning_offsets(3, 50.0, torch.Generator().manual_seed(1), spec.device)
    out = detune(spec, offsets, 12)
    # By hand, the same draw: 50 cents either way is half a bin at 12 bins per octave.
    shift = (2 * torch.rand(3, generator=torch.Generator().manual_seed(1)) - 1) * 0.5
    for example, s in enumerate(shift.tolist()):
        up = 5 if s > 0 else 3  # the neighbour the partial moves towards
        assert out[example, 4, 0].item() == pytest.approx(1 - abs(s))
        assert out[example, up, 0].item() == pytest.approx(abs(s))
        # The lowest bin is repeated below the end: moving up, it is refilled from itself.
        assert out[example, 0, 0].item() == pytest.approx(0.5 if s > 0 else 0.5 * (1 + s))
    assert out.shape == spec.shape and torch.equal(out[..., 0], out[..., 1])


def test_mae_detuned_input_and_tuned_targets():
    from musicssl.losses import masked_patch_mse, normalise_patches
    from musicssl.methods._draws import detune, tuning_offsets

    cqt = {"frontend": "cqt", "n_bins": 12, "f_min": 200.0, "patch": [4, 4], "width": 16,
           "depth": 1, "num_heads": 2, "sample_rate": 8000, "hop_length": 32,
           "input_samples": 1024}  # fmt: skip
    torch.manual_seed(0)
    method = build_method("mae", build_encoder("spectrogram_vit", **cqt), mask_ratio=0.5,
                          decoder_width=16, decoder_depth=1, decoder_heads=2,
                          detune_cents=50)  # fmt: skip
    x = torch.randn(3, 1024)
    loss = method(x)["loss"]
    encoder = method.encoder
    generator, clean, grid, keep, mask = _mae_draws(method, x)
    seen = detune(clean, tuning_offsets(3, 50.0, generator, x.device), 12)
    assert not torch.allclose(seen, clean)
    latent = encoder.forward_tokens(encoder.embed_patches(seen), keep)
    target = normalise_patches(encoder.patchify(clean))
    torch.testing.assert_close(loss, masked_patch_mse(method.decoder(latent, keep, grid), target,
                                                      mask))  # fmt: skip
    with pytest.raises(MusicSSLError, match="detune_cents needs a constant-Q front end"):
        build_method("mae", _tiny_vit(), detune_cents=50)
    with pytest.raises(MusicSSLError, match=r"detune_cents must be in \[0, 100\]"):
        build_method("mae", build_encoder("spectrogram_vit", **cqt), detune_cents=150)


def test_mae_refuses_an_encoder_without_patches():
    with pytest.raises(MusicSSLError, match="spectrogram_vit"):
        build_method("mae", _encoder())
    with pytest.raises(MusicSSLError, match="frame_transformer or spectrogram_vit"):
        build_method("bestrq", _encoder())


def test_bestrq_quantiser_is_a_deterministic_function_of_its_seed():
    a = build_method("bestrq", _tiny_frames(), codebook_size=32, seed=3)
    b = build_method("bestrq", _tiny_frames(), codebook_size=32, seed=3)
    c = build_method("bestrq", _tiny_frames(), codebook_size=32, seed=4)
    assert torch.equal(a.projection, b.projection) and torch.equal(a.codebooks, b.codebooks)
    assert not torch.equal(a.codebooks, c.codebooks)
    torch.testing.assert_close(a.codebooks.norm(dim=-1), torch.ones(1, 32))
    # Frozen buffers, saved with the method; only the encoder and the head learn.
    state = a.state_dict()
    assert {"projection", "codebooks"} <= set(state)
    assert all(not name.startswith(("projection", "codebooks")) for name, _ in a.named_parameters())


def test_bestrq_token_codes_ignore_each_tokens_loudness_and_batch_codes_do_not():
    torch.manual_seed(0)
    frames = torch.randn(4, 10, 32)  # 2 stacked frames of 16 bands
    # Each frame moved and scaled on its own: a louder or quieter frame of the same shape.
    gain, offset = torch.rand(4, 10, 1) * 3 + 0.5, torch.randn(4, 10, 1) * 5
    token = build_method("bestrq", _tiny_frames(), codebook_size=32, code_input="token")
    batch = build_method("bestrq", _tiny_frames(), codebook_size=32, code_input="batch")
    assert torch.equal(token.targets(frames), token.targets(frames * gain + offset))
    assert (batch.targets(frames) != batch.targets(frames * gain + offset)).float().mean() > 0.5
    with pytest.raises(MusicSSLError, match="code_input must be batch or token"):
        build_method("bestrq", _tiny_frames(), code_input="clip")


def test_bestrq_hides_spans_with_noise_and_reports_code_usage():
    torch.manual_seed(0)
    method = build_method("bestrq", _tiny_frames(), codebook_size=32, start_probability=0.3,
                          span=2, noise_std=0.1)  # fmt: skip
    method.eval()  # the same input normalisation in both passes below
    x = torch.randn(64, 243)
    given = []
    original = method.encoder.forward_frames
    method.encoder.forward_frames = lambda frames: given.append(frames) or original(frames)
    outputs = method(x)
    frames = method.encoder.frame_inputs(x)
    changed = (given[0] != frames).any(dim=-1)  # (B, T): the hidden frames
    assert 0.2 < changed.float().mean() < 0.8 and changed.any(dim=1).all()
    assert given[0][changed].std().item() == pytest.approx(0.1, rel=0.1)
    assert set(outputs) == {"loss", "code_perplexity", "codes_used"}
    assert 1.0 <= outputs["code_perplexity"].item() <= 32.0
    assert 0.0 < outputs["codes_used"].item() <= 1.0


def test_bestrq_on_patches_hides_whole_time_columns():
    torch.manual_seed(0)
    method = build_method("bestrq", _tiny_vit(), codebook_size=32, start_probability=0.3,
                          span=1, noise_std=0.1)  # fmt: skip
    assert method.projection.shape == (1, 16, 16)  # the quantiser reads 4 x 4 patches
    method.eval()
    x = torch.randn(8, 243)
    given = []
    original = method.encoder.embed_patch_vectors
    method.encoder.embed_patch_vectors = lambda p, grid: given.append(p) or original(p, grid)
    outputs = method(x)
    patches = method.encoder.patchify(method.encoder.spectrogram(x))
    hidden = (given[0] != patches).any(dim=-1).reshape(8, 4, 4)  # (B, rows, cols)
    # A hidden column is hidden in every frequency row; some columns are, some are not.
    assert torch.equal(hidden, hidden[:, :1].expand(-1, 4, -1))
    assert 0.0 < hidden.float().mean() < 1.0
    assert given[0][hidden.reshape(8, 16)].std().item() == pytest.approx(0.1, rel=0.2)
    codes = method.targets(patches)
    assert codes.shape == (8, 16, 1) and outputs["loss"].item() > 0


def test_bestrq_with_noise_shows_the_noisy_crop_and_predicts_the_clean_codes():
    from musicssl.losses import masked_code_cross_entropy, span_mask
    from musicssl.methods._draws import add_noise

    torch.manual_seed(0)
    method = build_method("bestrq", _tiny_vit(), codebook_size=32, start_probability=0.3,
                          span=1, noise_snr_db=[10, 30])  # fmt: skip
    method.eval()
    x = torch.randn(8, 243)
    given = []
    original = method.encoder.embed_patch_vectors
    method.encoder.embed_patch_vectors = lambda p, grid: given.append(p) or original(p, grid)
    loss = method(x)["loss"]
    # By hand, from the same draws: the mask, then the noise on the crop.
    encoder = method.encoder
    generator = Draws(seed=0).next(x.device)
    hidden = span_mask(8, 4, start_probability=0.3, span=1, generator=generator, device=x.device)
    noisy = encoder.patchify(encoder.spectrogram(add_noise(x, (10.0, 30.0), generator)))
    visible = ~hidden[:, None, :].expand(-1, 4, -1).reshape(8, 16)
    torch.testing.assert_close(given[0][visible], noisy[visible])
    clean = encoder.patchify(encoder.spectrogram(x))
    assert not torch.allclose(given[0][visible], clean[visible])
    # The targets are the clean crop's codes, on the hidden columns only.
    features = method.norm(encoder.forward_tokens(original(given[0], (4, 4))))
    logits = method.head(method.head_blocks(features)).view(8, 16, 1, 32)
    mask = ~visible
    torch.testing.assert_close(loss, masked_code_cross_entropy(logits, method.targets(clean), mask))
    noisy_loss = masked_code_cross_entropy(logits, method.targets(noisy), mask)
    assert not torch.allclose(loss, noisy_loss)
    for bad in ([30], [40, 20], [float("nan"), 40]):
        with pytest.raises(MusicSSLError, match="noise_snr_db"):
            build_method("bestrq", _tiny_vit(), codebook_size=32, noise_snr_db=bad)
    with pytest.raises(MusicSSLError, match="codebook_size must be >= 2"):
        build_method("bestrq", _tiny_vit(), codebook_size=1)


def test_bestrq_head_blocks_sit_between_the_encoder_and_the_classifiers():
    torch.manual_seed(0)
    method = build_method("bestrq", _tiny_vit(), codebook_size=32, head_depth=2)
    blocks = [m for m in method.head_blocks if isinstance(m, Block)]
    assert len(blocks) == 2
    # Trained by the loss, and not part of the encoder (nothing of them is evaluated).
    method(torch.randn(4, 243))["loss"].backward()
    assert all(p.grad is not None for p in blocks[0].parameters())
    assert not any(name.startswith("head") for name, _ in method.encoder.named_parameters())
    # Without blocks the classifiers read the encoder directly, under their old names.
    linear = build_method("bestrq", _tiny_vit(), codebook_size=32)
    head = {name for name in linear.state_dict() if name.startswith("head")}
    assert head == {"head.weight", "head.bias"}


@pytest.fixture(scope="module")
def tiny_store(tiny_corpus, tmp_path_factory) -> Path:
    """The tiny built-in corpus packed at 16 kHz (train, valid and test splits)."""
    out = tmp_path_factory.mktemp("masked") / "store"
    pack(tiny_corpus / "manifest.jsonl", out=out, sr=16000, progress=False)
    return out


def test_bestrq_quantiser_uses_many_codes_on_real_music(tiny_store):
    recipe = Recipe.load(recipe_path("bestrq-vit-cpu"))
    method = build_method("bestrq", build_encoder(recipe.encoder.name, **recipe.encoder.options),
                          **recipe.method.options)  # fmt: skip
    store = SampleStore(tiny_store)
    # The first 2.5 s of every clip (they last about 3 s: no zero padding).
    clips = torch.from_numpy(np.stack([store.crop(i, 0, 40000) for i in range(len(store))]))
    with torch.no_grad():
        codes = method.targets(method.tokens(clips)[0])
    perplexity, used = codebook_usage(codes.flatten(0, 1), method.codebook_size)
    # 251 frames of 10 ms: 31 columns of 80 ms x 6 octaves = 186 patches a clip; 36 clips give
    # 6696 targets over 1024 codes; a collapsed quantiser scores ~1.
    assert codes.shape[:2] == (36, 186)
    assert used.item() > 0.2 and perplexity.item() > 100


FRAMES_RECIPE = """
encoder:
  name: frame_transformer
  options: {width: 32, depth: 2, num_heads: 2, stack: 4, sample_rate: 16000, input_samples: 16000}
method:
  name: bestrq
  options: {codebook_size: 64, start_probability: 0.1, span: 4}
augment: {name: none}
"""


@pytest.mark.parametrize("name", ["mae-vit-cpu", "bestrq-vit-cpu", "frame_transformer"])
def test_masked_recipe_pretrains_end_to_end(name, tiny_store, tmp_path):
    overrides = [f"data.store={tiny_store}", "data.workers=0", "train.steps=3",
                 "train.batch_size=4", "train.minutes=null", "train.checkpoint_every=3",
                 "train.log_every=1", "optim.warmup_steps=1"]  # fmt: skip
    path = recipe_path(name) if name.endswith("-cpu") else tmp_path / "frames.yaml"
    if name == "frame_transformer":  # BEST-RQ on frames: a recipe of one's own
        path.write_text(FRAMES_RECIPE)
    recipe = Recipe.load(path, overrides)
    final = pretrain(recipe, out=tmp_path / "run", progress=False)
    assert final.name == "step-00000003"
    with open(tmp_path / "run" / "metrics.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert [int(row["step"]) for row in rows] == [1, 2, 3]
    assert all(math.isfinite(float(row["loss"])) for row in rows)
    if recipe.method.name == "bestrq":
        assert all(float(row["code_perplexity"]) > 1 for row in rows)
        assert all(0 < float(row["codes_used"]) <= 1 for row in rows)


def _mae_error(method, seen: torch.Tensor, keep: torch.Tensor, grid):
    """By hand, MAE's prediction from the spectrogram ``seen`` (visible patches ``keep``), as a
    function of a spectrogram and a mask: the normalised patch error over that mask."""
    from musicssl.losses import masked_patch_mse, normalise_patches

    encoder = method.encoder
    latent = encoder.forward_tokens(encoder.embed_patches(seen), keep)
    prediction = method.decoder(latent, keep, grid)
    return lambda spec, where: masked_patch_mse(
        prediction, normalise_patches(encoder.patchify(spec)), where
    )


def _restart_draws(method: torch.nn.Module) -> None:
    """Every ``Draws`` of ``method`` back to its first step, as loading a checkpoint does."""
    for draws in (m for m in method.modules() if isinstance(m, Draws)):
        draws.load_state_dict({"count": torch.tensor(0)})


def _mae_draws(method, x: torch.Tensor):
    """By hand, MAE's first draws for ``x``: (generator, clean spectrogram, grid, kept
    indices, mask); the generator goes on to the draws after the mask."""
    from musicssl.losses import random_patch_mask

    generator = Draws(seed=0).next(x.device)
    clean = method.encoder.spectrogram(x)
    grid = method.encoder.patch_grid(clean.shape[-1])
    keep, mask = random_patch_mask(x.shape[0], grid[0] * grid[1], mask_ratio=method.mask_ratio,
                                   generator=generator, device=x.device)  # fmt: skip
    return generator, clean, grid, keep, mask


@pytest.mark.parametrize("name", ["mae-vit-cpu", "bestrq-vit-cpu"])
def test_masked_step_compiles_whole_with_only_its_draws_left_eager(name, monkeypatch):
    from musicssl.train import build_parts

    parts = build_parts(Recipe.load(recipe_path(name), ["encoder.options.depth=1"]))
    method = parts.method
    x = 0.1 * torch.randn(
        2, parts.encoder.input_samples, generator=torch.Generator().manual_seed(0)
    )
    # The spectrogram, then the draws (a generator cannot be built inside a graph), then the
    # encoder, head and loss in one graph: no break depends on the mask.
    explained = torch._dynamo.explain(method)(x)
    assert (explained.graph_count, explained.graph_break_count) == (2, 1)
    assert "_draw" in explained.break_reasons[0].reason
    compiled = []
    original = torch.nn.Module.compile

    def compile_eagerly(self, *args, **kwargs):  # dynamo tracing without a C++ build
        compiled.append(type(self).__name__)
        return original(self, *args, **{**kwargs, "backend": "eager"})

    monkeypatch.setattr(torch.nn.Module, "compile", compile_eagerly)
    _restart_draws(method)
    eager = method(x)
    method.compile_for_training(None)
    assert compiled == [type(method).__name__]  # the whole step, not the encoder's forward
    _restart_draws(method)
    again = method(x)  # the same draws through the compiled step
    assert int(method.draws.count) == 1
    for key, value in eager.items():
        torch.testing.assert_close(again[key], value)


def test_mae_refuses_a_mask_ratio_that_hides_no_patch():
    encoder = _tiny_vit()
    method = build_method("mae", encoder, mask_ratio=0.01, decoder_width=16, decoder_depth=1,
                          decoder_heads=2)  # fmt: skip
    x = torch.randn(2, encoder.input_samples)
    with pytest.raises(MusicSSLError, match="mask_ratio=0.01 hides none of the 16 patches"):
        method(x)
