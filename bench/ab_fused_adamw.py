"""Paired comparison: the trainer's AdamW step fused (one kernel) and unfused, on one recipe.

The recipe's parts are built as the trainer builds them; each round takes one training step
(forward, backward, optimiser) with each optimiser in turn, on the same parameters and the
same batch of noise. Printed: the median optimiser step and the median whole step of each,
over the rounds after two warm-up rounds.

Usage::

    OMP_NUM_THREADS=1 python bench/ab_fused_adamw.py mae-vit-cpu --rounds 12
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

import torch

from musicssl.recipe import Recipe, recipe_path
from musicssl.train import build_parts


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("recipe", help="a masked recipe: its method takes a batch of waveforms")
    parser.add_argument("--rounds", type=int, default=12)
    args = parser.parse_args()
    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "2")))
    recipe = Recipe.load(recipe_path(args.recipe))
    torch.manual_seed(0)
    parts = build_parts(recipe)
    method = parts.method.train()
    params = [p for group in parts.optimizer.param_groups for p in group["params"]]
    optimisers = {
        "fused": torch.optim.AdamW(params, lr=1e-4, fused=True),
        "unfused": torch.optim.AdamW(params, lr=1e-4),
    }
    waves = torch.randn(recipe.train.batch_size, parts.encoder.input_samples) * 0.1
    optimiser_ms: dict[str, list[float]] = {name: [] for name in optimisers}
    step_ms: dict[str, list[float]] = {name: [] for name in optimisers}
    for _ in range(args.rounds):
        for name, optimiser in optimisers.items():
            start = time.perf_counter()
            loss = method(waves)["loss"]
            optimiser.zero_grad(set_to_none=True)
            loss.backward()
            before = time.perf_counter()
            optimiser.step()
            end = time.perf_counter()
            optimiser_ms[name].append(1000 * (end - before))
            step_ms[name].append(1000 * (end - start))
    print(f"{args.recipe}: {sum(p.numel() for p in params):,} parameters, batch "
          f"{recipe.train.batch_size}, {torch.get_num_threads()} thread(s), "
          f"torch {torch.__version__}")  # fmt: skip
    for name in optimisers:
        print(f"{name}: optimiser step {statistics.median(optimiser_ms[name][2:]):.2f} ms, "
              f"whole step {statistics.median(step_ms[name][2:]):.1f} ms")  # fmt: skip


if __name__ == "__main__":
    main()
