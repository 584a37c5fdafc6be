"""Claims about the client partitioners in methods/common/partition.py."""

import numpy as np
import pytest

from methods.common.partition import dirichlet, iid, partition, pathological

pytestmark = pytest.mark.unit

# 10 classes × 100 samples, shuffled so that no partitioner can rely on sorted input.
LABELS = np.random.default_rng(123).permutation(np.repeat(np.arange(10), 100))

SCHEMES = [
    dict(scheme="iid"),
    dict(scheme="dirichlet", alpha=0.3),
    dict(scheme="pathological", classes_per_client=2),
]


def _label_entropy(y: np.ndarray, shards: list[np.ndarray]) -> float:
    """Mean over clients of the entropy (nats) of the client's label distribution."""
    entropies = []
    for shard in shards:
        p = np.bincount(y[shard], minlength=10) / len(shard)
        p = p[p > 0]
        entropies.append(-(p * np.log(p)).sum())
    return float(np.mean(entropies))


@pytest.mark.parametrize("kwargs", SCHEMES, ids=lambda k: k["scheme"])
@pytest.mark.parametrize("num_clients", [5, 7, 20])
def test_every_index_lands_on_exactly_one_client(kwargs, num_clients):
    shards = partition(LABELS, num_clients=num_clients, seed=0, **kwargs)
    assert len(shards) == num_clients
    assert all(len(s) > 0 for s in shards)
    assert all(np.array_equal(s, np.sort(s)) for s in shards)
    merged = np.concatenate(shards)
    assert np.array_equal(np.sort(merged), np.arange(len(LABELS)))


@pytest.mark.parametrize("kwargs", SCHEMES[:2], ids=lambda k: k["scheme"])
def test_a_single_client_gets_everything(kwargs):
    (shard,) = partition(LABELS, num_clients=1, seed=0, **kwargs)
    assert np.array_equal(shard, np.arange(len(LABELS)))


@pytest.mark.parametrize("kwargs", SCHEMES, ids=lambda k: k["scheme"])
def test_same_seed_gives_same_partition_and_another_seed_differs(kwargs):
    first = partition(LABELS, num_clients=8, seed=5, **kwargs)
    again = partition(LABELS.copy(), num_clients=8, seed=5, **kwargs)
    other = partition(LABELS, num_clients=8, seed=6, **kwargs)
    assert all(np.array_equal(a, b) for a, b in zip(first, again))
    assert not all(np.array_equal(a, b) for a, b in zip(first, other))


def test_iid_shard_sizes_differ_by_at_most_one_and_mix_labels():
    shards = iid(LABELS, 7, seed=0)
    sizes = [len(s) for s in shards]
    assert max(sizes) - min(sizes) <= 1
    assert all(len(np.unique(LABELS[s])) == 10 for s in shards)


def test_dirichlet_small_alpha_is_more_label_skewed_than_large_alpha():
    skewed = dirichlet(LABELS, 10, alpha=0.1, seed=0)
    balanced = dirichlet(LABELS, 10, alpha=100.0, seed=0)
    # log(10) ≈ 2.30 is a uniform label distribution.
    assert _label_entropy(LABELS, balanced) > 2.2
    assert _label_entropy(LABELS, skewed) < _label_entropy(LABELS, balanced) - 0.8


def test_dirichlet_redraws_until_every_client_has_min_size():
    shards = dirichlet(LABELS, 10, alpha=0.2, seed=3, min_size=40)
    assert min(len(s) for s in shards) >= 40


def test_dirichlet_gives_up_with_a_clear_error_when_min_size_is_unreachable():
    with pytest.raises(ValueError, match="fewer than 95 samples in 5 draws"):
        dirichlet(LABELS, 10, alpha=0.05, seed=0, min_size=95, max_tries=5)
    with pytest.raises(ValueError, match="impossible"):
        dirichlet(LABELS, 10, alpha=1.0, seed=0, min_size=101)


@pytest.mark.parametrize("k", [1, 2, 3, 10])
@pytest.mark.parametrize("num_clients", [10, 13])
def test_pathological_clients_hold_exactly_k_classes(k, num_clients):
    shards = pathological(LABELS, num_clients, k, seed=0)
    assert [len(np.unique(LABELS[s])) for s in shards] == [k] * num_clients


def test_pathological_shards_of_a_class_are_equal_sized():
    shards = pathological(LABELS, 10, 2, seed=0)
    # 10 clients × 2 = 20 slots over 10 classes: each class is split into 2 halves of 50.
    per_class = [np.bincount(LABELS[s], minlength=10) for s in shards]
    assert {int(c) for counts in per_class for c in counts if c} == {50}


def test_pathological_rejects_classes_too_small_for_their_shards():
    y = np.array([0] * 50 + [1] * 2)
    with pytest.raises(ValueError, match="class 1 has 2 samples"):
        pathological(y, 6, 1, seed=0)


@pytest.mark.parametrize("kwargs, message", [
    (dict(scheme="round-robin", num_clients=2), "unknown partition scheme 'round-robin'.*iid"),
    (dict(scheme="iid", num_clients=0), "num_clients must be an integer in \\[1, 1000\\]"),
    (dict(scheme="iid", num_clients=1001), "num_clients"),
    (dict(scheme="dirichlet", num_clients=4, alpha=0.0), "alpha must be > 0"),
    (dict(scheme="dirichlet", num_clients=4, alpha=-1.0), "alpha must be > 0"),
    (dict(scheme="pathological", num_clients=4, classes_per_client=0), "classes_per_client"),
    (dict(scheme="pathological", num_clients=4, classes_per_client=11), "classes_per_client"),
    (dict(scheme="pathological", num_clients=4, classes_per_client=2), "cannot cover all 10"),
])
def test_bad_arguments_raise_a_clear_value_error(kwargs, message):
    with pytest.raises(ValueError, match=message):
        partition(LABELS, seed=0, **kwargs)


@pytest.mark.parametrize("bad", [np.array([]), np.zeros((4, 2), int), np.array([0.5, 1.0])])
def test_labels_must_be_a_non_empty_1d_integer_array(bad):
    with pytest.raises(ValueError, match="1-D integer label array"):
        iid(bad, 1, seed=0)


def test_seed_must_be_an_integer_so_runs_stay_reproducible():
    with pytest.raises(ValueError, match="seed must be an integer"):
        iid(LABELS, 2, seed=None)
