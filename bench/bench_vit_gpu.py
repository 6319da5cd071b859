"""A masked-modelling ViT step under bf16 and torch.compile, as a share of the matmul peak.

Three figures from one run on one device:

1. the device's measured bf16 matmul peak (TFLOP/s of a large square matmul);
2. one training step of a masked recipe (``mae-vit-cpu`` by default) at a GPU size: the
   front end, masking, encoder, decoder or classifiers, loss, backward and AdamW step, under
   bf16 autocast, compiled; its model FLOPs (counted once by ``FlopCounterMode``) per
   second, as a share of the peak;
3. the same for a plain ViT of the same width, depth and token count (a linear patch
   embedding, torch's ``TransformerEncoderLayer`` blocks, a mean-squared-error loss on random
   tokens): what a compiled transformer step reaches on this device without our code.

    python bench/bench_vit_gpu.py                       # on a GPU
    python bench/bench_vit_gpu.py --width 96 --depth 2 --batch 4 --steps 2 --no-compile  # smoke

On a CPU it runs in float32 (the smoke line above checks the script, not the device).
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from musicssl.recipe import Recipe, recipe_path
from musicssl.train import build_parts


def matmul_peak(device: torch.device, dtype: torch.dtype, size: int = 8192) -> float:
    """FLOP/s of ``size`` x ``size`` matmuls, the best of a few timed batches."""
    if device.type == "cpu":
        size = 1024
    a = torch.randn(size, size, device=device, dtype=dtype)
    b = torch.randn(size, size, device=device, dtype=dtype)
    best = 0.0
    for _ in range(5):
        seconds = timed(lambda: a @ b, device, repeats=10)
        best = max(best, 2 * size**3 / seconds)
    return best


def timed(step: Callable[[], object], device: torch.device, *, repeats: int) -> float:
    """Seconds per call of ``step``, after one warm-up call, synchronised."""
    step()
    sync(device)
    start = time.perf_counter()
    for _ in range(repeats):
        step()
    sync(device)
    return (time.perf_counter() - start) / repeats


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def training_step(
    model: nn.Module,
    loss_of: Callable[[], torch.Tensor],
    plain_loss_of: Callable[[], torch.Tensor],
    device: torch.device,
    dtype: torch.dtype,
) -> tuple[Callable[[], None], float]:
    """A step function (autocast, ``loss_of``, backward, AdamW) and the FLOPs of a forward
    and backward pass, counted on ``plain_loss_of``, the same loss not compiled (the counter
    does not see inside compiled kernels)."""
    optimiser = torch.optim.AdamW(model.parameters(), lr=1e-4)

    def step() -> None:
        with torch.autocast(device.type, dtype=dtype, enabled=dtype != torch.float32):
            loss = loss_of()
        optimiser.zero_grad(set_to_none=True)
        loss.backward()
        optimiser.step()

    counter = FlopCounterMode(display=False)
    with counter:
        with torch.autocast(device.type, dtype=dtype, enabled=dtype != torch.float32):
            loss = plain_loss_of()
        loss.backward()
    optimiser.zero_grad(set_to_none=True)
    return step, float(counter.get_total_flops())


def plain_vit(width: int, depth: int, heads: int, patch_size: int) -> nn.Module:
    layer = nn.TransformerEncoderLayer(
        width, heads, 4 * width, dropout=0.0, activation="gelu", batch_first=True,
        norm_first=True,
    )  # fmt: skip
    blocks = nn.TransformerEncoder(layer, depth, enable_nested_tensor=False)
    return nn.Sequential(nn.Linear(patch_size, width), blocks)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--recipe", default="mae-vit-cpu")
    parser.add_argument("--width", type=int, default=768)
    parser.add_argument("--depth", type=int, default=12)
    parser.add_argument("--heads", type=int, default=12)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--no-compile", dest="compile", action="store_false")
    args = parser.parse_args()

    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    dtype = torch.bfloat16 if device.type == "cuda" else torch.float32
    overrides = [
        f"encoder.options.width={args.width}",
        f"encoder.options.depth={args.depth}",
        f"encoder.options.num_heads={args.heads}",
    ]
    recipe = Recipe.load(recipe_path(args.recipe), overrides)
    parts = build_parts(recipe)
    encoder, method = parts.encoder, parts.method
    method.to(device).train()
    waves = torch.randn(args.batch, encoder.input_samples, device=device) * 0.1
    ours = torch.compile(method) if args.compile else method
    our_step, our_flops = training_step(
        method, lambda: ours(waves)["loss"], lambda: method(waves)["loss"], device, dtype
    )

    with torch.no_grad():
        grid = encoder.patch_grid(encoder.spectrogram(waves[:1]).shape[-1])
    tokens = grid[0] * grid[1]
    patch_size = encoder.patch[0] * encoder.patch[1]
    reference = plain_vit(args.width, args.depth, args.heads, patch_size).to(device)
    compiled = torch.compile(reference) if args.compile else reference
    patches = torch.randn(args.batch, tokens, patch_size, device=device)
    target = torch.randn(args.batch, tokens, args.width, device=device)

    def reference_loss(module: nn.Module) -> torch.Tensor:
        return nn.functional.mse_loss(module(patches).float(), target)

    ref_step, ref_flops = training_step(
        reference, lambda: reference_loss(compiled), lambda: reference_loss(reference), device,
        dtype,
    )  # fmt: skip

    peak = matmul_peak(device, dtype)
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "CPU"
    print(f"device: {name}; {dtype}; compiled: {args.compile}; torch {torch.__version__}")
    print(f"measured matmul peak: {peak / 1e12:.1f} TFLOP/s")
    print(f"ViT: width {args.width}, depth {args.depth}, {tokens} patches of {patch_size}, "
          f"batch {args.batch}")  # fmt: skip
    print("| step | ms | model TFLOP/s | share of peak |")
    print("|---|---:|---:|---:|")
    for label, step, flops in (
        (f"{args.recipe} ({recipe.method.name}, front end to optimiser)", our_step, our_flops),
        ("plain ViT, same size and tokens", ref_step, ref_flops),
    ):
        seconds = timed(step, device, repeats=args.steps)
        rate = flops / seconds
        print(f"| {label} | {seconds * 1e3:.1f} | {rate / 1e12:.1f} | {rate / peak:.1%} |")


if __name__ == "__main__":
    main()
