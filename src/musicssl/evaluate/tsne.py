"""A 2-D map of a task's test embeddings (t-SNE), drawn in the report as a picture.

The map is for looking at, not for measuring: it shows whether the clips of one label gather
together. scikit-learn is imported inside the function that needs it.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from musicssl.errors import MusicSSLError
from musicssl.evaluate.results import EmbeddingMap
from musicssl.evaluate.task import Task


def task_map(
    task: Task, names: Sequence[str], vectors: np.ndarray, *, seed: int = 0
) -> EmbeddingMap | None:
    """The map of ``task``'s test clips that have a vector; None when none has.

    Args:
        task: a task with a test split (its targets label the points).
        names: the audio name of each row of ``vectors``.
        vectors: Shape: (len(names), dim).
        seed: seeds the map (see ``embedding_map``).
    """
    index = {name: row for row, name in enumerate(names)}
    test = [example for example in task.split("test") if example.name in index]
    if not test:
        return None
    points = embedding_map(vectors[[index[example.name] for example in test]], seed=seed)
    return EmbeddingMap(task.name, points, tuple(str(example.target) for example in test))


def embedding_map(vectors: np.ndarray, *, seed: int = 0) -> np.ndarray:
    """A 2-D t-SNE map of embeddings, for looking at, not for measuring.

    Vectors are standardised per dimension and reduced to 50 dimensions by PCA before t-SNE,
    which keeps t-SNE fast and less sensitive to noisy dimensions. About 3 s for 324 vectors
    of 512 dimensions on 2 cores.

    Args:
        vectors: one embedding per row. Shape: (num_items, dim).
        seed: seeds PCA's solver and t-SNE.

    Returns:
        The map. Shape: (num_items, 2), float32.
    """
    from sklearn.decomposition import PCA
    from sklearn.manifold import TSNE

    vectors = np.asarray(vectors, dtype=np.float64)
    if vectors.ndim != 2 or vectors.shape[0] < 1:
        raise MusicSSLError(f"embedding_map: expected (num_items, dim), got {vectors.shape}")
    if not np.isfinite(vectors).all():
        raise MusicSSLError("embedding_map: the embeddings hold NaN or infinite values")
    num_items, dim = vectors.shape
    std = vectors.std(axis=0)
    standard = (vectors - vectors.mean(axis=0)) / np.where(std > 0, std, 1.0)
    if num_items < 4 or dim < 2 or not np.ptp(standard, axis=0).any():
        # t-SNE needs perplexity < num_items, and its PCA start two varying dimensions; such
        # degenerate inputs are shown as they are.
        flat = standard[:, :2]
        return np.pad(flat, ((0, 0), (0, 2 - flat.shape[1]))).astype(np.float32)
    reduced = PCA(n_components=min(50, num_items, dim), random_state=seed).fit_transform(standard)
    tsne = TSNE(
        n_components=2,
        perplexity=min(30.0, (num_items - 1) / 3),
        init="pca",
        learning_rate="auto",
        random_state=seed,
        # Exact gradients beat Barnes-Hut below about a thousand points, and 500 iterations
        # settle a map of a few hundred clips: together about 3x faster than the defaults.
        method="exact" if num_items <= 1000 else "barnes_hut",
        max_iter=500,
    )
    return tsne.fit_transform(reduced).astype(np.float32)
