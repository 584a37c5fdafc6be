"""The Flower strategy that aggregates a round: the method's own, else FedAvg or a robust rule.

Robust aggregation (Blanchard et al., NeurIPS 2017: Krum; Yin et al., ICML 2018:
coordinate-wise median and trimmed mean) comes from flwr.serverapp.strategy as it is;
`federation.aggregation` names the rule (methods/config.py AGGREGATIONS).
"""

from __future__ import annotations

from typing import Any

from flwr.serverapp import strategy as flwr_strategy

from methods.base import Method, RunSpec
from methods.config import FederationConfig

STRATEGY_SAMPLING: dict[str, Any] = {"fraction_train": 1.0, "fraction_evaluate": 1.0,
                                      "min_train_nodes": 1, "min_evaluate_nodes": 1,
                                      "min_available_nodes": 1}
"""Settings of every Flower strategy: the server's seeded sampler (server/federation.py)
picks the nodes, so the strategy samples all it is given and its own minimums are 1.
Evaluation never goes through the strategy (server/evaluation.py sends the evaluate
messages of `evaluation=federated` itself, to the round's sampled nodes); fraction_evaluate
is 1.0 so that Flower does not warn "Federated evaluation will be skipped" on a run that
evaluates federated."""


def aggregation_strategy(fed: FederationConfig) -> flwr_strategy.Strategy:
    """FedAvg weighted by examples, or the robust rule `aggregation` names."""
    common = STRATEGY_SAMPLING
    if fed.aggregation == "krum":
        return flwr_strategy.Krum(num_malicious_nodes=fed.byzantine_nodes, **common)
    if fed.aggregation == "median":
        return flwr_strategy.FedMedian(**common)
    if fed.aggregation == "trimmed-mean":
        # FedTrimmedAvg cuts int(beta * n) updates from each end: beta = f / n, nudged
        # up so float rounding never cuts f - 1.
        beta = (fed.byzantine_nodes + 0.5) / fed.sampled_per_round
        return flwr_strategy.FedTrimmedAvg(beta=min(beta, 0.49), **common)
    return flwr_strategy.FedAvg(**common)


def method_strategy(method: Method, spec: RunSpec) -> flwr_strategy.Strategy:
    """The strategy of a run of `method`: its own (Method.strategy), else the federation's."""
    own = method.strategy(spec)
    return own if own is not None else aggregation_strategy(spec.federation)
