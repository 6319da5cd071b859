"""The built-in pitch task scored on each layer's frame track of a run, and of its random weights.

``musicssl evaluate RUN --layers all`` scores pitch on every layer of the run, but its
``baseline:random`` on the last layer only. This scores the pitch task (pitch class of voiced
frames, one probe seed) on the frames after each block, for the run and for the same
encoder with random weights side by side, to show where through the depth a pretext task
lets the note under each frame go.

    python bench/pitch_by_layer.py RUN --corpus data/corpus [--threads 2]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch

from musicssl import audio
from musicssl.embed import Model, load
from musicssl.evaluate.baselines import RandomEncoder, build_baseline
from musicssl.evaluate.builtin_tasks import pitch_task
from musicssl.evaluate.protocol import evaluate_task
from musicssl.evaluate.task import Task


def layer_scores(model: Model, task: Task, signals: dict[str, np.ndarray]) -> list[float]:
    """The pitch task's accuracy on the frames after each block of ``model``."""
    scores = []
    for layer in range(model.num_layers):
        frames, vectors = {}, {}
        for name, signal in signals.items():
            embedded = model.embed(signal, model.sample_rate, layers=layer, frames=True)
            assert embedded.frames is not None and embedded.times is not None
            frames[name] = (embedded.frames, embedded.times)
            vectors[name] = embedded.clip
        result = evaluate_task(task, vectors, frames=frames, seeds=1)
        scores.append(result.metrics[result.main].mean)
    return scores


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("run", help="a run folder or checkpoint")
    parser.add_argument("--corpus", default="data/corpus", help="the built-in corpus")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    task = pitch_task(Path(args.corpus))
    trained = load(args.run)
    random = build_baseline("random", reference=args.run)  # as ``--baselines random`` builds it
    assert isinstance(random, RandomEncoder)
    signals = {name: audio.load(task.root / name, sr=trained.sample_rate) for name in task.names}
    print(f"pitch accuracy by layer, {len(signals)} clips")
    for label, model in (("trained", trained), ("random weights", random)):
        scores = layer_scores(model, task, signals)
        print(f"{label:15s} " + " ".join(f"{k}: {s:.3f}" for k, s in enumerate(scores)))


if __name__ == "__main__":
    main()
