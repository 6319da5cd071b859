"""Which degradation costs a run its degraded-copy search, beside its random weights.

Each test clip of the built-in corpus is degraded one way at a time (the ``degraded_copy``
chain's speed change, low-pass, white noise and gain, each drawn from the chain's own ranges)
and searched for among the clean test clips by cosine similarity of the clip embeddings; the
score is the mean reciprocal rank of the original. For a spectrogram ViT it also scores, with
noise alone, the mean token of each frequency row of patches on its own, and how far the
noise moves that row's token relative to its spread across clips: the rows whose tokens
follow the noise are the ones that drag the clip embedding. Last, for any encoder, how alike
the noise's move of the clip embedding is from clip to clip (mean cosine between the moves of
two clips): a move shared by every clip is a direction the encoder gives to noise itself.

    python bench/copy_by_degradation.py RUN --corpus data/corpus [--clips 324] [--threads 2]
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from musicssl import audio, checkpoint
from musicssl.embed import load
from musicssl.encoders import SpectrogramViT
from musicssl.evaluate import degrade
from musicssl.evaluate.baselines import RandomEncoder
from musicssl.evaluate.builtin_tasks import degraded_copy_task

SR = 16000
Degradation = Callable[[np.ndarray, np.random.Generator], np.ndarray]
DEGRADATIONS: dict[str, Degradation] = {
    "speed": lambda x, rng: degrade.shift_pitch(
        x, sr=SR, semitones=rng.uniform(*degrade.SEMITONES)
    ),
    "low-pass": lambda x, rng: degrade.low_pass(
        x, sr=SR, cutoff_hz=rng.uniform(*degrade.CUTOFF_HZ)
    ),
    "noise": lambda x, rng: degrade.add_noise(x, snr_db=rng.uniform(*degrade.SNR_DB), rng=rng),
    "gain": lambda x, rng: degrade.apply_gain(x, gain_db=rng.uniform(*degrade.GAIN_DB))[0],
}


def mean_reciprocal_rank(queries: np.ndarray, gallery: np.ndarray) -> float:
    """Query i's original is gallery item i; cosine similarity ranks the gallery."""
    q = queries / np.linalg.norm(queries, axis=1, keepdims=True)
    g = gallery / np.linalg.norm(gallery, axis=1, keepdims=True)
    similarity = q @ g.T
    ahead = (similarity > np.diag(similarity)[:, None]).sum(axis=1)
    return float((1.0 / (ahead + 1)).mean())


def windows(x: np.ndarray, size: int) -> torch.Tensor:
    """The clip cut into whole windows (at least one, zero-padded). Shape: (W, size)."""
    count = max(1, len(x) // size)
    x = np.pad(x, (0, max(0, count * size - len(x))))
    return torch.from_numpy(x[: count * size].reshape(count, size).astype(np.float32))


@torch.no_grad()
def clip_vector(encoder: torch.nn.Module, x: np.ndarray) -> np.ndarray:
    return encoder(windows(x, encoder.input_samples)).mean(dim=0).numpy()


@torch.no_grad()
def row_vectors(vit: SpectrogramViT, x: np.ndarray) -> np.ndarray:
    """The last layer's mean token of each frequency row of patches. Shape: (rows, width)."""
    spec = vit.spectrogram(windows(x, vit.input_samples))
    rows, cols = vit.patch_grid(spec.shape[-1])
    tokens = vit.forward_tokens(vit.embed_patches(spec))  # (W, rows * cols, width)
    return tokens.reshape(tokens.shape[0], rows, cols, -1).mean(dim=(0, 2)).numpy()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("run", help="a run folder or checkpoint")
    parser.add_argument("--corpus", default="data/corpus", help="the built-in corpus")
    parser.add_argument("--clips", type=int, default=None, help="first N test clips (all)")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    task = degraded_copy_task(Path(args.corpus), progress=False)
    names = [e.name for e in task.examples if e.split == "gallery"][: args.clips]
    clean = [audio.load(task.root / name, sr=SR) for name in names]
    copies = {
        kind: [fn(x, np.random.default_rng(i)) for i, x in enumerate(clean)]
        for kind, fn in DEGRADATIONS.items()
    }
    spec = checkpoint.encoder_spec(args.run)
    encoders = {
        "trained": load(args.run).encoder,
        "random weights": RandomEncoder(spec["name"], spec["options"]).encoder.eval(),
    }
    print(f"{args.run}, {len(clean)} test clips: mean reciprocal rank of the original")
    print("| weights | " + " | ".join(DEGRADATIONS) + " |")
    print("|---|" + "---:|" * len(DEGRADATIONS))
    for label, encoder in encoders.items():
        gallery = np.stack([clip_vector(encoder, x) for x in clean])
        scores = [
            mean_reciprocal_rank(np.stack([clip_vector(encoder, x) for x in copies[kind]]), gallery)
            for kind in DEGRADATIONS
        ]
        print(f"| {label} | " + " | ".join(f"{s:.3f}" for s in scores) + " |", flush=True)
    print("\nnoise alone: the clip embedding's move, over its spread across clips; how alike")
    print("the moves of two clips are (mean cosine)")
    for label, encoder in encoders.items():
        gallery = np.stack([clip_vector(encoder, x) for x in clean])
        moves = np.stack([clip_vector(encoder, x) for x in copies["noise"]]) - gallery
        spread = np.linalg.norm(gallery - gallery.mean(axis=0), axis=1).mean()
        unit = moves / np.linalg.norm(moves, axis=1, keepdims=True)
        alike = (unit @ unit.T)[np.triu_indices(len(unit), 1)].mean()
        size = np.linalg.norm(moves, axis=1).mean() / spread
        print(f"{label}: move / spread {size:.2f}, cosine between moves {alike:.2f}", flush=True)
    if not isinstance(encoders["trained"], SpectrogramViT):
        return
    print("\nnoise alone, by frequency row of patches (row 0 lowest): MRR / movement over spread")
    for label, encoder in encoders.items():
        assert isinstance(encoder, SpectrogramViT)
        gallery = np.stack([row_vectors(encoder, x) for x in clean])  # (N, rows, width)
        noisy = np.stack([row_vectors(encoder, x) for x in copies["noise"]])
        spread = gallery.std(axis=0).mean(axis=-1)  # (rows,)
        movement = np.linalg.norm(noisy - gallery, axis=-1).mean(axis=0)
        ranks = [mean_reciprocal_rank(noisy[:, r], gallery[:, r]) for r in range(len(spread))]
        cells = [f"{rank:.2f} / {move:.1f}" for rank, move in zip(ranks, movement / spread)]
        print(f"{label}: " + " | ".join(cells), flush=True)


if __name__ == "__main__":
    sys.exit(main())
