"""Claims about FedSA's selection rules (methods/fedsa/selection.py, notes §1.3)."""

import math

import numpy as np
import pytest

from methods.fedsa.selection import (
    draw_weights,
    precision_at_k,
    select_teachers,
    selection_probabilities,
    top_k,
)

pytestmark = pytest.mark.unit

KEYS = ["p0", "p1", "p2", "p3"]


def test_probabilities_follow_the_official_formula():
    # N_p = 50: τ = 50/sim, q = 2 − τ, q̂ = min-max(q), p = softmax(q̂), worked by hand.
    p = selection_probabilities([40.0, 45.0, 50.0], 50)
    q = [2 - 50 / 40, 2 - 50 / 45, 2 - 50 / 50]  # 0.75, 0.888.., 1.0
    q_hat = [(v - q[0]) / (q[2] - q[0]) for v in q]  # 0, 0.555.., 1
    expected = np.exp(q_hat) / np.exp(q_hat).sum()
    assert p == pytest.approx(expected, abs=1e-12)
    assert p.argmax() == 2 and p.sum() == pytest.approx(1.0)


@pytest.mark.parametrize("sims", [[1.0, 50.0], [10.0, 10.5, 49.0, 49.9], list(range(1, 31))])
def test_min_max_then_softmax_fixes_the_odds_at_e(sims):
    # Pitfall 1: however different the teachers, the likeliest is exactly e times the least
    # likely, so with 6 teachers a draw is far from a choice of the best.
    p = selection_probabilities(sims, 50)
    assert p.max() / p.min() == pytest.approx(math.e)


def test_equal_similarities_give_a_uniform_draw():
    assert selection_probabilities([30.0] * 4, 50) == pytest.approx([0.25] * 4)


@pytest.mark.parametrize("bad", [[float("nan"), 1.0], [0.0, 3.0], [-1.0, 2.0], []])
def test_invalid_similarities_are_refused(bad):
    with pytest.raises(ValueError):
        selection_probabilities(bad, 50)


def test_sampled_draws_k_with_replacement_at_the_softmax_frequencies():
    sims = [46.0, 47.0, 45.0, 44.0]
    p = selection_probabilities(sims, 50)
    rng = np.random.default_rng(0)
    totals = np.zeros(4)
    for _ in range(4000):
        counts = select_teachers("sampled", KEYS, sims, k=2, num_probe=50, rng=rng)
        assert sum(counts.values()) == 2
        for key, m in counts.items():
            totals[KEYS.index(key)] += m
    assert totals / totals.sum() == pytest.approx(p, abs=0.015)


def test_a_teacher_drawn_twice_weighs_twice():
    rng = np.random.default_rng(1)
    counts = select_teachers("sampled", ["a", "b"], [49.0, 10.0], k=5, num_probe=50, rng=rng)
    assert sum(counts.values()) == 5 and max(counts.values()) >= 3  # 5 draws over 2 teachers
    weights = draw_weights(counts)
    assert weights == {key: m / 5 for key, m in counts.items()}
    assert sum(weights.values()) == pytest.approx(1.0)


def test_topk_takes_the_most_similar_and_breaks_ties_by_order():
    counts = select_teachers("topk", KEYS, [40.0, 48.0, 45.0, 48.0], k=2, num_probe=50,
                             rng=np.random.default_rng(0))
    assert counts == {"p1": 1, "p3": 1}
    assert top_k(KEYS, [1.0, 1.0, 1.0, 1.0], 2) == ["p0", "p1"]


def test_random_draws_k_distinct_teachers_whatever_the_similarity():
    seen = set()
    for seed in range(30):
        counts = select_teachers("random", KEYS, [49.0, 1.0, 1.0, 1.0], k=2, num_probe=50,
                                 rng=np.random.default_rng(seed))
        assert len(counts) == 2 and set(counts.values()) == {1}
        seen |= set(counts)
    assert seen == set(KEYS)  # the least similar teachers are drawn too


def test_all_and_fixed_ignore_similarity():
    rng = np.random.default_rng(0)
    assert select_teachers("all", KEYS, [1, 2, 3, 4], k=2, num_probe=50, rng=rng) == \
        dict.fromkeys(KEYS, 1)
    assert select_teachers("fixed", KEYS, [9, 9, 1, 1], k=2, num_probe=50, rng=rng,
                           fixed=["p2", "p3", "p9"]) == {"p2": 1, "p3": 1}


def test_unknown_mode_is_refused():
    with pytest.raises(ValueError, match="unknown selection mode"):
        select_teachers("best", KEYS, [1, 2, 3, 4], k=2, num_probe=50, rng=np.random.default_rng(0))


def test_precision_at_k_counts_relevant_teachers_among_the_most_similar():
    sims = [47.0, 46.0, 45.5, 46.5]
    assert precision_at_k(KEYS, sims, 2, {"p0", "p1", "p2"}) == 0.5  # top-2 = p0, p3
    assert precision_at_k(KEYS, sims, 3, {"p0", "p1", "p3"}) == 1.0
