import json
import math
from pathlib import Path

import numpy as np
import pytest

from musicssl.errors import MusicSSLError
from musicssl.evaluate import metrics, pitch_frames, protocol
from musicssl.evaluate.protocol import evaluate_task
from musicssl.evaluate.task import Example, Task
from musicssl.spelling import KEYS, PITCH_CLASSES

PROBE_KINDS = ("multiclass", "key", "multilabel", "regression", "tempo", "pitch")
FRAME_HOP = 0.02  # embedding frames; the f0 track has a 0.01 s hop
FRAMES_PER_NOTE = 10


def split_list(sizes: tuple[int, int, int]) -> list[str]:
    return ["train"] * sizes[0] + ["valid"] * sizes[1] + ["test"] * sizes[2]


def synthetic_task(kind: str, root: Path, *, sizes=(240, 120, 240), seed=0, notes=5) -> Task:
    """A task of ``kind`` over made-up names a0.wav, a1.wav, ... (no audio needed)."""
    rng = np.random.default_rng(seed)
    splits = split_list(sizes)
    n = len(splits)
    names = [f"a{i}.wav" for i in range(n)]

    def task(targets, **kwargs) -> Task:
        return Task(kind, kind, root, tuple(map(Example, names, splits, targets)), **kwargs)

    if kind == "multiclass":
        classes = tuple(f"style{i}" for i in range(6))
        return task([classes[i % 6] for i in rng.permutation(n)], classes=classes)
    if kind == "key":  # some flat and some sharp spellings: the protocol must not care
        keys = [k.replace("Db major", "C# major").replace("Eb minor", "D# minor") for k in KEYS]
        return task([keys[i % 24] for i in rng.permutation(n)])
    if kind == "multilabel":
        classes = tuple(f"tag{i}" for i in range(5))
        hot = rng.random((n, 5)) < 0.3
        return task([tuple(c for c, h in zip(classes, row) if h) for row in hot], classes=classes)
    if kind == "regression":
        return task(list(rng.uniform(0, 10, n)))
    if kind == "tempo":
        return task(list(2 ** rng.uniform(math.log2(60), math.log2(180), n)))
    if kind == "pitch":
        targets = []
        for _ in range(n):  # notes of 2 * FRAMES_PER_NOTE f0 values each, 20% unvoiced
            midi = rng.integers(48, 84, notes)
            f0 = np.repeat(440 * 2 ** ((midi - 69) / 12), 2 * FRAMES_PER_NOTE)
            f0 *= 2 ** (rng.uniform(-0.3, 0.3, f0.shape) / 12)  # up to 30 cents off the grid
            f0[rng.random(f0.shape) < 0.2] = 0.0
            targets.append(f0)
        return task(targets, classes=PITCH_CLASSES, f0_hop=0.01)
    raise AssertionError(kind)


def retrieval_task(root: Path, *, copies: bool, groups: int = 80, seed: int = 0) -> Task:
    """copies: one relevant original per degraded query; else groups of 3, query = gallery."""
    rng = np.random.default_rng(seed)
    if copies:
        examples = [Example(f"a{i}.wav", "gallery", i) for i in range(groups)]
        examples += [Example(f"degraded/a{i}.ogg", "query", i) for i in rng.permutation(groups)]
        return Task("copy", "retrieval", root, tuple(examples))
    ids = rng.permutation(np.repeat(np.arange(groups), 3))
    examples = [
        Example(f"a{i}.wav", split, int(group))
        for i, group in enumerate(ids)
        for split in ("query", "gallery")
    ]
    return Task("same", "retrieval", root, tuple(examples))


def frame_times(task: Task, example: Example) -> np.ndarray:
    num_frames = int(len(example.target) * task.f0_hop / FRAME_HOP)
    return np.arange(num_frames) * FRAME_HOP + FRAME_HOP / 2


def random_embeddings(task: Task, *, dim: int = 128, seed: int = 1):
    """Gaussian noise; wide enough that a probe could memorise its training items, so that
    test items leaking into training would lift the score above chance."""
    rng = np.random.default_rng(seed)
    if task.kind == "pitch":
        frames = {}
        for example in task.examples:
            times = frame_times(task, example)
            frames[example.name] = (rng.normal(size=(len(times), dim)), times)
        return {}, frames
    return {name: rng.normal(size=dim).astype(np.float32) for name in task.names}, None


def oracle_embeddings(task: Task, *, noise_dims: int = 8, seed: int = 1):
    """One-hot of the label (of the group; of each frame's pitch class), the target's value
    as one dimension beside noise dimensions (regression), or for tempo a tempogram-like
    profile: Gaussian tuning curves over log2 BPM, one every 0.05 octave."""
    rng = np.random.default_rng(seed)
    examples = task.examples
    if task.kind == "pitch":
        frames = {}
        for example in examples:
            times = frame_times(task, example)
            first = np.rint((times - FRAME_HOP / 2) / task.f0_hop).astype(int)
            f0 = np.maximum(example.target[first], example.target[first + 1])  # its 2 values
            classes = metrics.pitch_class(f0)
            features = np.zeros((len(times), 12), dtype=np.float32)
            features[classes >= 0, classes[classes >= 0]] = 1.0
            frames[example.name] = (features, times)
        return {}, frames
    if task.kind == "multilabel":
        return {
            e.name: np.array([c in e.target for c in task.classes], dtype=np.float32)
            for e in examples
        }, None
    if task.kind == "regression":
        return {
            e.name: np.r_[float(e.target), rng.normal(size=noise_dims)].astype(np.float32)
            for e in examples
        }, None
    if task.kind == "tempo":
        centres = np.arange(5.0, 8.5, 0.05)
        return {
            e.name: np.exp(-0.5 * ((np.log2(e.target) - centres) / 0.05) ** 2).astype(np.float32)
            for e in examples
        }, None
    labels = sorted({str(e.target) for e in examples})
    one_hot = np.eye(len(labels), dtype=np.float32)
    return {e.name: one_hot[labels.index(str(e.target))] for e in examples}, None


def standard_error(result: dict, metric: str) -> float:
    """How far a chance-level score may stray from chance through test-sample noise alone.

    A mean over n independent items of a per-item score in [0, 1] (accuracy, acc1, the MIREX
    key score, AP, RR, recall@k) has variance at most c (1 - c) / n when its mean is c; the
    units are test clips, queries, or notes for pitch (frames of one note share a reference).
    ROC-AUC under chance has variance (n0 + n1 + 1) / (12 n0 n1) (Mann-Whitney); macro F1 is
    treated like accuracy. R2 and MAE have no such bound: the seeds' bootstrap spread alone.
    """
    chance, sizes = result["chance"][metric], result["split_sizes"]
    if metric in ("r2", "mae"):
        return 0.0
    if result["kind"] == "retrieval":
        n = sizes["query"]
    elif result["kind"] == "pitch":
        n = sizes["frames_test"] / (2 * FRAMES_PER_NOTE)  # rows: the f0 values of notes
    else:
        n = sizes["test"]
    if metric == "roc_auc":
        positives = 0.3 * n
        return math.sqrt((n + 1) / (12 * positives * (n - positives)))
    return math.sqrt(chance * (1 - chance) / n)


def all_tasks(root: Path) -> list[Task]:
    tasks = [synthetic_task(kind, root, sizes=(400, 200, 400)) for kind in PROBE_KINDS[:-1]]
    tasks.append(synthetic_task("pitch", root, sizes=(60, 30, 60)))
    retrieval = [retrieval_task(root, copies=copies, groups=120) for copies in (False, True)]
    return tasks + retrieval


def test_random_embeddings_score_at_chance(tmp_path):
    for task in all_tasks(tmp_path):
        vectors, frames = random_embeddings(task)
        result = evaluate_task(task, vectors, frames=frames, seeds=5).to_dict()
        assert set(result["metrics"]) == set(result["chance"]), task.name
        for metric, summary in result["metrics"].items():
            # within 4 standard errors (or 4 bootstrap spreads, if larger): a pass by luck
            # for a biased protocol, or a failure by luck for a sound one, is below 1e-4
            tolerance = 4 * max(summary["std"], standard_error(result, metric))
            assert abs(summary["mean"] - result["chance"][metric]) <= tolerance, (
                task.kind,
                metric,
                summary,
                result["chance"][metric],
            )


def test_oracle_embeddings_score_near_one(tmp_path):
    for task in all_tasks(tmp_path):
        vectors, frames = oracle_embeddings(task)
        result = evaluate_task(task, vectors, frames=frames, seeds=2).to_dict()
        json.dumps(result)  # JSON-ready
        for metric, summary in result["metrics"].items():
            if metric == "mae":
                assert summary["mean"] <= 0.05 * result["chance"]["mae"], summary
            else:
                assert summary["mean"] >= 0.95, (task.kind, metric, summary)
            assert len(summary["values"]) == 2


def test_schema_of_a_probe_task(tmp_path):
    task = synthetic_task("key", tmp_path, sizes=(96, 48, 48))
    vectors, _ = oracle_embeddings(task)
    result = evaluate_task(task, vectors, seeds=3).to_dict()
    assert json.loads(json.dumps(result)) == result
    assert result["name"] == "key" and result["kind"] == "key" and result["main"] == "accuracy"
    assert result["split_sizes"] == {"train": 96, "valid": 48, "test": 48}
    assert set(result["metrics"]) == {"accuracy", "mirex"}
    assert result["chance"]["accuracy"] == pytest.approx(1 / 24)
    assert result["chance"]["mirex"] == pytest.approx(2 / 24)
    assert len(result["metrics"]["accuracy"]["values"]) == 3
    assert result["classes"] == list(KEYS)
    confusion = np.array(result["confusion"])
    assert confusion.shape == (24, 24) and confusion.sum() == 48
    assert np.trace(confusion) == 48  # the oracle is right everywhere
    assert set(result["valid"]) == {spec.label for spec in protocol.GRID}
    assert result["probe"]["type"] in ("linear", "mlp") and result["probe"]["weight_decay"] >= 0
    assert result["probe"]["weight_decay"] == float(result["probe"]["weight_decay"])
    assert 0 <= result["majority"]["accuracy"] <= 1


def test_schema_of_a_retrieval_task(tmp_path):
    task = retrieval_task(tmp_path, copies=False, groups=10)
    vectors, _ = random_embeddings(task)
    result = evaluate_task(task, vectors, seeds=4).to_dict()
    assert json.loads(json.dumps(result)) == result
    assert result["split_sizes"] == {"query": 30, "gallery": 30}
    assert result["probe"] is None and result["main"] == "map"
    assert set(result["metrics"]) == {"map", "mrr", "recall@1", "recall@5", "recall@10"}
    curve = result["curve"]
    assert curve["k"] == list(range(1, 31)) and len(curve["recall"]) == len(curve["chance"]) == 30
    assert np.all(np.diff(curve["recall"]) >= 0) and curve["recall"][-1] == 1.0
    # each query sees 29 items (its own is left out), 2 of them relevant
    assert result["chance"]["map"] == pytest.approx(metrics.retrieval_chance(29, 2)["map"])
    assert curve["chance"][0] == pytest.approx(2 / 29)


def test_queries_without_a_relevant_item_are_left_out(tmp_path):
    examples = (
        Example("a.wav", "query", 0),
        Example("b.wav", "query", 1),
        Example("c.wav", "gallery", 0),
        Example("d.wav", "gallery", 2),
    )
    task = Task("r", "retrieval", tmp_path, examples)
    vectors = {"a.wav": [1.0, 0.0], "b.wav": [0.0, 1.0], "c.wav": [0.0, 1.0], "d.wav": [1, 0]}
    vectors = {name: np.array(v, dtype=np.float32) for name, v in vectors.items()}
    result = evaluate_task(task, vectors, seeds=1).to_dict()
    assert "1 of 2 queries" in result["notes"][0]
    # a's only relevant item, c, ranks second
    assert result["metrics"]["map"]["values"] == [0.5]
    assert result["curve"]["k"] == [1, 2] and result["curve"]["recall"] == [0.0, 1.0]
    assert result["curve"]["chance"] == pytest.approx([0.5, 1.0])


def test_pitch_scores_each_voiced_f0_value_with_the_frame_nearest_it(tmp_path, monkeypatch):
    f0 = np.array([0.0, 440.0, 440.0, 0.0, 261.63, 0, 0, 0, 0, 300.0])
    examples = tuple(Example(f"{s}.wav", s, f0) for s in ("train", "valid", "test"))
    task = Task("p", "pitch", tmp_path, examples, f0_hop=0.01)
    # Voiced values at 0.01, 0.02, 0.04 and 0.09 s. Frame spacings 9, 17, 12, 29 ms: median
    # 14.5 ms. 0.01 and 0.02 s are nearest frame 1 (0.012 s; 0.029 s is 9 ms from 0.02),
    # 0.04 s frame 3; 0.09 s is 20 ms from the last frame, further than 14.5 ms: left out.
    times = np.array([0.003, 0.012, 0.029, 0.041, 0.07])
    features = np.eye(5, dtype=np.float32)
    frames = {e.name: (features, times) for e in examples}
    rows = pitch_frames.voiced_frames(task, frames)
    np.testing.assert_array_equal(rows.x["train"], features[[1, 1, 3]])
    np.testing.assert_array_equal(rows.f0["train"], [440.0, 440.0, 261.63])
    # Test keeps each frame once, and names the frame of each value.
    np.testing.assert_array_equal(rows.x["test"], features)
    np.testing.assert_array_equal(rows.test_rows, [1, 1, 3])
    # The rows are the reference's whatever the frames: as many for a track of coarser ones.
    coarse = {e.name: (np.eye(2, dtype=np.float32), np.array([0.02, 0.07])) for e in examples}
    assert len(pitch_frames.voiced_frames(task, coarse).f0["test"]) == 4
    result = evaluate_task(task, {}, frames=frames, seeds=1).to_dict()
    sizes = result["split_sizes"]
    assert sizes["frames_train"] == sizes["frames_valid"] == sizes["frames_test"] == 3
    assert sizes["train"] == 1 and result["classes"] == list(PITCH_CLASSES)
    assert result["metrics"]["accuracy"]["values"][0] in (0.0, 1 / 3, 2 / 3, 1.0)

    monkeypatch.setattr(pitch_frames, "MAX_FRAMES", 30)
    task = synthetic_task("pitch", tmp_path, sizes=(6, 3, 3))
    _, frames = oracle_embeddings(task)
    result = evaluate_task(task, {}, frames=frames, seeds=1).to_dict()
    assert result["split_sizes"]["frames_train"] == result["split_sizes"]["frames_valid"] == 30
    assert result["split_sizes"]["frames_test"] > 30
    assert any("used 30 of" in note for note in result["notes"])


def test_bad_embeddings_raise(tmp_path):
    task = synthetic_task("multiclass", tmp_path, sizes=(12, 6, 6))
    vectors, _ = random_embeddings(task)
    missing = {k: v for k, v in vectors.items() if k != "a3.wav"}
    with pytest.raises(MusicSSLError, match=r"no embedding for 1 of the 24 files.*a3\.wav"):
        evaluate_task(task, missing)
    with pytest.raises(MusicSSLError, match=r"a5\.wav: shape \(8,\)"):
        evaluate_task(task, {**vectors, "a5.wav": np.zeros(8)})
    with pytest.raises(MusicSSLError, match=r"a2\.wav.*NaN"):
        evaluate_task(task, {**vectors, "a2.wav": np.full(128, np.nan)})
    with pytest.raises(MusicSSLError, match=r"a1\.wav has shape \(2, 128\)"):
        evaluate_task(task, {**vectors, "a1.wav": np.zeros((2, 128))})
    with pytest.raises(MusicSSLError, match="seeds"):
        evaluate_task(task, vectors, seeds=0)
    relabelled = Task("m", "multiclass", tmp_path, task.examples, classes=("style0", "style1"))
    with pytest.raises(MusicSSLError, match="not one of the task's classes"):
        evaluate_task(relabelled, vectors)
    bad_key = Task(
        "k", "key", tmp_path, tuple(Example(e.name, e.split, "H major") for e in task.examples)
    )
    with pytest.raises(MusicSSLError, match="H major"):
        evaluate_task(bad_key, vectors)
    slow = Task(
        "t", "tempo", tmp_path, tuple(Example(e.name, e.split, -5.0) for e in task.examples)
    )
    with pytest.raises(MusicSSLError, match="positive"):
        evaluate_task(slow, vectors)

    pitch = synthetic_task("pitch", tmp_path, sizes=(2, 1, 1))
    with pytest.raises(MusicSSLError, match="needs frame embeddings"):
        evaluate_task(pitch, {})
    _, frames = random_embeddings(pitch)
    features, times = frames["a0.wav"]
    with pytest.raises(MusicSSLError, match=r"a0\.wav: features"):
        evaluate_task(pitch, {}, frames={**frames, "a0.wav": (features, times[:-1])})


def test_tempo_bins_put_every_tempo_within_acc1_of_its_bin_centre():
    from musicssl.evaluate.targets import TEMPO_BIN_WIDTH, tempo_bins

    bpm = np.array([40.0, 240.0])
    centres = tempo_bins(bpm)
    # log2(240 / 40) = 2.585 octaves at 2 * log2(1.04) = 0.1132 octave per bin: 23 bins.
    assert len(centres) == 23
    assert centres[0] == pytest.approx(math.log2(40) + TEMPO_BIN_WIDTH / 2)
    tempi = np.geomspace(40, 240, 2001)
    nearest = 2.0 ** centres[np.abs(np.log2(tempi)[:, None] - centres).argmin(axis=1)]
    assert metrics.tempo_acc1(tempi, nearest) == 1.0


def test_the_spread_over_seeds_is_the_sample_std():
    from musicssl.evaluate.results import MetricSummary

    summary = MetricSummary.of([0.451, 0.398, 0.414])
    mean = (0.451 + 0.398 + 0.414) / 3
    by_hand = (((0.451 - mean) ** 2 + (0.398 - mean) ** 2 + (0.414 - mean) ** 2) / 2) ** 0.5
    assert summary.mean == pytest.approx(mean) and summary.std == pytest.approx(by_hand)
    assert summary.std == pytest.approx(0.02718, abs=1e-5)
    assert MetricSummary.of([0.7]).std == 0.0  # one seed: no spread to speak of
