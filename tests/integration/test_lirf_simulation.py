"""Claims about LIRF on Flower's Simulation Engine (Ray), through `fedvault simulate lirf`.

One short run (3 rounds, 3 deposit epochs): it checks the federated flow, the
summary and the owner-only withdrawal, not the bands (tests/slow/test_lirf_bands.py).
The gRPC deployment of LIRF waits for `fedvault deploy` (simulations/deploy/local_federation.py).
"""

from __future__ import annotations

import json

import pytest

pytestmark = pytest.mark.integration

SHORT = ["--set", "num-server-rounds=3", "--set", "lirf.deposit-epochs=3",
         "--set", "lirf.withdraw-requesters=1,0"]


def test_simulate_lirf_deposits_withdraws_and_reports_the_issue_summary(fedvault_cli, tmp_path):
    out = tmp_path / "run"
    proc = fedvault_cli("simulate", "lirf", "--out", str(out), "--seed", "1", *SHORT,
                        timeout=300, check=True)
    summary = json.loads((out / "summary.json").read_text())
    assert summary["num_clients"] == 5 and summary["transport"] == "simulation"
    for model, keys in {"original": {"pre_acc", "dep_acc"},
                        "target": {"pre_acc", "dep_acc", "F", "H"},
                        "recovered": {"pre_acc", "dep_acc", "avg_acc"}}.items():
        assert keys <= set(summary[model]), model
    assert set(summary["mia_auc"]) >= {"original", "target", "retrain"}
    assert all(0.0 <= v <= 1.0 for v in summary["mia_auc"].values())
    assert summary["deposit_seconds"] > 0 and summary["retrain_seconds"] > 0
    assert summary["deposit_module_on_server"] is False
    # Even 3 rounds of FedAvg know the deposit classes; the deposit removes most of it.
    assert summary["target"]["dep_acc"] < summary["original"]["dep_acc"]
    assert summary["recovered"]["dep_acc"] > summary["target"]["dep_acc"]
    assert summary["withdraw_refusals"] == 1
    assert "(partition 1) refused" in (out / "events.log").read_text()
    assert summary["receipt"]["status"] == "withdrawn"
    assert not any((out / "nodes").rglob("*.npz"))  # the owner released its module
    assert "deposit_module_on_server" in proc.stdout
    # Ray actors compute exactly what the in-process grid computes.
    reference = _in_process(tmp_path / "reference", seed=1)
    for key in ("original", "target", "recovered"):
        assert summary[key] == reference[key], key
        assert summary["mia_auc"][key] == reference["mia_auc"][key], key
    assert summary["receipt"]["module_sha256"] == reference["receipt"]["module_sha256"]


def _in_process(run_dir, seed: int) -> dict:
    from server.runner import Job, run_job
    from server.scenario import resolve
    from tests.inprocess_grid import InProcessGrid, partition_nodes

    sets = dict(item.split("=", 1) for item in SHORT[1::2])
    spec = resolve("lirf", {**sets, "seed": str(seed), "lirf.retrain-baseline": "false"})
    return run_job(InProcessGrid(partition_nodes(5)), Job(spec=spec, run_dir=str(run_dir)))
