"""Claims that DP-SGD on a node holds against the server: the server knows the run seed and
every header, yet cannot replay a node's noise, switch its DP off, or read an
unaccounted value from its reply."""

from __future__ import annotations

import math
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from flwr.app import ConfigRecord, Context, RecordDict

from clients.app import _dispatch
from clients.dp_policy import NodePolicy, PolicyRefusal
from clients.dp_randomness import DETERMINISTIC_ENV
from clients.private_train import private_train_phase
from clients.privacy import PrivateTraining
from clients.training import train_locally
from methods.common.datasets import load_dataset
from methods.registry import get_method
from methods.resolve import parse_run_spec
from protos.contract import ARRAYS, CONFIG, METRICS, PRIVACY
from protos.records import header_config, round_header
from protos.records import from_array_record, to_array_record
from server.rounds import initial_arrays

pytestmark = pytest.mark.unit

LR, SIGMA, BATCH = 0.5, 1.0, 32


def _spec(**extra):
    return parse_run_spec({
        "data.dataset": "digits", "num-clients": 2, "num-server-rounds": 3,
        "fedavg.batch-size": BATCH, "fedavg.lr": LR, "fedavg.momentum": 0.0,
        "dp.enabled": True, "dp.accountant": "rdp", "dp.noise-multiplier": SIGMA,
        "dp.max-epsilon": 1e30, **extra,
    })


def _context(**policy):
    config = {"partition-id": 0, "num-partitions": 2, **policy}
    return Context(run_id=1, node_id=7, node_config=config, state=RecordDict(), run_config={})


def _node_round(spec, arrays, context=None):
    """What one node sends back for round 1 (a fresh context: no history)."""
    header = round_header(spec, 1, "private-train")
    reply = private_train_phase(
        spec, header, RecordDict({ARRAYS: to_array_record(arrays)}), context or _context()
    )
    return reply, from_array_record(reply[ARRAYS])


def _flat(arrays):
    return np.concatenate([np.ravel(arrays[k]) for k in sorted(arrays)])


@pytest.fixture(scope="module")
def start():
    spec = _spec()
    return spec, initial_arrays(get_method("fedavg"), spec)


def test_the_server_replaying_a_round_from_its_header_cannot_reproduce_the_update(
    start, monkeypatch
):
    spec, arrays = start
    # The server's best replay: everything in the header, the run seed, the node's data
    # (a worst case), and the node's code with its randomness derived from the seed.
    monkeypatch.setenv(DETERMINISTIC_ENV, "1")
    replay_a, replay_b = _flat(_node_round(spec, arrays)[1]), _flat(_node_round(spec, arrays)[1])
    assert np.array_equal(replay_a, replay_b)  # seeded noise would be replayed bit for bit
    monkeypatch.delenv(DETERMINISTIC_ENV)
    reply, sent = _node_round(spec, arrays)
    node = _flat(sent)
    # Each step adds N(0, σ²C²)/(qn) to every weight; two independent draws differ by
    # √2 of that per step, over S steps: the size of the noise the replay cannot strip.
    steps, expected_batch = int(reply[METRICS]["steps"]), reply[PRIVACY]["expected-batch-size"]
    noise = LR * SIGMA * 1.0 / expected_batch * math.sqrt(2 * steps * node.size)
    gap = float(np.linalg.norm(node - replay_a))
    assert 0.8 * noise < gap < 2.0 * noise, (gap, noise)
    assert reply[PRIVACY]["rng"] == "os-csprng"


def test_two_rounds_from_the_same_seed_and_header_end_on_different_models(start):
    spec, arrays = start
    first, second = _flat(_node_round(spec, arrays)[1]), _flat(_node_round(spec, arrays)[1])
    assert not np.allclose(first, second)


def test_the_test_only_deterministic_switch_is_reported_as_run_seed_randomness(
    start, monkeypatch
):
    spec, arrays = start
    monkeypatch.setenv(DETERMINISTIC_ENV, "1")
    reply, _ = _node_round(spec, arrays)
    assert reply[PRIVACY]["rng"] == "run-seed"


def test_a_dp_reply_carries_no_training_loss(start):
    spec, arrays = start
    reply, _ = _node_round(spec, arrays)
    assert "train-loss" not in reply[METRICS]
    assert set(reply[METRICS]) == {"num-examples", "steps", "train-seconds"}


def test_empty_poisson_batches_are_noise_steps_and_are_accounted():
    # B=1 on 4 examples: q=1/4, a batch is empty with probability (3/4)^4 ≈ 0.32
    spec = _spec(**{"fedavg.batch-size": 1, "fedavg.local-epochs": 10})
    data = load_dataset("digits", "train").subset(range(4))
    method = get_method("fedavg")
    model = method.build_model(spec)
    privacy = PrivateTraining(spec, method, history=[])
    metrics = train_locally(method, model, data, spec, seed=0, privacy=privacy)
    assert privacy.report["empty_batches"] > 0
    assert metrics["steps"] == privacy.report["steps"] == 10 * 4  # E·⌈n/B⌉, empty ones too
    assert sum(h[2] for h in privacy.history) == 40


def test_ghost_clipping_counts_the_examples_it_clips():
    from tests.unit.test_privacy_training import PerExample  # a method with per-example losses

    spec = _spec(**{"dp.max-grad-norm": 1e-3, "dp.grad-sample-mode": "ghost"})
    data = load_dataset("digits", "train").subset(range(128))
    method = PerExample()
    privacy = PrivateTraining(spec, method, history=[])
    train_locally(method, method.build_model(spec), data, spec, seed=0, privacy=privacy)
    assert privacy.mode == "ghost" and privacy.report["clip_fraction"] > 0.9


def _request(spec, phase):
    # the dispatcher reads only the content (a Message needs a live Flower run to exist)
    return SimpleNamespace(content=RecordDict({CONFIG: header_config(spec, 1, phase)}))


def test_a_node_that_requires_dp_refuses_a_header_without_it():
    spec = _spec(**{"dp.enabled": False})
    with pytest.raises(PolicyRefusal, match="node policy refuses round 1 .*no DP"):
        _dispatch(_request(spec, "train"), _context(**{"require-dp": "true"}))
    with pytest.raises(PolicyRefusal, match="no DP"):  # the server cannot relabel the phase
        _dispatch(_request(spec, "private-train"), _context(**{"require-dp": "true"}))


def test_a_node_that_requires_dp_refuses_client_level_dp_and_the_audit_phase():
    policy = NodePolicy.of({"require-dp": "1"})
    with pytest.raises(PolicyRefusal, match="level 'client'"):
        policy.check_phase(_spec(**{"dp.level": "client"}), "private-train", 2)
    with pytest.raises(PolicyRefusal, match="'audit'"):
        policy.check_phase(_spec(), "audit", 4)
    NodePolicy.of({"require-dp": "1", "allow-audit": "1"}).check_phase(_spec(), "audit", 4)
    policy.check_phase(_spec(), "private-train", 2)  # sample-level DP-SGD: accepted


def test_a_node_refuses_noise_below_its_floor_and_a_budget_above_its_cap(start):
    spec, arrays = start
    with pytest.raises(PolicyRefusal, match="below this node's min-noise-multiplier 2"):
        _node_round(spec, arrays, _context(**{"min-noise-multiplier": "2.0"}))
    capped = _spec(**{"dp.max-epsilon": 8.0})
    with pytest.raises(PolicyRefusal, match="exceeds this node's max-epsilon 3"):
        NodePolicy.of({"max-epsilon": "3"}).check_phase(capped, "private-train", 1)
    _node_round(spec, arrays, _context(**{"min-noise-multiplier": "0.5"}))  # above the floor


def test_a_malformed_node_policy_is_refused_not_ignored():
    with pytest.raises(PolicyRefusal, match="min-noise-multiplier"):
        NodePolicy.of({"min-noise-multiplier": "nan"})


def test_the_noise_is_not_the_global_torch_generator():
    """Re-seeding torch's global RNG (which the run seed does) must not replay the noise."""
    spec, method = _spec(), get_method("fedavg")
    data = load_dataset("digits", "train").subset(range(64))
    outputs = []
    for _ in range(2):
        torch.manual_seed(0)
        model = method.build_model(spec)
        train_locally(method, model, data, spec, seed=0,
                      privacy=PrivateTraining(spec, method, history=[]))
        outputs.append(torch.cat([p.detach().ravel() for p in model.parameters()]))
    assert not torch.allclose(outputs[0], outputs[1])


def test_the_reply_config_record_keys_are_the_ledger_contract(start):
    spec, arrays = start
    reply, _ = _node_round(spec, arrays)
    assert isinstance(reply[PRIVACY], ConfigRecord)
    assert {"ledger", "rng", "empty-batches", "num-examples"} <= set(reply[PRIVACY])


def test_an_audited_round_without_dp_is_reproducible_canaries_included(start):
    spec = _spec(**{"dp.enabled": False, "audit.enabled": True, "audit.whitebox-canaries": 200})
    arrays = start[1]
    header = round_header(spec, 1, "private-train")
    sent = [
        _flat(from_array_record(private_train_phase(
            spec, header, RecordDict({ARRAYS: to_array_record(arrays)}), _context())[ARRAYS]))
        for _ in range(2)
    ]
    assert np.array_equal(sent[0], sent[1])
