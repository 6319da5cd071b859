"""Tests of evaluate.tsne: the 2-D map keeps clusters, is deterministic, and checks its input."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pytest

from musicssl.errors import MusicSSLError
from musicssl.evaluate.task import Example, Task
from musicssl.evaluate.tsne import embedding_map, task_map


def test_embedding_map_separates_clusters_quickly() -> None:
    rng = np.random.default_rng(0)
    labels = np.arange(324) % 6
    centres = rng.normal(0, 1, (6, 512))
    vectors = (centres[labels] + 0.7 * rng.normal(0, 1, (324, 512))).astype(np.float32)
    start = time.process_time()  # CPU time of all threads: robust to other jobs' load
    points = embedding_map(vectors, seed=0)
    elapsed = time.process_time() - start
    assert points.shape == (324, 2) and points.dtype == np.float32
    assert np.isfinite(points).all()
    assert elapsed < 15.0
    # In the map, a point's nearest neighbour carries its label (the clusters survive).
    distances = np.linalg.norm(points[:, None] - points[None], axis=-1)
    np.fill_diagonal(distances, np.inf)
    agreement = (labels[distances.argmin(axis=1)] == labels).mean()
    assert agreement > 0.95


def test_embedding_map_is_deterministic() -> None:
    vectors = np.random.default_rng(1).normal(size=(40, 16))
    np.testing.assert_array_equal(embedding_map(vectors, seed=3), embedding_map(vectors, seed=3))


def test_embedding_map_small_and_bad_inputs() -> None:
    assert embedding_map(np.ones((3, 4))).shape == (3, 2)
    assert embedding_map(np.random.default_rng(0).normal(size=(8, 1))).shape == (8, 2)
    with pytest.raises(MusicSSLError, match="num_items, dim"):
        embedding_map(np.ones(5))
    with pytest.raises(MusicSSLError, match="NaN"):
        embedding_map(np.full((5, 3), np.nan))


def test_task_map_has_one_point_per_embedded_test_clip(tmp_path: Path) -> None:
    examples = tuple(
        Example(f"{split}{i}.wav", split, f"class{i % 2}")
        for split in ("train", "valid", "test")
        for i in range(6)
    )
    task = Task("style", "multiclass", tmp_path, examples)
    names = [f"test{i}.wav" for i in range(5)] + ["train0.wav"]  # test5 was not embedded
    vectors = np.random.default_rng(0).normal(size=(len(names), 8))
    found = task_map(task, names, vectors)
    assert found is not None and found.task == "style"
    assert found.points.shape == (5, 2)
    assert found.labels == ("class0", "class1", "class0", "class1", "class0")
    assert task_map(task, ["train0.wav"], vectors[:1]) is None
