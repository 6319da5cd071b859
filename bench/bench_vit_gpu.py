"""A masked-modelling ViT step under bf16 and torch.compile, as a share of the matmul peak.

Three figures from one run on one device:

1. the device's measured bf16 matmul peak (TFLOP/s of a large square matmul);
2. one training step of a masked recipe (``mae-vit-cpu`` by default) at a GPU size: the
   front end, masking, encoder, decoder or classifiers, loss, backward and AdamW step, under
   bf16 autocast, compiled as ``train.compile=true`` compiles it (on a GPU, graphs that
   replay: the "reduce-overhead" mode); its model FLOPs per second, as a share of the peak.
   The FLOPs are counted by ``FlopCounterMode`` on the eager step, the work the step needs:
   eagerly, BEST-RQ classifies its hidden tokens only, and the compiled step classifies every
   token (its shapes cannot follow the mask), work the share does not credit;
3. the same for two plain ViTs of the same width, depth and token count, each with a
   mean-squared-error loss on random tokens: one of torch's ``TransformerEncoderLayer``
   blocks (what a compiled transformer step reaches on this device without our code), and
   the recipe's own encoder alone, from patches to its last block (what our blocks reach;
   the gap to row 2 is the front end, masking, head and loss).

    python bench/bench_vit_gpu.py --batch 64,256                     # on a GPU
    python bench/bench_vit_gpu.py --batch 256,512 --modes reduce-overhead,max-autotune
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
from musicssl.train import FUSED_ADAMW, build_parts


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
    """Seconds per call of ``step``, after three warm-up calls (CUDA graphs are recorded on
    the first ones), synchronised."""
    for _ in range(3):
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
    device: torch.device,
    dtype: torch.dtype,
    graphed: bool,
) -> Callable[[], None]:
    """One step as the trainer takes it: autocast, ``loss_of``, backward, AdamW (fused where
    the trainer fuses it)."""
    optimiser = torch.optim.AdamW(model.parameters(), lr=1e-4, fused=FUSED_ADAMW)

    def step() -> None:
        if graphed:  # as the trainer marks each pass of graphs that replay
            torch.compiler.cudagraph_mark_step_begin()
        with torch.autocast(device.type, dtype=dtype, enabled=dtype != torch.float32):
            loss = loss_of()
        optimiser.zero_grad(set_to_none=True)
        loss.backward()
        optimiser.step()

    return step


def step_flops(
    model: nn.Module, loss_of: Callable[[], torch.Tensor], device: torch.device, dtype: torch.dtype
) -> float:
    """FLOPs of a forward and backward pass, counted before compiling (the counter does not
    see inside compiled kernels)."""
    counter = FlopCounterMode(display=False)
    with counter:
        with torch.autocast(device.type, dtype=dtype, enabled=dtype != torch.float32):
            loss = loss_of()
        loss.backward()
    model.zero_grad(set_to_none=True)
    return float(counter.get_total_flops())


def plain_vit(width: int, depth: int, heads: int, patch_size: int) -> nn.Module:
    layer = nn.TransformerEncoderLayer(
        width, heads, 4 * width, dropout=0.0, activation="gelu", batch_first=True,
        norm_first=True,
    )  # fmt: skip
    blocks = nn.TransformerEncoder(layer, depth, enable_nested_tensor=False)
    return nn.Sequential(nn.Linear(patch_size, width), blocks)


class EncoderOnly(nn.Module):
    """The recipe's ViT from patches to its last block: no front end, masking or head."""

    def __init__(self, encoder: nn.Module, grid: tuple[int, int]) -> None:
        super().__init__()
        self.encoder, self.grid = encoder, grid

    def forward(self, patches: torch.Tensor) -> torch.Tensor:
        return self.encoder.forward_tokens(self.encoder.embed_patch_vectors(patches, self.grid))


def measure(args: argparse.Namespace, batch: int, device: torch.device, dtype: torch.dtype):
    """Rows (label, seconds per step, FLOPs per step) of the recipe's step compiled in each
    of ``args.modes`` (the first is the trainer's) and of the plain ViT's, at ``batch`` crops."""
    overrides = [
        f"encoder.options.width={args.width}",
        f"encoder.options.depth={args.depth}",
        f"encoder.options.num_heads={args.heads}",
    ]
    recipe = Recipe.load(recipe_path(args.recipe), overrides)
    rows = []
    for mode in args.modes.split(","):
        torch._dynamo.reset()  # each mode and batch size compiled for its own shapes
        torch.manual_seed(0)
        parts = build_parts(recipe)
        encoder, method = parts.encoder, parts.method
        method.to(device).train()
        waves = torch.randn(batch, encoder.input_samples, device=device) * 0.1

        def loss_of(method: nn.Module = method, waves: torch.Tensor = waves) -> torch.Tensor:
            return method(waves)["loss"]

        flops = step_flops(method, loss_of, device, dtype)
        graphed = args.compile and device.type == "cuda" and mode != "max-autotune-no-cudagraphs"
        if args.compile:
            method.compile_for_training(mode if device.type == "cuda" else None)
        step = training_step(method, loss_of, device, dtype, graphed)
        label = f"{args.recipe} ({recipe.method.name}, front end to optimiser), batch {batch}"
        label += f", {mode}" if args.compile else ", eager"
        rows.append((label, timed(step, device, repeats=args.steps), flops))
        if args.profile:
            print_profile(step, device)

    with torch.no_grad():
        grid = encoder.patch_grid(encoder.spectrogram(waves[:1]).shape[-1])
    tokens = grid[0] * grid[1]
    patch_size = encoder.patch[0] * encoder.patch[1]
    patches = torch.randn(batch, tokens, patch_size, device=device)
    target = torch.randn(batch, tokens, args.width, device=device)
    torch_blocks = plain_vit(args.width, args.depth, args.heads, patch_size).to(device)
    references = {
        f"plain ViT (torch's blocks), {tokens} tokens, batch {batch}": torch_blocks,
        f"the recipe's encoder alone, {tokens} tokens, batch {batch}": EncoderOnly(encoder, grid),
    }
    graphed = args.compile and device.type == "cuda"
    for label, reference in references.items():
        torch._dynamo.reset()
        reference.to(device).train()

        def reference_loss(reference: nn.Module = reference) -> torch.Tensor:
            return nn.functional.mse_loss(reference(patches).float(), target)

        ref_flops = step_flops(reference, reference_loss, device, dtype)
        if args.compile:
            reference.compile(mode="reduce-overhead" if graphed else None)
        ref = training_step(reference, reference_loss, device, dtype, graphed)
        rows.append((label, timed(ref, device, repeats=args.steps), ref_flops))
    return rows


def print_profile(step: Callable[[], None], device: torch.device) -> None:
    """The kernels of five steps, costliest first, with their share of the device's time."""
    activities = [torch.profiler.ProfilerActivity.CPU]
    if device.type == "cuda":
        activities.append(torch.profiler.ProfilerActivity.CUDA)
    with torch.profiler.profile(activities=activities) as profiler:
        for _ in range(5):
            step()
        sync(device)
    sort = "self_cuda_time_total" if device.type == "cuda" else "self_cpu_time_total"
    print(profiler.key_averages().table(sort_by=sort, row_limit=25, max_name_column_width=70))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--recipe", default="mae-vit-cpu")
    parser.add_argument("--width", type=int, default=768)
    parser.add_argument("--depth", type=int, default=12)
    parser.add_argument("--heads", type=int, default=12)
    parser.add_argument("--batch", default="64", help="crops per step; several: 64,256")
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument(
        "--modes", default="reduce-overhead",
        help="torch.compile modes of the recipe's step, the trainer's first; several: "
        "reduce-overhead,max-autotune",
    )  # fmt: skip
    parser.add_argument("--no-compile", dest="compile", action="store_false")
    parser.add_argument(
        "--profile", action="store_true", help="the recipe step's costliest kernels"
    )
    args = parser.parse_args()

    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    dtype = torch.bfloat16 if device.type == "cuda" else torch.float32
    peak = matmul_peak(device, dtype)
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "CPU"
    print(f"device: {name}; {dtype}; compiled: {args.compile}; torch {torch.__version__}")
    print(f"measured matmul peak: {peak / 1e12:.1f} TFLOP/s")
    print(f"ViT: width {args.width}, depth {args.depth}, heads {args.heads}")
    print("| step | ms | model TFLOP/s | share of peak |")
    print("|---|---:|---:|---:|", flush=True)
    for batch in (int(b) for b in args.batch.split(",")):
        for label, seconds, flops in measure(args, batch, device, dtype):
            rate = flops / seconds
            print(f"| {label} | {seconds * 1e3:.1f} | {rate / 1e12:.1f} | {rate / peak:.1%} |",
                  flush=True)  # fmt: skip
    if device.type == "cuda":
        print(f"peak GPU memory allocated: {torch.cuda.max_memory_allocated() / 2**30:.1f} GiB")


if __name__ == "__main__":
    main()
