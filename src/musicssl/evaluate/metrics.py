"""Metric functions of the evaluation protocol: ``metric(reference, estimate) -> float``.

Every function is pure and takes the ground truth first, as mir_eval does. MIR metrics come
from mir_eval (key weighted score), ranking metrics over classes from
scikit-learn; retrieval ranks with a faiss inner-product index on L2-normalised vectors.
Besides the metrics, this module computes what a random guess scores in expectation
(``*_chance`` functions), which the protocol reports as the chance line.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence, Sized
from typing import Any

import faiss
import mir_eval
import numpy as np
from sklearn import metrics as skm

from musicssl.errors import MusicSSLError
from musicssl.spelling import KEYS

TEMPO_TOLERANCE = 0.04
TEMPO_FACTORS = (1.0, 2.0, 3.0, 1 / 2, 1 / 3)


def _same_length(reference: Sized, estimate: Sized) -> None:
    if len(reference) != len(estimate):
        raise MusicSSLError(
            f"metric: reference has {len(reference)} items but estimate has {len(estimate)}"
        )
    if len(reference) == 0:
        raise MusicSSLError("metric: no items to score")


# -- classification ------------------------------------------------------------------------


def accuracy(reference: Sequence[Any], estimate: Sequence[Any]) -> float:
    """Fraction of items whose estimated label equals the reference label."""
    _same_length(reference, estimate)
    return float(np.mean(np.asarray(reference) == np.asarray(estimate)))


def macro_f1(reference: Sequence[Any], estimate: Sequence[Any]) -> float:
    """F1 averaged over the labels found in the reference or the estimate, unweighted."""
    _same_length(reference, estimate)
    return float(skm.f1_score(reference, estimate, average="macro", zero_division=0.0))


def confusion(
    reference: Sequence[int] | np.ndarray, estimate: Sequence[int] | np.ndarray, *, num_classes: int
) -> list[list[int]]:
    """Counts of (reference class, estimated class) pairs; rows are the reference."""
    _same_length(reference, estimate)
    counts = np.zeros((num_classes, num_classes), dtype=np.int64)
    np.add.at(counts, (np.asarray(reference), np.asarray(estimate)), 1)
    return counts.tolist()


def scorable_classes(reference: np.ndarray) -> np.ndarray:
    """Which columns of a multi-hot reference have both a positive and a negative item.

    Args:
        reference: Shape: (num_items, num_classes), 0/1.

    Returns:
        Shape: (num_classes,), bool. ROC-AUC and PR-AUC are undefined for the other classes.
    """
    positives = np.asarray(reference).sum(axis=0)
    return (positives > 0) & (positives < len(reference))


def _per_class(reference: np.ndarray, estimate: np.ndarray, score) -> float:
    reference, estimate = np.asarray(reference), np.asarray(estimate, dtype=np.float64)
    if reference.ndim != 2 or reference.shape != estimate.shape:
        raise MusicSSLError(
            f"metric: reference {reference.shape} and estimate {estimate.shape} must both be "
            "(num_items, num_classes)"
        )
    keep = scorable_classes(reference)
    if not keep.any():
        raise MusicSSLError("metric: no class has both positive and negative reference items")
    return float(np.mean([score(reference[:, c], estimate[:, c]) for c in np.flatnonzero(keep)]))


def roc_auc_macro(reference: np.ndarray, estimate: np.ndarray) -> float:
    """ROC-AUC averaged over classes; classes without a positive or a negative are skipped.

    Args:
        reference: Shape: (num_items, num_classes), 0/1 labels.
        estimate: Shape: (num_items, num_classes), scores (higher = more likely).
    """
    return _per_class(reference, estimate, skm.roc_auc_score)


def pr_auc_macro(reference: np.ndarray, estimate: np.ndarray) -> float:
    """Average precision averaged over classes, skipping the same classes as ``roc_auc_macro``."""
    return _per_class(reference, estimate, skm.average_precision_score)


# -- regression and tempo ------------------------------------------------------------------


def r2(reference: Sequence[float], estimate: Sequence[float]) -> float:
    """Coefficient of determination (1 = perfect, 0 = as good as the reference mean)."""
    _same_length(reference, estimate)
    return float(skm.r2_score(reference, estimate))


def mae(reference: Sequence[float], estimate: Sequence[float]) -> float:
    """Mean absolute error, in the reference's units."""
    _same_length(reference, estimate)
    return float(skm.mean_absolute_error(reference, estimate))


def _tempo_hits(reference, estimate, factors, tolerance: float) -> np.ndarray:
    _same_length(reference, estimate)
    reference = np.asarray(reference, dtype=np.float64)[:, None] * np.asarray(factors)[None]
    estimate = np.asarray(estimate, dtype=np.float64)[:, None]
    # A relative tolerance on the (scaled) reference, and a hair more so that an estimate at
    # exactly the tolerance, or exactly a factor away, is not lost to rounding.
    return (np.abs(estimate - reference) <= tolerance * reference * (1 + 1e-9)).any(axis=1)


def tempo_acc1(
    reference: Sequence[float], estimate: Sequence[float], *, tolerance: float = TEMPO_TOLERANCE
) -> float:
    """Fraction of tempi (BPM) within ``tolerance`` (relative) of the reference."""
    return float(np.mean(_tempo_hits(reference, estimate, (1.0,), tolerance)))


def tempo_acc2(
    reference: Sequence[float], estimate: Sequence[float], *, tolerance: float = TEMPO_TOLERANCE
) -> float:
    """As ``tempo_acc1``, also accepting the reference times 2, 3, 1/2 or 1/3."""
    return float(np.mean(_tempo_hits(reference, estimate, TEMPO_FACTORS, tolerance)))


# -- key -----------------------------------------------------------------------------------


def key_index(key: str) -> int:
    """Index into ``KEYS`` of a mir_eval key name, whatever its spelling ("Db" = "C#")."""
    try:
        mir_eval.key.validate_key(key)
        semitone, mode = mir_eval.key.split_key_string(key)
    except (ValueError, AttributeError) as error:
        raise MusicSSLError(f"key {key!r} is not a key name like 'F# minor': {error}") from None
    if semitone is None or mode not in ("major", "minor"):
        raise MusicSSLError(f"key {key!r}: a key task needs one of the 24 major/minor keys")
    return semitone + (12 if mode == "minor" else 0)


def key_mirex(reference: Sequence[str], estimate: Sequence[str]) -> float:
    """Mean of the MIREX weighted key score (``mir_eval.key.weighted_score``) over items.

    1 for the right key, 0.5 a fifth above, 0.3 the relative, 0.2 the parallel key, else 0.
    """
    _same_length(reference, estimate)
    return float(np.mean([mir_eval.key.weighted_score(r, e) for r, e in zip(reference, estimate)]))


def key_mirex_chance(reference: Iterable[str], *, classes: Sequence[str] = KEYS) -> float:
    """Expected ``key_mirex`` of a key drawn uniformly from ``classes`` (2/24 for all 24)."""
    return float(
        np.mean([np.mean([mir_eval.key.weighted_score(r, c) for c in classes]) for r in reference])
    )


# -- pitch ---------------------------------------------------------------------------------


def pitch_class(f0: np.ndarray) -> np.ndarray:
    """Nearest equal-tempered pitch class (C = 0) of frequencies in Hz; -1 where f0 <= 0.

    Shape: same as ``f0``.
    """
    f0 = np.asarray(f0, dtype=np.float64)
    voiced = f0 > 0
    midi = 69 + 12 * np.log2(np.where(voiced, f0, 440.0) / 440.0)
    return np.where(voiced, np.rint(midi).astype(np.int64) % 12, -1)


def pitch_class_accuracy(reference: np.ndarray, estimate: np.ndarray) -> float:
    """Fraction of voiced frames whose estimated pitch class is the reference's.

    Args:
        reference: f0 in Hz of voiced frames. Shape: (num_frames,).
        estimate: pitch class 0..11 (C = 0) per frame. Shape: (num_frames,).
    """
    reference = np.asarray(reference, dtype=np.float64)
    _same_length(reference, estimate)
    if (reference <= 0).any():
        raise MusicSSLError("pitch_class_accuracy: reference frames must all be voiced (f0 > 0)")
    return float(np.mean(pitch_class(reference) == np.asarray(estimate)))


# -- retrieval -----------------------------------------------------------------------------


def search(query: np.ndarray, gallery: np.ndarray, *, k: int | None = None) -> np.ndarray:
    """Gallery indices ranked by cosine similarity to each query (faiss ``IndexFlatIP``).

    Args:
        query: Shape: (num_queries, dim).
        gallery: Shape: (num_gallery, dim).
        k: how many to rank (default: the whole gallery).

    Returns:
        Shape: (num_queries, k), int64, best first.
    """
    if query.ndim != 2 or gallery.ndim != 2 or query.shape[1] != gallery.shape[1]:
        raise MusicSSLError(
            f"search: query {query.shape} and gallery {gallery.shape} must be (n, dim) alike"
        )
    query = np.ascontiguousarray(query, dtype=np.float32).copy()
    gallery = np.ascontiguousarray(gallery, dtype=np.float32).copy()
    faiss.normalize_L2(query)
    faiss.normalize_L2(gallery)
    index = faiss.IndexFlatIP(gallery.shape[1])
    index.add(gallery)
    _, ranking = index.search(query, min(k or len(gallery), len(gallery)))
    return ranking.astype(np.int64)


def ranked_relevance(
    ranking: np.ndarray,
    query_groups: Sequence[Any],
    gallery_groups: Sequence[Any],
    *,
    query_names: Sequence[str] | None = None,
    gallery_names: Sequence[str] | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Turn a ranking into relevance flags, leaving out each query's own item.

    Args:
        ranking: gallery indices, best first. Shape: (num_queries, k).
        query_groups, gallery_groups: group id per query / gallery item; an item is relevant
            to a query when their groups are equal and their names (when given) differ.

    Returns:
        relevance: Shape: (num_queries, k), bool, with the query's own item removed and the
            row padded with False at the end.
        num_relevant: relevant gallery items per query. Shape: (num_queries,).
    """
    gallery_array = np.asarray(gallery_groups, dtype=object)
    relevance = np.zeros(ranking.shape, dtype=bool)
    num_relevant = np.zeros(len(ranking), dtype=np.int64)
    gallery_position = {name: i for i, name in enumerate(gallery_names or ())}
    for q, row in enumerate(ranking):
        own = gallery_position.get(query_names[q], -1) if query_names is not None else -1
        same = gallery_array == query_groups[q]
        if own >= 0:
            same[own] = False
        num_relevant[q] = same.sum()
        kept = row[(row != own) & (row >= 0)]
        relevance[q, : len(kept)] = same[kept]
    return relevance, num_relevant


def retrieval_per_query(
    relevance: np.ndarray, *, num_relevant: np.ndarray | None = None
) -> dict[str, np.ndarray]:
    """Average precision, reciprocal rank and first-hit rank of each query.

    Args:
        relevance: whether the item at each rank is relevant. Shape: (num_queries, k).
        num_relevant: relevant items per query in the whole gallery (default: the row sums,
            right when the ranking covers the whole gallery). Shape: (num_queries,).

    Returns:
        "ap", "rr" (float, shape (num_queries,)) and "first_hit" (1-based rank of the first
        relevant item, ``k + 1`` when none was ranked).
    """
    relevance = np.asarray(relevance, dtype=bool)
    if num_relevant is None:
        num_relevant = relevance.sum(axis=1)
    num_relevant = np.asarray(num_relevant)
    if (num_relevant <= 0).any():
        raise MusicSSLError("retrieval: every query needs at least one relevant item")
    ranks = np.arange(1, relevance.shape[1] + 1)
    precision = np.cumsum(relevance, axis=1) / ranks
    ap = (precision * relevance).sum(axis=1) / num_relevant
    first_hit = np.where(relevance.any(axis=1), relevance.argmax(axis=1) + 1, len(ranks) + 1)
    rr = np.where(first_hit <= len(ranks), 1.0 / first_hit, 0.0)
    return {"ap": ap, "rr": rr, "first_hit": first_hit}


def retrieval_metrics(
    relevance: np.ndarray,
    *,
    num_relevant: np.ndarray | None = None,
    ks: Sequence[int] = (1, 5, 10),
) -> dict[str, float]:
    """mAP, MRR and recall@k over queries.

    recall@k is the fraction of queries with at least one relevant item in the top k.

    Args:
        relevance: whether the item at each rank is relevant. Shape: (num_queries, k).
        num_relevant: see ``retrieval_per_query``.
    """
    per_query = retrieval_per_query(relevance, num_relevant=num_relevant)
    scores = {"map": float(per_query["ap"].mean()), "mrr": float(per_query["rr"].mean())}
    for k in ks:
        scores[f"recall@{k}"] = float(np.mean(per_query["first_hit"] <= k))
    return scores


def recall_curve(relevance: np.ndarray, *, max_k: int) -> np.ndarray:
    """recall@k for k = 1..max_k. Shape: (max_k,)."""
    hit = np.cumsum(np.asarray(relevance, dtype=bool)[:, :max_k], axis=1) > 0
    return hit.mean(axis=0)


def retrieval_chance(
    num_items: int, num_relevant: int, *, ks: Sequence[int] = (1, 5, 10)
) -> dict[str, float]:
    """Expected AP, RR and recall@k of one query under a uniformly random ranking.

    Exact: with R relevant among N ranked items, position i is relevant with probability R/N,
    and given that, the expected precision there is (1 + (i - 1)(R - 1)/(N - 1)) / i, so
    E[AP] = (H_N + (R - 1)/(N - 1) (N - H_N)) / N, H_N the N-th harmonic number. The first hit
    is at i with probability C(N - i, R - 1) / C(N, R); recall@k misses with C(N - R, k) / C(N, k).
    """
    n, r = num_items, num_relevant
    if not 0 < r <= n:
        raise MusicSSLError(f"retrieval_chance: need 0 < relevant ({r}) <= items ({n})")
    harmonic = float(np.sum(1.0 / np.arange(1, n + 1)))
    ap = (harmonic + ((r - 1) / (n - 1) if n > 1 else 0.0) * (n - harmonic)) / n
    log_total = _log_comb(n, r)
    rr = sum(math.exp(_log_comb(n - i, r - 1) - log_total) / i for i in range(1, n - r + 2))
    scores = {"map": ap, "mrr": rr}
    for k in ks:
        miss = math.exp(_log_comb(n - r, k) - _log_comb(n, k)) if k <= n - r else 0.0
        scores[f"recall@{k}"] = 1.0 - miss
    return scores


def _log_comb(n: int, k: int) -> float:
    return math.lgamma(n + 1) - math.lgamma(k + 1) - math.lgamma(n - k + 1)


def macro_f1_chance(reference: Sequence[Any] | np.ndarray, *, num_classes: int) -> float:
    """Approximate expected macro F1 of labels drawn uniformly from ``num_classes``.

    A class of reference frequency q, guessed with probability 1/C, has precision q and recall
    1/C in expectation; its F1 is taken as 2 q (1/C) / (q + 1/C) (a ratio of expectations).
    """
    _, counts = np.unique(np.asarray(reference), return_counts=True)
    q = np.zeros(num_classes)
    q[: len(counts)] = counts / counts.sum()
    guess = 1.0 / num_classes
    # Classes missing from the reference score 0, as sklearn counts every guessed label.
    return float(np.mean(2 * q * guess / (q + guess)))
