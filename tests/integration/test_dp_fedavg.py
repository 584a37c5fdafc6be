"""Claims about DP-FedAvg with the privacy ledger and the audit, on Flower's Simulation
Engine (Ray) through the fedvault CLI. Rounds are cut to 2 to keep CI short; the full
20-round scenario's accuracy band is a slow test (tests/slow/test_dp_bands.py)."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from server.run_dir import RunDirectory
from simulations.deploy.processes import ProcessGroup
from tests.audit_screenshot import CHROMIUM, MIN_PIXELS_PER_FIGURE, SKIP_REASON, figure_pixels
from tests.conftest import REPO, isolated_env

pytestmark = pytest.mark.integration

SHORT = ["--set", "dp.target-epsilon=3", "--set", "num-server-rounds=2"]


def _simulate(out: Path, *extra: str) -> list[str]:
    return ["simulate", "dp-fedavg", "--out", str(out), *SHORT, *extra]


@pytest.fixture(scope="module")
def dp_run(tmp_path_factory):
    """One uninterrupted 2-round DP-FedAvg run with the audit on: (dir, summary, stdout)."""
    tmp = tmp_path_factory.mktemp("dp-run")
    out = tmp / "run"
    proc = subprocess.run(
        [sys.executable, "-m", "simulations.cli", *_simulate(out)],
        cwd=REPO,
        env=isolated_env(tmp),
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return out, json.loads((out / "summary.json").read_text()), proc.stdout


def _ledger(run: Path) -> list[dict]:
    return [json.loads(line) for line in (run / "ledger.jsonl").read_text().splitlines()]


def test_a_dp_run_writes_its_ledger_and_states_epsilon_within_the_target(dp_run):
    run, summary, stdout = dp_run
    lines = _ledger(run)
    assert sorted((x["round"], x["node"]) for x in lines) == [
        (1, "p0"),
        (1, "p1"),
        (2, "p0"),
        (2, "p1"),
    ]
    assert summary["epsilon"] == max(x["epsilon"] for x in lines) <= 3.0 + 1e-6
    assert summary["delta"] == 1e-5
    assert summary["accuracy"] >= 0.4  # 2 of the scenario's 20 rounds; chance is 0.1
    assert "audit_report" in stdout and summary["audit_report"].endswith("report.html")


def test_fedvault_audit_passes_the_run_and_writes_the_report(dp_run, fedvault_cli):
    run = dp_run[0]
    proc = fedvault_cli("audit", str(run), timeout=300)
    assert proc.returncode == 0, proc.stdout[-3000:]
    report = json.loads((run / "audit" / "report.json").read_text())
    assert {"report.json", "report.md", "report.html"} <= {
        p.name for p in (run / "audit").iterdir()
    }
    assert report["verdict"] in ("PASS", "WARN")
    assert all({"id", "status", "detail"} <= set(c) for c in report["checks"])
    assert report["canary_audit"]["epsilon_lower_bound"] >= 0.0
    assert 0.0 <= report["mia"]["auc"] <= 1.0 and "0.01" in report["mia"]["tpr_at_fpr"]
    assert {k: c["epsilon"] for k, c in report["accounting"]["per_client"].items()} == {
        x["node"]: x["epsilon"] for x in _ledger(run) if x["round"] == 2
    }


def test_epsilon_matches_an_independent_accountant_recomputed_from_the_ledger(dp_run):
    """Google's dp-accounting (PLD), straight from ledger.jsonl, against the nodes' Opacus PRV."""
    from dp_accounting import dp_event, pld

    run = dp_run[0]
    report = json.loads((run / "audit" / "report.json").read_text())
    for node, claim in report["accounting"]["per_client"].items():
        accountant = pld.PLDAccountant(value_discretization_interval=1e-4)
        for line in (x for x in _ledger(run) if x["node"] == node):
            event = dp_event.PoissonSampledDpEvent(
                line["sample_rate"], dp_event.GaussianDpEvent(line["noise_multiplier"])
            )
            accountant.compose(event, line["steps"])
        independent = accountant.get_epsilon(1e-5)
        assert claim["epsilon"] == pytest.approx(independent, rel=0.05)


@pytest.mark.skipif(CHROMIUM is None, reason=SKIP_REASON)
def test_the_report_opens_in_headless_chromium_with_its_figures(dp_run, tmp_path):
    run = dp_run[0]
    figures = json.loads((run / "audit" / "report.json").read_text())["figures"]
    assert len(figures) >= 4
    assert figure_pixels(run / "audit" / "report.html", tmp_path) > MIN_PIXELS_PER_FIGURE * len(
        figures
    )


# slow (47 s): CI runs the same A13 check in process
# (tests/unit/test_audit_report.py::test_noise_far_below_the_ledgers_claim_fails_the_noise_probe)
@pytest.mark.slow
def test_noise_far_below_the_ledgers_claim_makes_the_audit_fail(
    fedvault_cli, tmp_path, monkeypatch
):
    # Tests only: the nodes add a tenth of the noise while their ledger still claims σ.
    monkeypatch.setenv("FEDVAULT_TEST_FAULT_DP_NOISE_SCALE", "0.1")
    run = tmp_path / "run"
    fedvault_cli(
        "simulate", "dp-fedavg", "--out", str(run), "--set", "num-server-rounds=1", check=True
    )
    monkeypatch.delenv("FEDVAULT_TEST_FAULT_DP_NOISE_SCALE")
    proc = fedvault_cli("audit", str(run), timeout=300)
    assert proc.returncode == 1
    report = json.loads((run / "audit" / "report.json").read_text())
    a13 = next(c for c in report["checks"] if c["id"] == "A13")
    assert a13["status"] == "FAIL" and "ratio 0.1" in a13["detail"]


def _wait_for_first_checkpoint(run: Path, group: ProcessGroup, timeout: float) -> None:
    """Round 1's checkpoint is the run's first: once it exists, the server may die."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        group.track()
        if (run / "checkpoint" / "latest.npz").exists():
            return
        time.sleep(0.2)
    raise AssertionError(f"round 1 never finished:\n{group.log_path('sim').read_text()[-2000:]}")


# slow (61 s): CI covers its parts apart: a killed and resumed simulation
# (tests/integration/test_simulation.py), ε composing after a resume whose nodes lost their
# state (tests/unit/test_ledger.py) and secret noise (tests/unit/test_dp_against_server.py)
@pytest.mark.slow
def test_epsilon_keeps_composing_after_the_server_is_killed_and_resumed(
    dp_run, fedvault_cli, tmp_path
):
    """Simulated nodes come back with an empty context.state: only the ledger history the
    server sends lets them re-create their accountant."""
    killed = tmp_path / "killed"
    with ProcessGroup(tmp_path / "logs", env=isolated_env(tmp_path)) as group:
        group.start("sim", [sys.executable, "-m", "simulations.cli", *_simulate(killed)], cwd=REPO)
        _wait_for_first_checkpoint(killed, group, timeout=300)
        group.kill("sim", signal.SIGKILL)
        group.stop()
        assert not group.survivors()
    assert not (killed / "summary.json").exists()
    fedvault_cli("simulate", "--resume", str(killed), check=True)
    resumed = {x["node"]: x["epsilon"] for x in _ledger(killed) if x["round"] == 2}
    full = {x["node"]: x["epsilon"] for x in _ledger(dp_run[0]) if x["round"] == 2}
    assert resumed == pytest.approx(full, rel=1e-9)
    assert "resumed from the checkpoint of round 1" in (killed / "events.log").read_text()
    # Two DP runs with the same --seed: the same ε, but secret noise, so different models
    # (a seeded-noise implementation ends both on the same arrays, bit for bit).
    ours = RunDirectory(killed).load_checkpoint()[0]
    theirs = RunDirectory(dp_run[0]).load_checkpoint()[0]
    assert ours.keys() == theirs.keys()
    assert not all(np.array_equal(ours[k], theirs[k]) for k in ours)
