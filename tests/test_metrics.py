import itertools

import mir_eval
import numpy as np
import pytest

from musicssl.errors import MusicSSLError
from musicssl.evaluate import metrics
from musicssl.spelling import KEYS


def test_accuracy_and_macro_f1_by_hand():
    assert metrics.accuracy(["a", "b", "c", "d"], ["a", "b", "x", "d"]) == 0.75
    # class 0: precision 1, recall 1/2, F1 2/3; class 1: precision 2/3, recall 1, F1 4/5
    assert metrics.macro_f1([0, 0, 1, 1], [0, 1, 1, 1]) == pytest.approx((2 / 3 + 4 / 5) / 2)
    with pytest.raises(MusicSSLError, match="3 items but estimate has 2"):
        metrics.accuracy([1, 2, 3], [1, 2])


def test_confusion_rows_are_the_reference():
    counts = metrics.confusion([0, 0, 1, 2], [0, 1, 1, 1], num_classes=3)
    assert counts == [[1, 1, 0], [0, 1, 0], [0, 1, 0]]


def test_auc_skips_classes_without_both_outcomes():
    reference = np.array([[1, 1, 1], [0, 1, 0], [1, 1, 1], [0, 1, 0]])
    estimate = np.array([[0.9, 0.1, 0.8], [0.8, 0.2, 0.1], [0.7, 0.3, 0.9], [0.1, 0.4, 0.2]])
    assert metrics.scorable_classes(reference).tolist() == [True, False, True]
    # class 0: positives {0.9, 0.7} beat negatives {0.8, 0.1} in 3 of 4 pairs; class 2: 4 of 4
    assert metrics.roc_auc_macro(reference, estimate) == pytest.approx((0.75 + 1.0) / 2)
    # class 0 ranks relevant, irrelevant, relevant: AP = (1 + 2/3) / 2; class 2: AP = 1
    assert metrics.pr_auc_macro(reference, estimate) == pytest.approx((5 / 6 + 1.0) / 2)
    with pytest.raises(MusicSSLError, match="no class"):
        metrics.roc_auc_macro(np.ones((3, 2)), np.zeros((3, 2)))


def test_regression_metrics_by_hand():
    # residuals (0, 0, 1): SS_res = 1, SS_tot = 2
    assert metrics.r2([1.0, 2.0, 3.0], [1.0, 2.0, 4.0]) == pytest.approx(0.5)
    assert metrics.mae([1.0, 2.0, 3.0], [1.0, 2.0, 4.0]) == pytest.approx(1 / 3)


def test_tempo_accuracies_at_the_edges():
    reference = [100.0] * 6
    estimate = [104.0, 104.5, 200.0, 100 / 3, 150.0, 52.0]
    # 104 is exactly 4% off; 104.5 is not. 200 = x2, 33.3 = x1/3, 52 = x1/2 + 4%; 150 = x1.5.
    assert metrics.tempo_acc1(reference, estimate) == pytest.approx(1 / 6)
    assert metrics.tempo_acc2(reference, estimate) == pytest.approx(4 / 6)
    assert metrics.tempo_acc2([100.0], [300.0]) == 1.0
    assert metrics.tempo_acc2([100.0], [207.9]) == 1.0  # within 4% of 200
    assert metrics.tempo_acc2([100.0], [209.0]) == 0.0


def test_key_scores_follow_mirex_weights():
    reference = ["C major"] * 5 + ["A minor"]
    estimate = ["C major", "G major", "A minor", "C minor", "D major", "C major"]
    weights = [1.0, 0.5, 0.3, 0.2, 0.0, 0.3]
    assert metrics.key_mirex(reference, estimate) == pytest.approx(np.mean(weights))


def test_key_index_and_uniform_chance():
    assert len(set(KEYS)) == 24
    assert [metrics.key_index(k) for k in KEYS] == list(range(24))
    assert metrics.key_index("Eb minor") == metrics.key_index("D# minor") == 15
    # every key has exactly one fifth above, one relative and one parallel key
    chance = (1 + 0.5 + 0.3 + 0.2) / 24
    assert metrics.key_mirex_chance(["F# major", "Bb minor"]) == pytest.approx(chance)
    for bad in ("H major", "C dorian", "X", "C"):
        with pytest.raises(MusicSSLError, match="key"):
            metrics.key_index(bad)


def test_pitch_class_accuracy_is_mir_evals_raw_chroma_accuracy():
    assert metrics.pitch_class(np.array([440.0, 261.63, 0.0, 932.33])).tolist() == [9, 0, -1, 10]
    a4 = 440.0
    reference = np.array([a4, 2 * a4, a4 * 2 ** (0.6 / 12), a4 * 2 ** (-0.45 / 12)])
    estimate = np.array([9, 9, 9, 9])
    # an octave off still counts; 60 cents off does not; 45 cents off does
    assert metrics.pitch_class_accuracy(reference, estimate) == pytest.approx(0.75)
    with pytest.raises(MusicSSLError, match="voiced"):
        metrics.pitch_class_accuracy(np.array([0.0, 440.0]), np.array([9, 9]))
    # The class's centre, in any octave, is within 50 cents of every frequency of the class,
    # so the accuracy is mir_eval's raw chroma accuracy of the centres.
    rng = np.random.default_rng(0)
    reference = 55.0 * 2 ** rng.uniform(0, 5, 500)
    estimate = rng.integers(0, 12, 500)
    estimate[:200] = metrics.pitch_class(reference[:200])
    centres = 440.0 * 2.0 ** ((60 + estimate - 69) / 12)
    voiced = np.ones(500)
    cents = mir_eval.melody.hz2cents
    chroma = mir_eval.melody.raw_chroma_accuracy(voiced, cents(reference), voiced, cents(centres))
    assert metrics.pitch_class_accuracy(reference, estimate) == pytest.approx(chroma)
    assert chroma > 0.4


def test_retrieval_metrics_of_hand_ranked_lists():
    relevance = np.array([[1, 0, 1, 0, 0], [0, 0, 1, 0, 1]], dtype=bool)
    scores = metrics.retrieval_metrics(relevance)
    # AP: (1 + 2/3) / 2 and (1/3 + 2/5) / 2; RR: 1 and 1/3
    assert scores["map"] == pytest.approx(((1 + 2 / 3) / 2 + (1 / 3 + 2 / 5) / 2) / 2)
    assert scores["mrr"] == pytest.approx((1 + 1 / 3) / 2)
    assert scores["recall@1"] == 0.5 and scores["recall@5"] == 1.0 and scores["recall@10"] == 1.0
    # a relevant item that was never ranked still counts in AP's denominator
    truncated = metrics.retrieval_metrics(relevance[:1], num_relevant=np.array([3]))
    assert truncated["map"] == pytest.approx((1 + 2 / 3) / 3)
    assert metrics.recall_curve(relevance, max_k=4).tolist() == [0.5, 0.5, 1.0, 1.0]
    with pytest.raises(MusicSSLError, match="relevant"):
        metrics.retrieval_metrics(np.zeros((1, 3), dtype=bool))


def test_search_ranks_by_cosine_and_drops_the_query_itself():
    vectors = np.array([[1.0, 0.0], [0.9, 0.1], [0.0, 1.0], [0.1, 0.9]], dtype=np.float32)
    names, groups = ["a", "b", "c", "d"], [0, 0, 1, 1]
    ranking = metrics.search(vectors, vectors * np.array([[5.0], [0.1], [2.0], [7.0]]))
    assert ranking[0].tolist() == [0, 1, 3, 2]  # length does not matter, direction does
    relevance, num_relevant = metrics.ranked_relevance(
        ranking, groups, groups, query_names=names, gallery_names=names
    )
    assert num_relevant.tolist() == [1, 1, 1, 1]
    assert relevance[0].tolist() == [True, False, False, False]  # b, d, c, then padding
    assert metrics.retrieval_metrics(relevance)["map"] == 1.0
    # without names the query's own item counts as a relevant hit
    relevance, num_relevant = metrics.ranked_relevance(ranking, groups, groups)
    assert num_relevant.tolist() == [2, 2, 2, 2]


def test_retrieval_chance_matches_enumeration():
    for num_items, num_relevant in [(3, 1), (4, 2), (6, 3), (5, 5)]:
        aps, rrs, hits = [], [], []
        for positions in itertools.combinations(range(num_items), num_relevant):
            relevance = np.zeros((1, num_items), dtype=bool)
            relevance[0, list(positions)] = True
            per_query = metrics.retrieval_per_query(relevance)
            aps.append(per_query["ap"][0])
            rrs.append(per_query["rr"][0])
            hits.append(per_query["first_hit"][0] <= 2)
        chance = metrics.retrieval_chance(num_items, num_relevant, ks=(2,))
        assert chance["map"] == pytest.approx(np.mean(aps))
        assert chance["mrr"] == pytest.approx(np.mean(rrs))
        assert chance["recall@2"] == pytest.approx(np.mean(hits))
    assert metrics.retrieval_chance(3, 1)["map"] == pytest.approx((1 + 1 / 2 + 1 / 3) / 3)


def test_macro_f1_chance():
    assert metrics.macro_f1_chance([0, 1, 2, 0, 1, 2], num_classes=3) == pytest.approx(1 / 3)
    # guessing uniformly among 4 labels, a sure class (q = 1) gets F1 = 2 (1/4) / (5/4) = 0.4
    assert metrics.macro_f1_chance([2, 2], num_classes=4) == pytest.approx(0.4 / 4)
    rng = np.random.default_rng(0)
    reference = rng.integers(0, 3, 3000)
    guesses = [metrics.macro_f1(reference, rng.integers(0, 3, 3000)) for _ in range(20)]
    assert metrics.macro_f1_chance(reference, num_classes=3) == pytest.approx(
        np.mean(guesses), abs=0.01
    )
