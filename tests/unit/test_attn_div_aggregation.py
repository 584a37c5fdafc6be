"""The domain-model stage's aggregation (Stage.average_changed_only, server/stages.py):
domain model k must be exactly what its owner trained, not FedAvg's 1/K of it."""

import numpy as np
import pytest
import torch

from clients.training import train_locally
from methods.attn_div.method import AttentionDiversification
from methods.resolve import parse_run_spec
from server.stages import average_changed

pytestmark = pytest.mark.unit

METHOD = AttentionDiversification()


def test_each_array_is_averaged_over_the_updates_that_changed_it_only():
    base = {"a": np.zeros(2, np.float32), "b": np.ones(2, np.float32), "c": np.full(2, 5.0, np.float32)}
    one = {"a": np.array([3.0, 3.0], np.float32), "b": base["b"].copy(), "c": np.full(2, 1.0, np.float32)}
    two = {"a": base["a"].copy(), "b": np.array([4.0, 7.0], np.float32), "c": np.full(2, 2.0, np.float32)}
    out = average_changed(base, [(one, 100.0), (two, 300.0)])
    np.testing.assert_array_equal(out["a"], [3.0, 3.0])      # only `one` changed it: not 3·¼
    np.testing.assert_array_equal(out["b"], [4.0, 7.0])      # only `two` changed it
    np.testing.assert_allclose(out["c"], [1.75, 1.75])       # both: the example-weighted mean
    assert all(out[k].dtype == np.float32 for k in out)
    assert average_changed(base, [(base, 1.0)])["c"] is base["c"]  # nobody changed it


def test_the_domain_stage_keeps_each_domain_model_exactly_as_its_owner_trained_it():
    spec = parse_run_spec({"method": "attn-div", "attn-div.train-per-domain": "16",
                           "attn-div.variant": "domains", "attn-div.target-domain": "0",
                           "attn-div.batch-size": "8", "attn-div.local-epochs": "1"})
    data = METHOD.train_dataset(spec)
    shards = METHOD.node_partition(spec, data.y, 3)
    torch.manual_seed(0)
    start = METHOD.shared_state(METHOD.build_model(spec))
    updates = []
    for p, idx in enumerate(shards):
        net = METHOD.build_model(spec)
        METHOD.load_shared_state(net, start)
        train_locally(METHOD, net, data.subset(idx), spec, seed=p)
        updates.append((METHOD.shared_state(net), float(len(idx))))
    merged = average_changed(start, updates)
    for slot, (owner, _) in enumerate(updates):
        key = f"domain_models.{slot}.classifier.weight"
        assert not np.array_equal(owner[key], start[key])     # the owner did train it
        np.testing.assert_array_equal(merged[key], owner[key])
    np.testing.assert_array_equal(merged["student.classifier.weight"], start["student.classifier.weight"])


def test_through_flower_the_domain_stage_ends_with_each_owners_domain_model(tmp_path):
    from protos.contract import ARRAYS
    from protos.records import from_array_record, read_header
    from server.run_dir import RunDirectory
    from server.runner import Job, run_job
    from tests.inprocess_grid import InProcessGrid, partition_nodes

    flat = {"method": "attn-div", "num-clients": "3", "node-wait-timeout": "2", "attn-div.splits": "3",
            "attn-div.domain-rounds": "1", "attn-div.warm-rounds": "1", "attn-div.final-rounds": "1",
            "attn-div.train-per-domain": "16", "attn-div.test-per-domain": "20", "attn-div.image-size": "8",
            "attn-div.widths": "4,4,4,8", "attn-div.batch-size": "8", "attn-div.local-epochs": "1",
            "attn-div.domain-local-epochs": "1"}
    grid = InProcessGrid(partition_nodes(3))
    run_job(grid, Job(spec=parse_run_spec(flat), run_dir=str(tmp_path / "run"), scenario="attn-div"))
    trained = RunDirectory(tmp_path / "run").load_stage("domains-3")
    first_round = [from_array_record(reply.content[ARRAYS]) for sent, (_, reply) in zip(grid.sent, grid.replies)
                   if sent.metadata.message_type == "train" and read_header(sent).round == 1]
    assert len(first_round) == 3
    for slot in range(3):  # its owner is the one reply whose copy differs from the two others
        key = f"domain_models.{slot}.classifier.weight"
        owners = [r for i, r in enumerate(first_round)
                  if not any(np.array_equal(r[key], o[key]) for j, o in enumerate(first_round) if j != i)]
        assert len(owners) == 1
        for name in (k for k in trained if k.startswith(f"domain_models.{slot}.")):
            np.testing.assert_array_equal(trained[name], owners[0][name])
