"""`flwr run .` runs the default scenario offline, Flower's own way."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from simulations.deploy.processes import ProcessGroup, all_processes, free_port
from tests.conftest import REPO, isolated_env

pytestmark = pytest.mark.integration


def _managed_superlinks(flwr_home: Path) -> list[int]:
    """PIDs of the local SuperLink `flwr run` started for this FLWR_HOME (it outlives flwr run)."""
    found = []
    for info in all_processes():
        try:
            cmdline = Path(f"/proc/{info.pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue
        if "flower-superlink" in cmdline and str(flwr_home) in cmdline:
            found.append(info.pid)
    return found


def test_flwr_run_dot_completes_offline(tmp_path):
    env = isolated_env(tmp_path)
    env["FLWR_LOCAL_SUPERLINK_HTTP_API_PORT"] = str(free_port())
    flwr = str(Path(sys.executable).parent / "flwr")
    out = tmp_path / "run"
    overrides = tmp_path / "overrides.toml"
    overrides.write_text(f'run-dir = "{out}"\noverrides = "num-server-rounds=2"\n')
    with ProcessGroup(tmp_path / "logs", env=env) as group:
        try:
            proc = group.run([flwr, "run", ".", "--stream", "-c", str(overrides)], timeout=420, cwd=REPO)
        finally:
            superlinks = _managed_superlinks(Path(env["FLWR_HOME"]))
            for pid in superlinks:  # started detached by flwr run: stop it by PID
                group.adopt(pid)
            group.stop()
        assert not group.survivors()
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    assert superlinks, "flwr run should have started a local SuperLink"
    summary = json.loads((out / "summary.json").read_text())
    assert summary["rounds"] == 2 and summary["accuracy"] > 0.5
    assert summary["num_clients"] == 2  # Flower's default local federation
