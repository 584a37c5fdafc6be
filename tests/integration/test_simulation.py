"""Claims about real runs of Flower's Simulation Engine (Ray), via the fedvault CLI (what a
finished run writes is checked by tests/integration/test_run_report.py's run)."""

from __future__ import annotations

import json
import shutil
import signal
import sys
import time
from pathlib import Path

import pytest

from simulations.deploy.processes import ProcessGroup
from tests.conftest import REPO, isolated_env

pytestmark = pytest.mark.integration

SMALL = ["--set", "num-clients=3", "--set", "fedavg.local-epochs=1"]


def _simulate_cmd(out: Path, rounds: int) -> list[str]:
    return [sys.executable, "-m", "simulations.cli", "simulate", "fedavg", "--out", str(out),
            "--seed", "3", "--set", f"num-server-rounds={rounds}", *SMALL]


def _wait_for_round(metrics: Path, rnd: int, group: ProcessGroup, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        group.track()
        if metrics.exists() and len(metrics.read_text().splitlines()) >= rnd:
            return
        time.sleep(0.2)
    raise AssertionError(f"round {rnd} never finished; log:\n{group.log_path('sim').read_text()[-2000:]}")


def test_resume_after_the_server_is_killed_matches_an_uninterrupted_run_and_a_cut_checkpoint_is_refused(fedvault_cli, tmp_path):
    rounds = 4
    fedvault_cli(*_simulate_cmd(tmp_path / "full", rounds)[3:], check=True)
    full = json.loads((tmp_path / "full" / "summary.json").read_text())

    killed = tmp_path / "killed"
    with ProcessGroup(tmp_path / "logs", env=isolated_env(tmp_path)) as group:
        group.start("sim", _simulate_cmd(killed, rounds), cwd=REPO)
        _wait_for_round(killed / "metrics.jsonl", 2, group, timeout=300)
        group.kill("sim", signal.SIGKILL)  # the server dies mid-run, Ray with it
        group.stop()
        assert not group.survivors()
    assert not (killed / "summary.json").exists()

    # A copy whose checkpoint is cut short is refused before anything starts.
    corrupt = tmp_path / "corrupt"
    shutil.copytree(killed, corrupt)
    ckpt = corrupt / "checkpoint" / "latest.npz"
    ckpt.write_bytes(ckpt.read_bytes()[:100])
    proc = fedvault_cli("simulate", "--resume", str(corrupt))
    assert proc.returncode == 2
    assert "truncated" in proc.stderr or "truncated" in proc.stdout

    fedvault_cli("simulate", "--resume", str(killed), check=True)
    resumed = json.loads((killed / "summary.json").read_text())
    assert resumed["rounds"] == rounds
    assert abs(resumed["accuracy"] - full["accuracy"]) <= 0.01
    assert "resumed from the checkpoint of round" in (killed / "events.log").read_text()
    assert [json.loads(l)["round"] for l in (killed / "metrics.jsonl").read_text().splitlines()] == [1, 2, 3, 4]
