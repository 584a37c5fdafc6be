"""The standard round workflow: sample → train → validate → aggregate → evaluate → checkpoint.

Aggregation is the method's Flower strategy (FedAvg unless the method brings
its own); this loop adds what Flower's `Strategy.start` lacks: seeded
sampling, rejection of bad updates, a checkpoint after every round (so
`--resume` continues exactly), and per-round records in the run directory.
"""

from __future__ import annotations

import time
from typing import Any, Callable

import numpy as np
import torch
from flwr.app import Message

from methods.base import Method, RunSpec
from methods.common.device import resolve_device
from protos.contract import METRICS, NUM_EXAMPLES, TRAIN_LOSS, Phase
from protos.records import from_array_record, header_config, to_array_record
from server.federation import Federation, FederationError, SampledGrid
from server.divergence import DivergenceWatch
from server.evaluation import FederatedEvaluator, choose_evaluation
from server.privacy_hooks import privacy_hooks
from server.round_hooks import RoundHooks
from server.run_dir import RunDirectory
from server.strategy import method_strategy
from server.secure_aggregation import SecureRound
from server.validation import check_masked_update, check_update

# An update larger than this many times the global model is rejected.
MAX_UPDATE_FACTOR = 1.5

Progress = Callable[[dict[str, Any]], None]


def initial_arrays(method: Method, spec: RunSpec) -> dict[str, np.ndarray]:
    torch.manual_seed(spec.federation.seed)
    return method.shared_state(method.build_model(spec))


def round_hooks(fed: Federation, method: Method, spec: RunSpec, run: RunDirectory,
                state: dict[str, Any]) -> RoundHooks:
    return privacy_hooks(fed, method, spec, run, state) or RoundHooks()


class GlobalEvaluator:
    """Evaluates global weights on the server's test split (built once): evaluation=server.

    Under evaluation=federated the nodes score it instead (server/evaluation.py); the test
    split still gives the model's input shape and class count."""

    def __init__(self, method: Method, spec: RunSpec) -> None:
        self.method = method
        # on the server's device (server/runner.py); Method.evaluate follows the model's
        device = resolve_device(spec.federation.device, cpu_only=method.cpu_only)
        self.model = method.build_model(spec).to(device)
        self.test = method.evaluation_dataset(spec)

    def __call__(self, arrays: dict[str, np.ndarray]) -> dict[str, float]:
        self.method.load_shared_state(self.model, arrays)
        return self.method.evaluate(self.model, self.test)


def run_rounds(
    fed: Federation,
    method: Method,
    spec: RunSpec,
    run: RunDirectory,
    state: dict[str, Any],
    progress: Progress,
    strategy: Any = None,
) -> dict[str, Any]:
    """Run rounds `state["round"]+1 .. R`; returns the final summary figures.

    `strategy` replaces the method's own (a stage that aggregates its own way)."""
    hooks = round_hooks(fed, method, spec, run, state)
    strategy = hooks.wrap_strategy(strategy or method_strategy(method, spec))
    evaluate = GlobalEvaluator(method, spec)
    # before round 1: refuses nodes whose data the model cannot take (server/evaluation.py)
    federated = (FederatedEvaluator(fed, spec) if choose_evaluation(
        fed, method, spec, evaluate.test, run) == "federated" else None)
    watch = DivergenceWatch(state, spec, evaluate.test.num_classes)
    arrays: dict[str, np.ndarray] = state["arrays"]
    max_bytes = int(MAX_UPDATE_FACTOR * sum(a.nbytes for a in arrays.values())) + 4096
    figures: dict[str, Any] = {}
    ran_rounds = updated_rounds = 0

    def check(reply: Message) -> str | None:
        return check_update(reply.content, arrays, max_bytes=max_bytes,
                            max_examples=fed.example_bound(reply.metadata.src_node_id, spec),
                            ) or hooks.check(reply)

    def check_masked(reply: Message) -> str | None:
        return check_masked_update(
            reply.content, arrays, max_examples=fed.example_bound(reply.metadata.src_node_id, spec),
        ) or hooks.check(reply)

    secure = SecureRound(fed, spec) if spec.secagg.enabled else None

    for rnd in range(state["round"] + 1, spec.federation.num_server_rounds + 1):
        started = time.perf_counter()
        sampled = hooks.admit(rnd, fed.sample(rnd))
        if not sampled:
            run.log_event(f"round {rnd}: no node may train any more; the run stops here")
            break
        ran_rounds += 1
        messages = strategy.configure_train(
            rnd, to_array_record(arrays), header_config(spec, rnd, hooks.train_phase),
            SampledGrid(sampled),
        )
        requests = hooks.prepare(rnd, list(messages))
        on_reject = lambda reply, why, rnd=rnd: hooks.reject(rnd, reply, why)  # noqa: E731
        train_metrics: dict[str, Any] = {}
        if secure is not None:  # the server sees only the sum (server/secure_aggregation.py)
            new_arrays, replies = secure(rnd, requests, arrays, check_masked, on_reject)
            hooks.observe(rnd, replies, arrays)
            if new_arrays is not None:
                arrays = new_arrays
                train_metrics = {TRAIN_LOSS: weighted_mean(replies, TRAIN_LOSS)}
                updated_rounds += 1
        else:
            replies = fed.exchange(requests, rnd, Phase.TRAIN, check, on_reject=on_reject)
            hooks.observe(rnd, replies, arrays)
            if replies:
                aggregated, metrics = strategy.aggregate_train(rnd, replies)
                arrays = from_array_record(aggregated)
                train_metrics = dict(metrics or {})
                updated_rounds += 1
            else:
                run.log_event(f"round {rnd}: no valid update; the global model is unchanged")
        figures = federated(rnd, arrays, sampled) if federated else evaluate(arrays)
        record = {
            "round": rnd,
            "phase": Phase.TRAIN,
            **figures,
            "train_loss": train_metrics.get(TRAIN_LOSS),
            "sampled": len(sampled),
            "replies": len(replies),
            "examples": int(sum(r.content[METRICS][NUM_EXAMPLES] for r in replies)),
            "nodes": [fed.tag(r.metadata.src_node_id) for r in replies],  # whose updates count
            "seconds": time.perf_counter() - started,
        }
        warning = watch.observe(rnd, figures)
        if warning:  # once per run: events.log, and the console through the record
            run.log_event(warning)
            record["warning"] = warning
        run.log_metrics(record)
        state.update(round=rnd, arrays=arrays)
        progress(record)  # before the checkpoint: the runner stamps wall time into state
        save_state(run, state)
    if ran_rounds and not updated_rounds:
        raise FederationError("no node produced a valid update in any round (see events.log)")
    if not figures and not federated:  # no round left to run (resumed after the last one)
        figures = evaluate(arrays)
    return {"accuracy": figures.get("accuracy"), "loss": figures.get("loss"),
            "diverged": watch.diverged, **({"evaluation": "federated"} if federated else {}),
            **hooks.finish(arrays)}


def weighted_mean(replies: list[Message], key: str) -> float | None:
    """The example-weighted mean of a metric the replies carry (None when none does)."""
    pairs = [(r.content[METRICS][key], r.content[METRICS][NUM_EXAMPLES]) for r in replies
             if key in r.content[METRICS]]
    total = sum(n for _, n in pairs)
    return sum(v * n for v, n in pairs) / total if total else None


def save_state(run: RunDirectory, state: dict[str, Any]) -> None:
    """Checkpoint the global arrays and the JSON-able rest of the state."""
    rest = {k: v for k, v in state.items() if k != "arrays"}
    run.save_checkpoint(state["arrays"], rest)
