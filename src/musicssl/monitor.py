"""A fast probe during pretraining: is the representation getting better, not only the loss?

Every few hundred steps the trainer embeds a fixed set of validation clips (the same crops each
time, kept in memory) with the encoder being trained, and scores two cheap read-outs of one
label by cross-validation over those clips: a k-nearest-neighbour vote (cosine, k = 5) and a
logistic regression. Folds are drawn by piece when the rows name one, so excerpts of a piece
never sit on both sides. The numbers are logged beside the loss; they are a trend to watch,
not the evaluation protocol (``musicssl evaluate`` is).
"""

from __future__ import annotations

import hashlib

import numpy as np
import torch
from torch import nn

from musicssl.errors import MusicSSLError
from musicssl.sampling import pcm_to_float
from musicssl.store import SampleStore


class ProbeMonitor:
    """k-NN and linear accuracy of ``label`` on validation clips of a store.

    Args:
        store: the training store; its rows must hold ``split`` and ``label``.
        label: the row field to predict (e.g. "style").
        num_samples: crop length the encoder takes.
        max_clips: at most this many validation clips (evenly spread), to bound the cost.
        windows: crops per clip, evenly spaced, averaged into one vector.
        folds: cross-validation folds.

    Raises:
        MusicSSLError: the store has no validation clips with that label, or only one class.
    """

    def __init__(
        self,
        store: SampleStore,
        *,
        label: str,
        num_samples: int,
        max_clips: int = 256,
        windows: int = 2,
        folds: int = 4,
    ) -> None:
        rows = [
            (i, row)
            for i, row in enumerate(store.rows)
            if row.get("split") == "valid" and row.get(label) not in (None, "")
        ]
        if len(rows) > max_clips:
            keep = np.linspace(0, len(rows) - 1, max_clips).round().astype(int)
            rows = [rows[k] for k in keep]
        classes = sorted({str(row[label]) for _, row in rows})
        if len(classes) < 2:
            valid = sum(row.get("split") == "valid" for row in store.rows)
            raise MusicSSLError(
                f"{store.path}: the fast probe needs validation clips (split 'valid') with at "
                f"least two values of '{label}'; {len(rows)} of its {valid} validation clips "
                f"have one (classes {classes}); train.probe_label names another label (give "
                "your own with `musicssl data index FOLDER --labels TABLE`), "
                "train.probe_every=0 turns the probe off"
            )
        self.label = label
        self.targets = np.array([classes.index(str(row[label])) for _, row in rows])
        groups = [str(row.get("piece_id", i)) for i, row in rows]
        self.fold = np.array([_stable_hash(group) % folds for group in groups])
        # A fold holds out whole pieces: a class only one fold holds is never scorable.
        spans = [len(set(self.fold[self.targets == c])) for c in range(len(classes))]
        self.scorable = max(spans) >= 2
        if not self.scorable:
            print("note: the fast probe scores nothing (no probe_knn or probe_linear in "
                  f"metrics.csv): no '{label}' class has validation clips of pieces in two of "
                  "its folds", flush=True)  # fmt: skip
        crops = []
        for index, _ in rows:
            length = store.num_samples(index)
            starts = np.linspace(0, max(0, length - num_samples), windows).round().astype(int)
            crops.append(np.stack([store.crop_pcm(index, int(s), num_samples) for s in starts]))
        self.crops = torch.from_numpy(np.stack(crops))  # (clips, windows, num_samples) int16

    @torch.no_grad()
    def __call__(self, encoder: nn.Module, *, batch_size: int = 64) -> dict[str, float]:
        """Score the encoder now. Returns ``{"probe_knn": acc, "probe_linear": acc}``, each
        over the held-out clips of classes the other folds hold (empty when none is)."""
        from sklearn.linear_model import LogisticRegression

        if not self.scorable:
            return {}
        was_training = encoder.training
        encoder.eval()
        device = next(encoder.parameters()).device
        clips, windows, num_samples = self.crops.shape
        flat = self.crops.reshape(clips * windows, num_samples)
        vectors = []
        for start in range(0, len(flat), batch_size):
            x = pcm_to_float(flat[start : start + batch_size].to(device))
            vectors.append(encoder(x).float().cpu())
        encoder.train(was_training)
        embeddings = torch.cat(vectors).reshape(clips, windows, -1).mean(1).numpy()
        # Dimensions that barely vary are not blown up into noise: the floor is relative.
        spread = embeddings.std(0)
        embeddings = (embeddings - embeddings.mean(0)) / (spread + 1e-2 * spread.mean() + 1e-12)
        knn_hits, linear_hits, count = 0, 0, 0
        for fold in np.unique(self.fold):
            train = self.fold != fold
            test = (self.fold == fold) & np.isin(self.targets, self.targets[train])
            if len(np.unique(self.targets[train])) < 2 or not test.any():
                continue
            knn_hits += int(
                (
                    _knn(embeddings[train], self.targets[train], embeddings[test])
                    == self.targets[test]
                ).sum()
            )
            probe = LogisticRegression(C=0.1, max_iter=300).fit(
                embeddings[train], self.targets[train]
            )
            linear_hits += int((probe.predict(embeddings[test]) == self.targets[test]).sum())
            count += int(test.sum())
        return {"probe_knn": knn_hits / max(count, 1), "probe_linear": linear_hits / max(count, 1)}


def _knn(train: np.ndarray, targets: np.ndarray, test: np.ndarray, k: int = 5) -> np.ndarray:
    """Majority vote of the k most cosine-similar training vectors (ties: nearest first)."""
    a = train / (np.linalg.norm(train, axis=1, keepdims=True) + 1e-9)
    b = test / (np.linalg.norm(test, axis=1, keepdims=True) + 1e-9)
    nearest = np.argsort(-(b @ a.T), axis=1)[:, :k]
    votes = np.zeros((len(test), targets.max() + 1))
    for rank in range(nearest.shape[1]):
        # A slightly larger weight for closer neighbours breaks ties towards them.
        np.add.at(votes, (np.arange(len(test)), targets[nearest[:, rank]]), 1.0 - 1e-3 * rank)
    return votes.argmax(1)


def _stable_hash(text: str) -> int:
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "little")
