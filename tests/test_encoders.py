"""Encoder registry smoke tests (every entry), shapes by hand, rebuild from config, heads; the
token interfaces of the transformers (patches, kept tokens, frame inputs)."""

from __future__ import annotations

import json
import math

import pytest
import torch
from torch import nn

from musicssl.encoders import (
    ENCODERS,
    Encoder,
    FrameTransformer,
    SampleCNN,
    ShortChunkCNN,
    SpectrogramViT,
    build_encoder,
    encoder_name,
    predictor,
    projection_head,
)
from musicssl.encoders._transformer import sincos_1d, standardise_clip
from musicssl.errors import MusicSSLError

# The small key CNN, alone and as a branch below.
SMALL_KEY_CNN = {
    "sample_rate": 8000,
    "hop_length": 64,
    "num_octaves": 4,
    "max_shift_semitones": 6,
    "channels": 4,
    "depth": 2,
    "output_kernel": 9,
    "input_samples": 1024,
}

# A small configuration of every registered encoder, with its layer shapes worked out by hand.
SMALL = {
    # 3^5 = 243 samples; the stem and each block divide time by 3: 81, 27, 9, 3, 1; the final
    # conv keeps 1 frame.
    "sample_cnn": {
        "kwargs": {"num_blocks": 4, "channels": (8, 8, 8, 16, 16, 32), "sample_rate": 16000},
        "num_samples": 243,
        "channels": [8, 8, 8, 16, 16, 32],
        "frames": [81, 27, 9, 3, 1, 1],
        "hops": [3, 9, 27, 81, 243, 243],
        "too_short": 242,
        "expected_in_error": "243",
    },
    # 8192 samples, hop 64: 1 + 8192 // 64 = 129 frames, halved by each of the 7 blocks:
    # 64, 32, 16, 8, 4, 2, 1. Widths 4, 4, 8, 8, 8, 8, 16. Minimum input 64 * 127 = 8128.
    "short_chunk_cnn": {
        "kwargs": {"channels": 4, "n_fft": 256, "hop_length": 64, "input_samples": 8192},
        "num_samples": 8192,
        "channels": [4, 4, 8, 8, 8, 8, 16],
        "frames": [64, 32, 16, 8, 4, 2, 1],
        "hops": [128, 256, 512, 1024, 2048, 4096, 8192],
        "too_short": 8127,
        "expected_in_error": "8128",
    },
    # 4096 samples, hop 64: 1 + 4096 // 64 = 65 frames; patches of 8 bins x 4 frames: a grid
    # of 32 / 8 = 4 x 65 // 4 = 16 (the 65th frame dropped). Every layer: width 32, 16 frames
    # of 64 * 4 = 256 samples. One patch of frames needs 64 * 3 = 192 samples.
    "spectrogram_vit": {
        "kwargs": {
            "width": 32,
            "depth": 2,
            "num_heads": 2,
            "patch": (8, 4),
            "n_fft": 256,
            "hop_length": 64,
            "n_bins": 32,
            "input_samples": 4096,
        },
        "num_samples": 4096,
        "channels": [32, 32],
        "frames": [16, 16],
        "hops": [256, 256],
        "too_short": 191,
        "expected_in_error": "192",
    },
    # The same 65 frames, 4 per token: 16 tokens of 256 samples; one token needs 192 samples.
    "frame_transformer": {
        "kwargs": {
            "width": 32,
            "depth": 3,
            "num_heads": 4,
            "stack": 4,
            "n_fft": 256,
            "hop_length": 64,
            "n_bins": 24,
            "input_samples": 4096,
        },
        "num_samples": 4096,
        "channels": [32, 32, 32],
        "frames": [16, 16, 16],
        "hops": [256, 256, 256],
        "too_short": 191,
        "expected_in_error": "192",
    },
    # CQT at 8 kHz, 4 octaves x 36 bins = 144, a window of 144 - 2 * 6 = 132; unpadded
    # convolutions reach 2 + 2 + 7 = 11 bins each side: 110 outputs. Hop 128:
    # 1 + 2048 // 128 = 17 frames in both layers (4 channels, then the 110-bin distribution).
    "pesto_cnn": {
        "kwargs": {
            "sample_rate": 8000,
            "hop_length": 128,
            "num_octaves": 4,
            "max_shift": 6,
            "channels": 4,
            "depth": 2,
            "kernel_size": 5,
            "output_kernel": 15,
            "input_samples": 2048,
        },
        "num_samples": 2048,
        "channels": [4, 110],
        "frames": [17, 17],
        "hops": [128, 128],
        "too_short": 127,
        "expected_in_error": "128",
    },
    # Hop 64: 1 + 1024 // 64 = 17 frames, halved by each of 2 blocks: 8, 4; the pitch classes
    # (4 channels x 12) and the key logits keep the last block's 4 frames. Two blocks need
    # 64 * (2^2 - 1) = 192 samples.
    "key_cnn": {
        "kwargs": SMALL_KEY_CNN,
        "num_samples": 1024,
        "channels": [4, 4, 48, 24],
        "frames": [8, 4, 4, 4],
        "hops": [128, 256, 256, 256],
        "too_short": 191,
        "expected_in_error": "192",
    },
    # One frame per input; two beats at 120 BPM are 8000 samples at 8 kHz. Unpadded
    # convolutions reach 4 + 2 + 4 = 10 bins each side of the 32: 12 tempo outputs.
    "tempo_cnn": {
        "kwargs": {
            "sample_rate": 8000,
            "hop_length": 80,
            "n_mels": 16,
            "min_bpm": 120.0,
            "tempo_bins": 32,
            "bins_per_octave": 12,
            "channels": 4,
            "depth": 2,
            "output_kernel": 9,
            "input_samples": 8000,
        },
        "num_samples": 8000,
        "channels": [4, 12],
        "frames": [1, 1],
        "hops": [8000, 8000],
        "too_short": 7999,
        "expected_in_error": "8000",
    },
    # The short-chunk CNN and the key CNN above side by side on 8192 samples at 8 kHz: the
    # first's 7 layers, the second's 4 (hop 64: 129 frames, halved twice: 64, 32; the pitch
    # classes and logits keep 32), then the joint layer: 16 + 24 channels on the finer 32
    # frames of 256 samples.
    "branches": {
        "kwargs": {
            "branches": {
                "timbre": {
                    "name": "short_chunk_cnn",
                    "options": {
                        "channels": 4,
                        "sample_rate": 8000,
                        "f_max": 4000.0,
                        "n_fft": 256,
                        "hop_length": 64,
                        "input_samples": 8192,
                        "input_norm": "clip",
                    },
                },
                "key": {"name": "key_cnn", "options": SMALL_KEY_CNN},
            }
        },
        "num_samples": 8192,
        "channels": [4, 4, 8, 8, 8, 8, 16, 4, 4, 48, 24, 40],
        "frames": [64, 32, 16, 8, 4, 2, 1, 64, 32, 32, 32, 32],
        "hops": [128, 256, 512, 1024, 2048, 4096, 8192, 128, 256, 256, 256, 256],
        "too_short": 8127,
        "expected_in_error": "8128",
    },
}


def test_every_registered_encoder_has_a_small_config():
    assert set(SMALL) == set(ENCODERS)


def _audio(batch_size: int, num_samples: int, seed: int = 0) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    return 0.1 * torch.randn(batch_size, num_samples, generator=gen)


@pytest.fixture(params=sorted(ENCODERS))
def small(request) -> tuple[str, nn.Module, dict]:
    torch.manual_seed(0)
    spec = SMALL[request.param]
    return request.param, build_encoder(request.param, **spec["kwargs"]), spec


def test_forward_backward_reaches_every_parameter(small):
    name, encoder, spec = small
    assert isinstance(encoder, Encoder)
    assert encoder_name(encoder) == name
    x = _audio(4, spec["num_samples"])
    out = encoder(x)
    assert out.shape == (4, encoder.embedding_dim) == (4, spec["channels"][-1])
    assert torch.isfinite(out).all()
    weights = torch.randn(out.shape, generator=torch.Generator().manual_seed(1))
    (out * weights).sum().backward()
    for param_name, param in encoder.named_parameters():
        assert param.grad is not None, param_name
        assert torch.isfinite(param.grad).all(), param_name
        assert param.grad.abs().sum() > 0, param_name


def test_interface_attributes(small):
    _, encoder, spec = small
    assert encoder.num_layers == len(spec["channels"])
    assert encoder.input_samples == spec["num_samples"]
    assert isinstance(encoder.sample_rate, int) and encoder.sample_rate > 0
    assert isinstance(encoder.embedding_dim, int)


def test_forward_features_shapes_for_every_layer(small):
    _, encoder, spec = small
    encoder.eval()
    x = _audio(2, spec["num_samples"])
    with torch.no_grad():
        for layer in range(encoder.num_layers):
            features = encoder.forward_features(x, layer=layer)
            expected = (2, spec["channels"][layer], spec["frames"][layer])
            assert features.shape == expected, layer
            assert encoder.frame_hop(layer) == spec["hops"][layer]
        last = encoder.forward_features(x)
        torch.testing.assert_close(encoder.forward_features(x, layer=-1), last)
    assert last.shape == (2, encoder.embedding_dim, spec["frames"][-1])
    with pytest.raises(MusicSSLError, match="layer"):
        encoder.forward_features(x, layer=encoder.num_layers)


def test_forward_layers_equal_each_layer_computed_alone(small):
    _, encoder, spec = small
    encoder.eval()
    x = _audio(3, spec["num_samples"])
    with torch.no_grad():
        outputs = encoder.forward_layers(x)
        assert len(outputs) == encoder.num_layers
        for layer, features in enumerate(outputs):
            assert features.shape == (3, spec["channels"][layer], spec["frames"][layer]), layer
            torch.testing.assert_close(features, encoder.forward_features(x, layer=layer))
        torch.testing.assert_close(encoder.pool(outputs[-1]), encoder(x))
    with pytest.raises(MusicSSLError, match=spec["expected_in_error"]):
        encoder.forward_layers(_audio(2, spec["too_short"]))


def test_rebuild_from_config_gives_the_same_output(small):
    name, encoder, spec = small
    config = encoder.config()
    json.dumps(config)  # plain values only, so it can sit in a YAML/JSON file
    rebuilt = build_encoder(name, **config)
    rebuilt.load_state_dict(encoder.state_dict())
    encoder.eval()
    rebuilt.eval()
    x = _audio(2, spec["num_samples"])
    with torch.no_grad():
        torch.testing.assert_close(rebuilt(x), encoder(x))
    assert rebuilt.config() == config


def test_batched_equals_per_item_in_eval_mode(small):
    _, encoder, spec = small
    encoder.eval()
    x = _audio(3, spec["num_samples"])
    with torch.no_grad():
        batched = encoder(x)
        one_by_one = torch.cat([encoder(x[i : i + 1]) for i in range(3)])
    torch.testing.assert_close(batched, one_by_one, rtol=1e-4, atol=1e-5)


def test_wrong_input_raises(small):
    _, encoder, spec = small
    with pytest.raises(MusicSSLError, match=spec["expected_in_error"]):
        encoder(_audio(2, spec["too_short"]))
    with pytest.raises(MusicSSLError, match="batch_size, num_samples"):
        encoder(_audio(2, spec["num_samples"]).unsqueeze(1))
    with pytest.raises(MusicSSLError, match="int16"):
        encoder(torch.zeros(2, spec["num_samples"], dtype=torch.int16))


def test_sample_cnn_accepts_only_its_crop_length():
    encoder = SampleCNN(num_blocks=4, channels=(8, 8, 8, 16, 16, 32))
    with pytest.raises(MusicSSLError, match="3\\^5 = 243"):
        encoder(_audio(2, 244))


def test_short_chunk_cnn_accepts_longer_input():
    encoder = ShortChunkCNN(channels=4, n_fft=256, hop_length=64, input_samples=8192).eval()
    # 1 + 16384 // 64 = 257 frames -> 128, 64, ..., 2 after seven blocks.
    with torch.no_grad():
        assert encoder.forward_features(_audio(1, 16384)).shape == (1, 16, 2)
        assert encoder(_audio(1, 16384)).shape == (1, 16)


def test_short_chunk_cnn_runs_channels_last_with_the_same_result():
    torch.manual_seed(0)
    encoder = ShortChunkCNN(channels=4, n_fft=256, hop_length=64, input_samples=8192).eval()
    conv = encoder.layers[1][0].weight
    assert conv.is_contiguous(memory_format=torch.channels_last) and not conv.is_contiguous()
    x = _audio(3, 8192)
    with torch.no_grad():
        fast = encoder(x)
        encoder.layers.to(memory_format=torch.contiguous_format)
        assert encoder.layers[1][0].weight.is_contiguous()
        torch.testing.assert_close(fast, encoder(x), rtol=1e-4, atol=1e-5)


def _paper_order(block: nn.Sequential, h: torch.Tensor) -> torch.Tensor:
    """A block as the papers write it: conv, batch norm, ReLU, then max-pool."""
    conv, norm, pool, relu = block
    return pool(relu(norm(conv(h))))


@pytest.mark.parametrize("name", ["sample_cnn", "short_chunk_cnn"])
def test_pooling_before_relu_is_the_papers_block(name):
    # The blocks run max-pool before ReLU; the two commute, so in training mode (batch
    # statistics) the output and every gradient equal those of the papers' order.
    torch.manual_seed(0)
    encoder = build_encoder(name, **SMALL[name]["kwargs"]).train()
    x = _audio(3, SMALL[name]["num_samples"])
    pooled = [b for b in encoder.layers if len(b) == 4]
    assert pooled and all(isinstance(b[2], (nn.MaxPool1d, nn.MaxPool2d)) for b in pooled)
    ours = encoder.forward_features(x)
    grads = torch.autograd.grad(ours.square().sum(), list(encoder.parameters()))

    blocks = list(encoder.layers)
    forwards = [b.forward for b in blocks]
    for block in pooled:
        block.forward = lambda h, block=block: _paper_order(block, h)
    try:
        theirs = encoder.forward_features(x)
        their_grads = torch.autograd.grad(theirs.square().sum(), list(encoder.parameters()))
    finally:
        for block, forward in zip(blocks, forwards, strict=True):
            block.forward = forward
    torch.testing.assert_close(ours, theirs)
    for mine, paper in zip(grads, their_grads, strict=True):
        torch.testing.assert_close(mine, paper)


def test_short_chunk_cnn_standardises_its_input_without_learning_a_scale():
    # The first block's batch norm would undo a learned scale and shift of the log-mel, so the
    # input batch norm has none, and the gradient stops at the first conv.
    encoder = ShortChunkCNN(**SMALL["short_chunk_cnn"]["kwargs"]).train()
    assert list(encoder.input_norm.parameters()) == []
    x = _audio(4, 8192)
    h = encoder.input_norm(encoder.frontend(x).unsqueeze(1))
    assert not h.requires_grad
    torch.testing.assert_close(float(h.mean()), 0.0, atol=1e-5, rtol=0)
    torch.testing.assert_close(float(h.var(unbiased=False)), 1.0, atol=1e-3, rtol=0)


def test_branches_embed_side_by_side_and_the_joint_layer_keeps_each_pooling():
    spec = SMALL["branches"]
    torch.manual_seed(0)
    encoder = build_encoder("branches", **spec["kwargs"]).eval()
    timbre, key = encoder.branches["timbre"], encoder.branches["key"]
    x = _audio(2, spec["num_samples"])
    with torch.no_grad():

        def standardised(v: torch.Tensor) -> torch.Tensor:
            v = v - v.mean(dim=1, keepdim=True)
            return v / v.norm(dim=1, keepdim=True)

        parts = torch.cat([standardised(timbre(x)), standardised(key(x))], dim=1)
        torch.testing.assert_close(encoder(x), parts)
        torch.testing.assert_close(encoder(x).norm(dim=1), torch.full((2,), 2**0.5))
        joint = encoder.forward_features(x)
        # The timbre branch's one frame repeated over the 32 frames, the key frames as they are.
        torch.testing.assert_close(joint[:, :16], timbre.forward_features(x).expand(-1, -1, 32))
        torch.testing.assert_close(joint[:, 16:], key.forward_features(x))
    assert encoder.input_samples == 8192  # the longest branch crop
    with torch.no_grad():
        maps = encoder.forward_maps(x)
        # The CNN's maps keep their bins (64 at block 0); the key layers and the joint have one.
        assert [m.shape[2] for m in maps] == [64, 32, 16, 8, 4, 2, 1, 1, 1, 1, 1, 1]
        for own, mine in zip(timbre.forward_maps(x), maps[:7], strict=False):
            torch.testing.assert_close(mine, own)
    # Reports name each layer by its branch; an encoder of one stack needs no names.
    labels = encoder.layer_labels()
    assert labels[:7] == [f"timbre layer {i}" for i in range(7)]
    assert labels[7:] == [f"key layer {i}" for i in range(key.num_layers)] + ["joint"]
    assert len(labels) == encoder.num_layers == len(maps)
    assert timbre.layer_labels() == [""] * timbre.num_layers


def test_branches_embedding_holds_the_layers_each_branch_names():
    spec = SMALL["branches"]["kwargs"]["branches"]
    key_spec = {**spec["key"], "layers": [-3, -1]}  # the last block's summary, the logits
    torch.manual_seed(0)
    encoder = build_encoder("branches", branches={**spec, "key": key_spec}).eval()
    assert encoder.embedding_dim == 16 + 4 + 24
    assert encoder.config()["branches"]["key"]["layers"] == [-3, -1]
    timbre, key = encoder.branches["timbre"], encoder.branches["key"]
    x = _audio(2, SMALL["branches"]["num_samples"])

    def standardised(v: torch.Tensor) -> torch.Tensor:
        v = v - v.mean(dim=1, keepdim=True)
        return v / v.norm(dim=1, keepdim=True)

    with torch.no_grad():
        block = key.forward_features(x, layer=-3).mean(dim=-1)  # the key CNN pools by the mean
        expected = [standardised(timbre(x)), standardised(block), standardised(key(x))]
        torch.testing.assert_close(encoder(x), torch.cat(expected, dim=1))
        assert encoder.forward_features(x).shape == (2, 44, 32)
    rebuilt = build_encoder("branches", **encoder.config())
    assert rebuilt.embedding_dim == 44
    with pytest.raises(MusicSSLError, match="names a layer twice"):
        build_encoder("branches", branches={"key": {**spec["key"], "layers": [3, -1]}})
    with pytest.raises(MusicSSLError, match="list of layer numbers"):
        build_encoder("branches", branches={"key": {**spec["key"], "layers": 2}})


def test_branches_refuse_mixed_rates_and_malformed_specs():
    timbre = SMALL["branches"]["kwargs"]["branches"]["timbre"]
    other_rate = {"name": "key_cnn", "options": {"sample_rate": 16000}}
    with pytest.raises(MusicSSLError, match="one sample rate"):
        build_encoder("branches", branches={"a": timbre, "b": other_rate})
    with pytest.raises(MusicSSLError, match="branch 'a' must be"):
        build_encoder("branches", branches={"a": {"encoder": "key_cnn"}})
    with pytest.raises(MusicSSLError, match="at least one branch"):
        build_encoder("branches", branches={})


def test_short_chunk_cnn_clip_norm_ignores_gain_and_random_weights_read_standardised_input():
    kwargs = {**SMALL["short_chunk_cnn"]["kwargs"], "input_norm": "clip"}
    encoder = ShortChunkCNN(**kwargs).eval()
    x = _audio(2, 8192)
    with torch.no_grad():
        h = encoder.input_norm(encoder.frontend(x).unsqueeze(1))
        torch.testing.assert_close(h.mean(dim=(1, 2, 3)), torch.zeros(2), atol=1e-5, rtol=0)
        torch.testing.assert_close(h.std(dim=(1, 2, 3), unbiased=False), torch.ones(2))
    assert encoder.config()["input_norm"] == "clip"
    assert "input_norm" not in ShortChunkCNN(**SMALL["short_chunk_cnn"]["kwargs"]).config()
    with pytest.raises(MusicSSLError, match="input_norm"):
        ShortChunkCNN(**{**kwargs, "input_norm": "layer"})


def test_full_size_defaults():
    # CLMR's SampleCNN on 3^10 = 59049 samples and Won et al.'s short-chunk CNN on 3.69 s at
    # 16 kHz both end in one 512-d frame.
    torch.manual_seed(0)
    with torch.no_grad():
        sample_cnn = SampleCNN().eval()
        assert (sample_cnn.input_samples, sample_cnn.sample_rate) == (59049, 22050)
        assert sample_cnn.channels == (128, 128, 128, 256, 256, 256, 256, 256, 256, 512, 512)
        assert sample_cnn.forward_features(_audio(1, 59049), layer=0).shape == (1, 128, 19683)
        assert sample_cnn.forward_features(_audio(1, 59049)).shape == (1, 512, 1)
        short_chunk = ShortChunkCNN().eval()
        assert (short_chunk.input_samples, short_chunk.sample_rate) == (59049, 16000)
        assert short_chunk(_audio(1, 59049)).shape == (1, 512)


def test_constructor_checks():
    with pytest.raises(MusicSSLError, match="num_blocks \\+ 2 = 6"):
        SampleCNN(num_blocks=4, channels=(8, 8, 8))
    with pytest.raises(MusicSSLError, match="n_mels must be >= 128"):
        ShortChunkCNN(n_mels=96)
    with pytest.raises(MusicSSLError, match="input_samples=1000"):
        ShortChunkCNN(input_samples=1000)


def test_build_encoder_errors_name_the_problem():
    valid = "valid names: " + ", ".join(sorted(ENCODERS))
    with pytest.raises(MusicSSLError, match=valid):
        build_encoder("resnet")
    with pytest.raises(MusicSSLError, match="width"):
        build_encoder("sample_cnn", width=2)
    with pytest.raises(MusicSSLError, match="not a registered encoder"):
        encoder_name(nn.Linear(2, 2))


def test_projection_head_layers():
    head = projection_head(16, 32, 8)
    assert [type(m) for m in head] == [nn.Linear, nn.BatchNorm1d, nn.ReLU, nn.Linear]
    assert head[0].bias is None  # the batch norm after it has the bias
    assert head(torch.randn(5, 16)).shape == (5, 8)
    plain = projection_head(16, 32, 8, num_layers=3, batch_norm=False)
    assert [type(m) for m in plain] == [nn.Linear, nn.ReLU, nn.Linear, nn.ReLU, nn.Linear]
    assert [m.out_features for m in plain if isinstance(m, nn.Linear)] == [32, 32, 8]
    linear = projection_head(16, 32, 8, num_layers=1)
    assert len(linear) == 1 and linear[0].in_features == 16 and linear[0].out_features == 8
    assert predictor(8, 4, 8)(torch.randn(3, 8)).shape == (3, 8)
    with pytest.raises(MusicSSLError, match="num_layers"):
        projection_head(16, 32, 8, num_layers=0)


def _small_vit(**overrides) -> SpectrogramViT:
    torch.manual_seed(0)
    return SpectrogramViT(**{**SMALL["spectrogram_vit"]["kwargs"], **overrides}).eval()


def test_vit_patchify_by_hand_and_unpatchify_round_trip():
    vit = _small_vit(n_bins=4, patch=(2, 3))
    # A 4 x 7 spectrogram of 0..27: a 2 x 2 grid (the 7th frame dropped), frequency-major.
    spec = torch.arange(28.0).reshape(1, 4, 7)
    patches = vit.patchify(spec)
    assert vit.patch_grid(7) == (2, 2) and patches.shape == (1, 4, 6)
    # Patch 1 is bins 0-1, frames 3-5; patch 2 is bins 2-3, frames 0-2. Bins-major inside.
    assert patches[0, 1].tolist() == [3.0, 4.0, 5.0, 10.0, 11.0, 12.0]
    assert patches[0, 2].tolist() == [14.0, 15.0, 16.0, 21.0, 22.0, 23.0]
    torch.testing.assert_close(vit.unpatchify(patches, (2, 2)), spec[..., :6], rtol=0, atol=0)
    batch = torch.randn(3, 32, 40, generator=torch.Generator().manual_seed(0))
    default = _small_vit()
    grid = default.patch_grid(40)
    torch.testing.assert_close(default.unpatchify(default.patchify(batch), grid), batch)


def test_vit_encoding_all_tokens_kept_equals_the_full_encoding():
    vit = _small_vit()
    x = _audio(2, 4096)
    with torch.no_grad():
        spec = vit.spectrogram(x)
        assert spec.shape == (2, 32, 64)
        tokens = vit.embed_patches(spec)
        assert tokens.shape == (2, 64, 32)
        full = vit.forward_tokens(tokens)
        # The encoder ends in its last block, no final norm: its tokens keep their scales.
        h = tokens
        for block in vit.blocks:
            h = block(h)
        torch.testing.assert_close(full, h)
        assert h.std(dim=-1).std() > 0.01
        rows, cols = vit.patch_grid(spec.shape[-1])
        torch.testing.assert_close(
            h.reshape(2, rows, cols, 32).mean(1).transpose(1, 2), vit.forward_features(x)
        )
        every = torch.arange(64).expand(2, 64)
        torch.testing.assert_close(vit.forward_tokens(tokens, every), full)
        # The positions travel inside the tokens, so any order of them is encoded the same.
        shuffled = torch.stack(
            [torch.randperm(64, generator=torch.Generator().manual_seed(i)) for i in range(2)]
        )
        kept = vit.forward_tokens(tokens, shuffled)
        torch.testing.assert_close(
            kept, torch.gather(full, 1, shuffled[..., None].expand(-1, -1, 32))
        )
        # A subset is encoded from itself alone: what is left out changes nothing.
        subset = shuffled[:, :16]
        changed = tokens.clone()
        changed.scatter_(1, shuffled[:, 16:, None].expand(-1, -1, 32), 100.0)
        torch.testing.assert_close(
            vit.forward_tokens(changed, subset), vit.forward_tokens(tokens, subset)
        )
        assert vit.forward_tokens(tokens, subset).shape == (2, 16, 32)
    with pytest.raises(MusicSSLError, match="keep_index"):
        vit.forward_tokens(tokens, every[0])


@pytest.mark.parametrize("name", ["spectrogram_vit", "frame_transformer"])
def test_transformers_load_an_older_checkpoint_that_ended_in_a_final_norm(name):
    def build() -> torch.nn.Module:
        return build_encoder(name, **SMALL[name]["kwargs"])

    model = build()
    width = model.embedding_dim
    older = {
        **model.state_dict(),
        "norm.weight": torch.ones(width),
        "norm.bias": torch.zeros(width),
    }
    build().load_state_dict(older)  # strict: the norm is left out, nothing else
    with pytest.raises(RuntimeError, match="blocks"):
        build().load_state_dict({k: v for k, v in older.items() if "blocks" not in k})


def test_frame_transformer_ends_in_its_last_block():
    model = FrameTransformer(**SMALL["frame_transformer"]["kwargs"]).eval()
    x = _audio(2, 4096)
    with torch.no_grad():
        frames = model.frame_inputs(x)
        h = model.proj(frames) + sincos_1d(torch.arange(frames.shape[1]), model.embedding_dim)
        for block in model.blocks:
            h = block(h)
        torch.testing.assert_close(model.forward_frames(frames), h)
        torch.testing.assert_close(model.forward_features(x), h.transpose(1, 2))
        assert h.std(dim=-1).std() > 0.01  # no norm: the tokens keep their own scales


def test_vit_vertical_patches_and_cqt_front_end():
    # Myna's patches span every band: one row of 65 // 2 = 32 columns of 2 frames.
    myna = _small_vit(patch=(32, 2))
    x = _audio(2, 4096)
    with torch.no_grad():
        assert myna.patch_grid(65) == (1, 32)
        assert myna.forward_features(x).shape == (2, 32, 32)
        assert myna.frame_hop() == 128
    # 24 CQT bins from C1 at 12 per octave: two octaves, so the hop (64) halves once.
    cqt = _small_vit(frontend="cqt", n_bins=24, patch=(12, 4), bins_per_octave=12)
    with torch.no_grad():
        assert cqt.spectrogram(x).shape == (2, 24, 64)
        assert cqt(x).shape == (2, 32)
    with pytest.raises(MusicSSLError, match="frontend must be 'mel' or 'cqt'"):
        _small_vit(frontend="stft")
    with pytest.raises(MusicSSLError, match="n_bins=32"):
        _small_vit(patch=(5, 4))
    with pytest.raises(MusicSSLError, match="divisible by num_heads"):
        _small_vit(width=30, num_heads=4)


def test_standardise_clip_by_hand_and_token_encoders_ignore_gain():
    # One example of 2 bins x 2 frames: mean 2.5 dB, deviation sqrt(1.25).
    spec = torch.tensor([[[1.0, 2.0], [3.0, 4.0]]])
    expected = (spec - 2.5) / math.sqrt(1.25)
    torch.testing.assert_close(standardise_clip(spec), expected)
    # Each example on its own: a second, shifted and scaled example gives the same result.
    pair = torch.cat([spec, 10.0 * spec - 7.0])
    torch.testing.assert_close(standardise_clip(pair), torch.cat([expected, expected]))
    # A flat spectrogram is centred, not magnified.
    flat = torch.full((1, 3, 4), -50.0)
    flat[0, 0, 0] = -49.9
    assert standardise_clip(flat).abs().max() < 0.1
    # A gain moves every decibel by the same amount, so the encoders' input does not move,
    # and an encoder reads the same in training mode as in evaluation (no batch statistics).
    x = _audio(2, 4096)
    vit = _small_vit()
    frames = FrameTransformer(**SMALL["frame_transformer"]["kwargs"]).eval()
    with torch.no_grad():
        torch.testing.assert_close(vit.spectrogram(0.25 * x), vit.spectrogram(x), atol=1e-4, rtol=0)
        torch.testing.assert_close(
            frames.frame_inputs(0.25 * x), frames.frame_inputs(x), atol=1e-4, rtol=0
        )
        evaluated = vit(x[:1])
        torch.testing.assert_close(vit.train()(x)[:1], evaluated)


def test_frame_transformer_frame_inputs_stack_standardised_frames():
    torch.manual_seed(0)
    model = FrameTransformer(**SMALL["frame_transformer"]["kwargs"]).eval()
    x = _audio(2, 4096)
    with torch.no_grad():
        frames = model.frame_inputs(x)
        assert frames.shape == (2, 16, 4 * 24) and model.num_tokens(4096) == 16
        spec = standardise_clip(model.frontend(x))  # (2, 24, 65)
        # Row t holds frames 4t .. 4t + 3, each frame's 24 bins together.
        torch.testing.assert_close(frames[1, 5, 24:48], spec[1, :, 21])
        torch.testing.assert_close(frames[0, 15, 72:], spec[0, :, 63])
        features = model.forward_frames(frames)
        torch.testing.assert_close(features.transpose(1, 2), model.forward_features(x))
        # Hiding a frame (BEST-RQ replaces it with noise) changes every token through attention.
        noisy = frames.clone()
        noisy[:, 3] = torch.randn(2, 96, generator=torch.Generator().manual_seed(0))
        moved = (model.forward_frames(noisy) - features).abs().amax(dim=-1)  # (2, 16)
        assert (moved > 1e-4).all()


def test_frame_transformer_options_reach_every_parameter():
    # Learned positions, a Conformer conv module and the CQT front end.
    torch.manual_seed(0)
    kwargs = {**SMALL["frame_transformer"]["kwargs"], "positions": "learned", "conv_kernel": 3}
    model = FrameTransformer(**kwargs, frontend="cqt", bins_per_octave=12)
    x = _audio(3, 4096)
    out = model(x)
    assert out.shape == (3, 32)
    (out * torch.randn(out.shape, generator=torch.Generator().manual_seed(1))).sum().backward()
    for name, param in model.named_parameters():
        assert param.grad is not None and param.grad.abs().sum() > 0, name
    assert model.positions is not None and model.positions.shape == (16, 32)
    with pytest.raises(MusicSSLError, match="learned positions cover 16 tokens"):
        model(_audio(1, 8192))
    with pytest.raises(MusicSSLError, match="positions='rotary'"):
        FrameTransformer(positions="rotary")
    with pytest.raises(MusicSSLError, match="kernel size must be odd"):
        FrameTransformer(conv_kernel=4)


def test_transformer_defaults_are_small_enough_for_a_cpu():
    # Width 192, depth 4, 3 heads; 3.69 s at 16 kHz, 10 ms hop: 1 + 59049 // 160 = 370 frames:
    # ViT 128 / 16 = 8 rows x 370 // 16 = 23 columns; frame transformer 370 // 4 = 92 tokens.
    x = _audio(1, 59049)
    with torch.no_grad():
        vit = SpectrogramViT().eval()
        assert vit.forward_features(x).shape == (1, 192, 23)
        frames = FrameTransformer().eval()
        assert frames.forward_features(x).shape == (1, 192, 92)
    for model in (vit, frames):
        assert (model.embedding_dim, model.num_layers, model.input_samples) == (192, 4, 59049)
        assert sum(p.numel() for p in model.parameters()) < 2_000_000
