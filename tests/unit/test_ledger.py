"""Claims about the privacy ledger (server/ledger.py, server/privacy_hooks.py), on an
in-process grid (no Ray)."""

from __future__ import annotations

import json

import numpy as np
import pytest
from flwr.app import Array

from clients.privacy import epsilon_of
from protos.contract import ARRAYS, PRIVACY
from server.ledger import LEDGER_FILE, Ledger, read_ledger
from server.privacy_hooks import PrivacyHooks
from server.run_dir import RunDirectory
from server.runner import Job, run_job
from server.scenario import resolve
from tests.inprocess_grid import InProcessGrid, partition_nodes

pytestmark = pytest.mark.unit

# Two nodes holding 1/8 of digits each (8×8 images, ~180 examples): a DP round takes
# a fraction of a second. The other six partitions never connect.
FAST = {
    "num-clients": "2",
    "num-server-rounds": "3",
    "data.dataset": "digits",
    "fedavg.batch-size": "32",
    "node-wait-timeout": "0.5",
    "audit.enabled": "false",
    "dp.accountant": "rdp",
    "dp.target-epsilon": "3",
}


def _nodes():
    return partition_nodes(8)[:2]


def _run(tmp_path, name="run", grid=None, **over):
    job = Job(
        spec=resolve("dp-fedavg", {**FAST, **over}),
        run_dir=str(tmp_path / name),
        scenario="dp-fedavg",
    )
    return run_job(grid or InProcessGrid(_nodes()), job)


@pytest.fixture(scope="module")
def full(tmp_path_factory):
    """An uninterrupted 3-round run: (run root, summary, final ε per node)."""
    root = tmp_path_factory.mktemp("ledger")
    summary = _run(root, "full")
    return (
        root,
        summary,
        {x["node"]: x["epsilon"] for x in _ledger(root, "full") if x["round"] == 3},
    )


def _ledger(tmp_path, name="run"):
    return read_ledger(tmp_path / name / LEDGER_FILE)


def test_each_node_and_round_gets_one_ledger_line_and_the_run_states_the_max(full):
    root, summary, _ = full
    lines = _ledger(root, "full")
    assert sorted((x["round"], x["node"]) for x in lines) == [
        (r, f"p{k}") for r in (1, 2, 3) for k in (0, 1)
    ]
    final = {x["node"]: x["epsilon"] for x in lines if x["round"] == 3}
    assert summary["epsilon"] == max(final.values()) <= 3.0 + 1e-6
    assert summary["delta"] == 1e-5 and summary["epsilon_by_node"] == final
    for node in ("p0", "p1"):  # each line is the node's accountant over all its rounds so far
        mine = [x for x in lines if x["node"] == node]
        history = [(x["noise_multiplier"], x["sample_rate"], x["steps"]) for x in mine]
        assert [x["epsilon"] for x in mine] == pytest.approx(
            [epsilon_of(history[: i + 1], 1e-5, "rdp") for i in range(3)], rel=1e-9
        )


def test_the_runs_epsilon_is_the_max_over_nodes_not_an_example_weighted_mean(tmp_path):
    run = RunDirectory.create(tmp_path / "r", {})
    ledger = Ledger(run, 0)
    for node, eps in (("p0", 1.0), ("p1", 3.0), ("p2", 1.0)):
        ledger.append({"round": 1, "node": node, "epsilon": eps, "epsilon_next": eps + 1})
    assert max(ledger.epsilon_by_node().values()) == 3.0
    assert ledger.exhausted(3.5) == {"p1"}


def test_resume_drops_ledger_lines_of_rounds_the_checkpoint_does_not_hold(tmp_path):
    run = RunDirectory.create(tmp_path / "r", {})
    ledger = Ledger(run, 0)
    for rnd in (1, 2, 3):
        ledger.append({"round": rnd, "node": "p0", "epsilon": rnd, "epsilon_next": rnd + 1})
    assert [x["round"] for x in Ledger(run, 2).lines] == [1, 2]
    assert [x["round"] for x in read_ledger(run.path / LEDGER_FILE)] == [1, 2]


class _Crash(RuntimeError):
    pass


def _crashing_grid(after_calls: int) -> InProcessGrid:
    """A federation whose server dies at the given send (1 = node discovery)."""
    grid = InProcessGrid(_nodes())
    original, calls = grid.send_and_receive, {"n": 0}

    def send(messages, timeout=None):
        calls["n"] += 1
        if calls["n"] > after_calls:
            raise _Crash("server killed")
        return original(messages, timeout=timeout)

    grid.send_and_receive = send
    return grid


def _resumed_epsilon(tmp_path, name: str) -> dict:
    with pytest.raises(_Crash):
        _run(tmp_path, name, grid=_crashing_grid(after_calls=2))  # discovery + round 1
    assert {x["round"] for x in _ledger(tmp_path, name)} == {1}
    # A restarted server meets re-created nodes: fresh context.state, no accountant.
    run_job(InProcessGrid(_nodes()), Job(spec=None, run_dir=str(tmp_path / name), resume=True))
    return {x["node"]: x["epsilon"] for x in _ledger(tmp_path, name) if x["round"] == 3}


def test_epsilon_keeps_composing_after_resume_with_nodes_that_lost_their_state(tmp_path, full):
    assert _resumed_epsilon(tmp_path, "resumed") == pytest.approx(full[2], rel=1e-9)


def test_without_the_servers_history_a_restarted_node_would_under_report(
    tmp_path, full, monkeypatch
):
    """The negative control: the history the server sends is what keeps ε honest."""
    monkeypatch.setattr(PrivacyHooks, "prepare", lambda self, rnd, messages: messages)
    forgetful = _resumed_epsilon(tmp_path, "forgetful")
    assert all(forgetful[k] < 0.9 * full[2][k] for k in full[2])


def test_a_node_whose_next_round_would_pass_the_budget_stops_and_the_run_ends_cleanly(tmp_path):
    # σ=1.5, q=1/6, 6 steps a round: ε = 2.05, 2.62, 3.07, then 3.46 > 3.2
    summary = _run(
        tmp_path,
        **{"num-server-rounds": "6", "dp.noise-multiplier": "1.5", "dp.max-epsilon": "3.2"},
    )
    events = (tmp_path / "run" / "events.log").read_text()
    assert "stops training: its next round would reach" in events
    assert "no node may train any more" in events
    assert summary["rounds"] == 3 and summary["stopped_nodes"] == ["p0", "p1"]
    assert summary["epsilon"] == pytest.approx(3.07, abs=0.01)


def test_a_dp_reply_without_its_ledger_entry_is_rejected_and_ledgered_as_unaccounted(tmp_path):
    def strip(node_id, reply):
        if node_id == 1000 and PRIVACY in reply.content:
            del reply.content[PRIVACY]
        return reply

    summary = _run(
        tmp_path, grid=InProcessGrid(_nodes(), tamper=strip), **{"num-server-rounds": "1"}
    )
    events = (tmp_path / "run" / "events.log").read_text()
    assert "update rejected: a DP-SGD reply must carry exactly one ledger entry" in events
    assert "a release the ledger cannot account" in events
    lines = {x["node"]: x for x in _ledger(tmp_path)}
    assert lines["p1"]["accepted"] is True and "unaccounted" not in lines["p1"]
    assert lines["p0"]["accepted"] is False and lines["p0"]["unaccounted"] is True
    assert summary["private"] is False and summary["unaccounted_nodes"] == ["p0"]


def test_a_rejected_dp_reply_still_counts_toward_its_nodes_epsilon(tmp_path):
    def poison(node_id, reply):  # a NaN weight: rejected before aggregation
        if node_id == 1000 and ARRAYS in reply.content:
            key = next(iter(reply.content[ARRAYS]))
            bad = reply.content[ARRAYS][key].numpy().copy()
            bad.flat[0] = np.nan
            reply.content[ARRAYS][key] = Array(bad)
        return reply

    summary = _run(
        tmp_path, grid=InProcessGrid(_nodes(), tamper=poison), **{"num-server-rounds": "2"}
    )
    p0 = [x for x in _ledger(tmp_path) if x["node"] == "p0"]
    assert [x["accepted"] for x in p0] == [False, False]
    assert "NaN" in p0[0]["rejected_reason"] and p0[1]["epsilon"] > p0[0]["epsilon"] > 0
    assert summary["epsilon_by_node"]["p0"] == p0[-1]["epsilon"]


def test_every_ledger_line_states_its_secret_randomness_and_its_planned_steps(tmp_path):
    summary = _run(tmp_path, **{"num-server-rounds": "1"})
    for line in _ledger(tmp_path):
        assert line["rng"] == "os-csprng"
        assert line["steps"] == line["steps_planned"] > 0
    assert summary["private"] is True and summary["dp_randomness"] == ["os-csprng"]


def test_client_level_dp_accounts_each_release_in_the_same_ledger_format(tmp_path):
    # Central noise of std σC/m on a 2-node mean ruins any model at a useful ε; a tiny σ
    # keeps the updates finite, which is all this accounting test needs.
    summary = _run(
        tmp_path, **{"dp.level": "client", "dp.noise-multiplier": "0.05", "dp.max-epsilon": "1e9"}
    )
    lines = _ledger(tmp_path)
    assert {x["level"] for x in lines} == {"client"} and len(lines) == 6
    assert all(
        x["sample_rate"] == 1.0 and x["steps"] == 1 and x["noise_multiplier"] == 0.05 for x in lines
    )
    from server.audit.accounting import epsilon

    for node in ("p0", "p1"):
        mine = [x["epsilon"] for x in lines if x["node"] == node]
        assert mine == pytest.approx([epsilon([(0.05, 1.0, k)], 1e-5, "rdp") for k in (1, 2, 3)])
    assert summary["epsilon"] == pytest.approx(epsilon([(0.05, 1.0, 3)], 1e-5, "rdp"))
    assert json.loads((tmp_path / "run" / "summary.json").read_text())["dp_level"] == "client"
