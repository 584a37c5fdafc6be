"""Claims about FedSA on Flower's Simulation Engine (Ray), through `fedvault simulate fedsa`.

Short runs (2 rounds, 2 teacher epochs): they check the federated flow and the
summary, not the accuracy bands (tests/slow/test_fedsa_bands.py does those).
A gRPC deployment test of FedSA waits for `fedvault deploy` (simulations/deploy/local_federation.py).
"""

from __future__ import annotations

import json

import pytest

pytestmark = pytest.mark.integration

SHORT = ["--set", "num-server-rounds=2", "--set", "fedsa.reselect-every=1",
         "--set", "fedsa.teacher-epochs=2", "--set", "fedsa.probe-epochs=5",
         "--set", "fedsa.adapt-epochs=5"]
ISSUE_KEYS = {"accuracy", "accuracy_scratch", "selection_precision", "similarity", "selected",
              "bytes_from_teachers", "teacher_weights_sent"}


def test_simulate_fedsa_writes_the_issue_summary(fedvault_cli, tmp_path):
    out = tmp_path / "run"
    proc = fedvault_cli("simulate", "fedsa", "--out", str(out), "--seed", "0", *SHORT,
                        timeout=300, check=True)
    summary = json.loads((out / "summary.json").read_text())
    assert ISSUE_KEYS <= set(summary)
    assert summary["num_clients"] == 6 and summary["transport"] == "simulation"
    assert 0.0 <= summary["accuracy"] <= 1.0 and 0.0 <= summary["accuracy_scratch"] <= 1.0
    assert set(summary["similarity"]) == {f"p{i}" for i in range(6)}
    assert summary["selection_precision"] in (0.0, 0.5, 1.0)
    assert [s["round"] for s in summary["selected"]] == [1, 2]
    assert all(sum(s["draws"].values()) == 2 for s in summary["selected"])  # k = 2 draws
    # Real Ray actors sent these bytes; none of them was a teacher's tensor.
    assert summary["teacher_weights_sent"] is False
    by_phase = summary["bytes_from_teachers_by_phase"]
    assert summary["bytes_from_teachers"] == sum(by_phase.values()) > 0
    assert by_phase["select"] < 6 * 2 * 100  # one scalar report per node and selection
    assert not (out / "events.log").exists() or "rejected" not in (out / "events.log").read_text()
    assert "teacher_weights_sent" in proc.stdout
    # Ray actors, arrival order and all, compute exactly what the in-process grid computes.
    reference = _in_process(tmp_path / "reference", seed=0)
    for key in ("accuracy", "accuracy_scratch", "similarity", "selected", "bytes_from_teachers"):
        assert summary[key] == reference[key], key


def _in_process(run_dir, seed: int) -> dict:
    from server.runner import Job, run_job
    from server.scenario import resolve
    from tests.inprocess_grid import InProcessGrid, partition_nodes

    sets = dict(item.split("=", 1) for item in SHORT[1::2])
    spec = resolve("fedsa", {**sets, "seed": str(seed)})
    return run_job(InProcessGrid(partition_nodes(6)), Job(spec=spec, run_dir=str(run_dir)))


# slow (20 s): CI checks the same refusal in process (tests/unit/test_fedsa_workflow.py)
@pytest.mark.slow
def test_too_few_teachers_for_k_fail_clearly_at_start(fedvault_cli, tmp_path):
    out = tmp_path / "run"
    proc = fedvault_cli("simulate", "fedsa", "--out", str(out), "--set", "fedsa.k=7", timeout=300)
    assert proc.returncode == 1
    assert "needs k=7 teachers but only 6 node(s)" in (out / "events.log").read_text()
    assert not (out / "summary.json").exists()
    assert not (out / "metrics.jsonl").exists()  # it stopped before training anything
