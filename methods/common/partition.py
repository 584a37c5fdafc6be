"""Reproducible partitions of a labelled data set over federated clients.

Each partitioner takes the labels `y` and returns one sorted index array per client;
the arrays are disjoint and together cover every index exactly once. The same
(y, arguments, seed) always gives the same partition: all randomness comes from
`np.random.default_rng(seed)`.

- `iid`: a uniform random split into near-equal shards.
- `dirichlet`: label skew; each class is spread over the clients by proportions
  p_c ~ Dir_N(alpha) (Yurochkin et al., 2019, "Bayesian nonparametric federated learning
  of neural networks", §5; the common non-IID benchmark); small alpha means few classes
  per client.
- `pathological`: every client holds exactly k classes, like the sort-by-label shards of
  McMahan et al., 2017 ("Communication-efficient learning of deep networks from
  decentralized data": 200 shards of 300 MNIST digits, 2 per client).

`stratified_holdout` is not a partitioner: it carves a held-out test split off one data
set (an npz file without `x_test`, a node's own data under federated evaluation).
"""

from __future__ import annotations

import numpy as np

SCHEMES = ("iid", "dirichlet", "pathological")
HELD_OUT_FRACTION = 0.2  # what a node holds out for federated evaluation (clients/node_data.py)


def _labels(y: np.ndarray) -> np.ndarray:
    y = np.asarray(y)
    if y.ndim != 1 or len(y) == 0 or not np.issubdtype(y.dtype, np.integer):
        raise ValueError(f"y must be a non-empty 1-D integer label array, got dtype {y.dtype} "
                         f"and shape {y.shape}")
    return y


def _check_num_clients(y: np.ndarray, num_clients: int) -> None:
    if not isinstance(num_clients, (int, np.integer)) or not 1 <= num_clients <= len(y):
        raise ValueError(f"num_clients must be an integer in [1, {len(y)}] (the number of "
                         f"samples), got {num_clients!r}")


def _rng(seed: int) -> np.random.Generator:
    # default_rng(None) would draw fresh OS entropy and silently break reproducibility.
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)):
        raise ValueError(f"seed must be an integer, got {seed!r}")
    return np.random.default_rng(seed)


def iid(y: np.ndarray, num_clients: int, seed: int) -> list[np.ndarray]:
    """A random permutation cut into num_clients shards whose sizes differ by at most one."""
    y = _labels(y)
    _check_num_clients(y, num_clients)
    order = _rng(seed).permutation(len(y))
    return [np.sort(shard) for shard in np.array_split(order, num_clients)]


def _dirichlet_draw(y: np.ndarray, num_clients: int, alpha: float,
                    rng: np.random.Generator) -> list[np.ndarray]:
    shards: list[list[np.ndarray]] = [[] for _ in range(num_clients)]
    for cls in np.unique(y):
        members = rng.permutation(np.flatnonzero(y == cls))
        share = rng.dirichlet(np.full(num_clients, alpha))
        cuts = (np.cumsum(share)[:-1] * len(members)).astype(np.int64)
        for client, part in enumerate(np.split(members, cuts)):
            shards[client].append(part)
    return [np.sort(np.concatenate(parts)) for parts in shards]


def dirichlet(y: np.ndarray, num_clients: int, alpha: float, seed: int, *,
              min_size: int = 10, max_tries: int = 1000) -> list[np.ndarray]:
    """Per-class Dirichlet(alpha) label skew; redrawn until every client has min_size samples.

    Raises ValueError after max_tries draws (alpha too small or too many clients for
    the data) rather than looping forever.
    """
    y = _labels(y)
    _check_num_clients(y, num_clients)
    if not alpha > 0:
        raise ValueError(f"alpha must be > 0 (the Dirichlet concentration), got {alpha!r}")
    if not 0 <= min_size * num_clients <= len(y):
        raise ValueError(f"min_size={min_size} is impossible: it must be >= 0 and "
                         f"{num_clients} clients × min_size <= {len(y)} samples")
    rng = _rng(seed)
    for _ in range(max_tries):
        shards = _dirichlet_draw(y, num_clients, alpha, rng)
        if min(len(s) for s in shards) >= min_size:
            return shards
    raise ValueError(f"dirichlet(alpha={alpha}) gave some client fewer than {min_size} samples "
                     f"in {max_tries} draws; raise alpha, lower min_size or use fewer clients "
                     f"than {num_clients}")


def _class_slots(classes: np.ndarray, num_clients: int, k: int,
                 rng: np.random.Generator) -> np.ndarray:
    # Client i takes positions i*k..i*k+k-1 of a random class order repeated cyclically:
    # any k consecutive entries are distinct because k <= number of classes, and every
    # class gets floor or ceil(num_clients*k / C) shards.
    order = rng.permutation(classes)
    slots = order[np.arange(num_clients * k) % len(order)]
    return slots.reshape(num_clients, k)


def pathological(y: np.ndarray, num_clients: int, classes_per_client: int,
                 seed: int) -> list[np.ndarray]:
    """Every client gets one shard of each of exactly `classes_per_client` classes.

    Each class is shuffled and cut into as many equal shards as clients hold it, so
    that the whole data set is covered (as McMahan's sorted shards cover it).
    """
    y = _labels(y)
    _check_num_clients(y, num_clients)
    classes, counts = np.unique(y, return_counts=True)
    k = classes_per_client
    if not isinstance(k, (int, np.integer)) or not 1 <= k <= len(classes):
        raise ValueError(f"classes_per_client must be an integer in [1, {len(classes)}] (the "
                         f"number of classes present), got {k!r}")
    if num_clients * k < len(classes):
        raise ValueError(f"{num_clients} clients × {k} classes cannot cover all {len(classes)} "
                         f"classes; raise num_clients or classes_per_client")
    rng = _rng(seed)
    slots = _class_slots(classes, num_clients, k, rng)
    shards: list[list[np.ndarray]] = [[] for _ in range(num_clients)]
    for cls, count in zip(classes, counts):
        holders = np.flatnonzero((slots == cls).any(axis=1))
        if count < len(holders):
            raise ValueError(f"class {cls} has {count} samples but {len(holders)} clients need "
                             f"a non-empty shard of it; use fewer clients or classes_per_client")
        members = rng.permutation(np.flatnonzero(y == cls))
        for client, part in zip(holders, np.array_split(members, len(holders))):
            shards[client].append(part)
    return [np.sort(np.concatenate(parts)) for parts in shards]


def partition(y: np.ndarray, *, scheme: str, num_clients: int, seed: int, alpha: float = 0.5,
              classes_per_client: int = 2) -> list[np.ndarray]:
    """Dispatch to a partitioner by name: "iid", "dirichlet" (alpha) or "pathological" (k)."""
    if scheme == "iid":
        return iid(y, num_clients, seed)
    if scheme == "dirichlet":
        return dirichlet(y, num_clients, alpha, seed)
    if scheme == "pathological":
        return pathological(y, num_clients, classes_per_client, seed)
    raise ValueError(f"unknown partition scheme {scheme!r}; valid schemes: {', '.join(SCHEMES)}")


def stratified_holdout(y: np.ndarray, fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(train, held-out) sorted index arrays: round(fraction·N) examples held out, each class
    in proportion to its size (largest remainders get the rounding), chosen at random.

    Every class keeps its share, so a label-skewed shard is evaluated on its own skew. The
    same (y, fraction, seed) always gives the same split: a node that is a fresh process
    every round never trains on what it held out in an earlier one.
    """
    y = _labels(y)
    if not 0 < fraction < 1:
        raise ValueError(f"fraction must be in (0, 1), got {fraction!r}")
    total = int(round(fraction * len(y)))
    if not 1 <= total < len(y):
        raise ValueError(f"{len(y)} examples are too few to hold out {fraction:.0%} of them "
                         f"and still train on the rest")
    classes, counts = np.unique(y, return_counts=True)
    exact = counts * total / len(y)  # < counts, so floor + 1 never exceeds a class's size
    take = np.floor(exact).astype(np.int64)
    by_remainder = np.argsort(-(exact - take), kind="stable")  # ties: lower label first
    take[by_remainder[: total - int(take.sum())]] += 1
    rng = _rng(seed)
    held_out = np.sort(np.concatenate([rng.permutation(np.flatnonzero(y == c))[:k]
                                       for c, k in zip(classes, take)]))
    return np.setdiff1d(np.arange(len(y)), held_out), held_out
