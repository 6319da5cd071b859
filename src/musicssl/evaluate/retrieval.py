"""Retrieval scoring: gallery items ranked by cosine similarity to each query, no probe.

Each seed scores a bootstrap resample of the queries. Chance is the exact expectation of each
metric under a uniformly random ranking, averaged over the queries.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from musicssl.errors import MusicSSLError
from musicssl.evaluate import metrics
from musicssl.evaluate.task import Task

RECALL_KS = (1, 5, 10)
CURVE_MAX_K = 50


@dataclass
class RetrievalScores:
    """Per metric (map, mrr, recall@k), one value per seed; chance; the recall@k curve."""

    values: dict[str, list[float]]
    chance: dict[str, float]
    notes: list[str]
    split_sizes: dict[str, int]
    # "k", "recall" and "chance": lists over k = 1 .. min(CURVE_MAX_K, gallery size)
    curve: dict[str, Any]


def score_retrieval(task: Task, vectors: dict[str, np.ndarray], *, seeds: int) -> RetrievalScores:
    """Rank the gallery for each query and score the rankings over ``seeds`` resamples.

    Args:
        task: a retrieval task, with "query" and "gallery" splits.
        vectors: a checked clip vector per name, shape (dim,).
        seeds: bootstrap resamples of the queries.

    Raises:
        MusicSSLError: no query has a relevant gallery item.
    """
    queries, gallery = task.split("query"), task.split("gallery")
    query_names = [e.name for e in queries]
    gallery_names = [e.name for e in gallery]
    ranking = metrics.search(
        np.stack([vectors[n] for n in query_names]), np.stack([vectors[n] for n in gallery_names])
    )
    relevance, num_relevant = metrics.ranked_relevance(
        ranking,
        [e.target for e in queries],
        [e.target for e in gallery],
        query_names=query_names,
        gallery_names=gallery_names,
    )
    answerable = num_relevant > 0
    if not answerable.any():
        raise MusicSSLError(f"task {task.name}: no query has a relevant gallery item")
    notes = []
    if not answerable.all():
        notes.append(
            f"{int((~answerable).sum())} of {len(queries)} queries have no relevant gallery "
            "item and are left out"
        )
    relevance, num_relevant = relevance[answerable], num_relevant[answerable]
    own = np.array([name in set(gallery_names) for name in query_names])[answerable]
    ranked = len(gallery) - own.astype(np.int64)  # a query's own item is never ranked

    values: dict[str, list[float]] = {}
    for seed in range(seeds):
        rows = np.random.default_rng(seed).integers(0, len(relevance), len(relevance))
        scores = metrics.retrieval_metrics(
            relevance[rows], num_relevant=num_relevant[rows], ks=RECALL_KS
        )
        for metric, value in scores.items():
            values.setdefault(metric, []).append(value)

    max_k = min(CURVE_MAX_K, len(gallery))
    curve_ks = tuple(range(1, max_k + 1))
    ks = tuple(sorted(set(curve_ks) | set(RECALL_KS)))
    expected = [
        metrics.retrieval_chance(int(n), int(r), ks=ks) for n, r in zip(ranked, num_relevant)
    ]

    def mean_expected(metric: str) -> float:
        return float(np.mean([e[metric] for e in expected]))

    chance = {m: mean_expected(m) for m in ("map", "mrr", *[f"recall@{k}" for k in RECALL_KS])}
    sizes = {"query": len(queries), "gallery": len(gallery)}
    curve = {
        "k": list(curve_ks),
        "recall": [float(v) for v in metrics.recall_curve(relevance, max_k=max_k)],
        "chance": [mean_expected(f"recall@{k}") for k in curve_ks],
    }
    return RetrievalScores(values, chance, notes, sizes, curve)
