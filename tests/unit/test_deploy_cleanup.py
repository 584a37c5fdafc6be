"""Claims: `fedvault deploy` leaves no /tmp/fvdeploy-* behind unless asked to keep it, and a
run that did not complete keeps its process logs in its run directory (no processes here:
the federation itself is stubbed)."""

from __future__ import annotations

from pathlib import Path

import pytest

from server.scenario import resolve
from simulations.deploy import scenario as deploy_scenario

pytestmark = pytest.mark.unit


@pytest.fixture
def workdirs(monkeypatch):
    """Stub the federation: it writes a key and a log in its work dir and ends as told."""
    seen: list[Path] = []

    def stub(outcome):
        def fake(workdir, *args, **kwargs):
            seen.append(workdir)
            (workdir / "keys").mkdir()
            (workdir / "keys" / "node-0").write_text("private")
            (workdir / "logs").mkdir()
            (workdir / "logs" / "node-0.log").write_text("node log")
            if isinstance(outcome, Exception):
                raise outcome
            return outcome

        monkeypatch.setattr(deploy_scenario, "_deploy_in", fake)

    return seen, stub


def _deploy(tmp_path, **kwargs):
    spec = resolve("fedavg", {"num-clients": "2"})
    return deploy_scenario.deploy("fedavg", spec, {}, nodes=2, run_dir=tmp_path / "run", **kwargs)


def test_a_completed_deploy_removes_its_temporary_directory(tmp_path, workdirs):
    seen, stub = workdirs
    stub("finished:completed")
    assert _deploy(tmp_path) == "finished:completed"
    assert seen[0].name.startswith("fvdeploy-") and not seen[0].exists()
    assert not (tmp_path / "run" / "deploy-logs").exists()


def test_a_failed_deploy_keeps_its_logs_in_the_run_directory_and_cleans_up(tmp_path, workdirs):
    seen, stub = workdirs
    stub(RuntimeError("a node died"))
    with pytest.raises(RuntimeError):
        _deploy(tmp_path)
    assert not seen[0].exists()
    assert (tmp_path / "run" / "deploy-logs" / "node-0.log").read_text() == "node log"
    assert not list((tmp_path / "run").rglob("node-0")), "a private key left the temp dir"


def test_keep_temp_keeps_it(tmp_path, workdirs):
    seen, stub = workdirs
    stub("finished:completed")
    try:
        _deploy(tmp_path, keep_temp=True)
        assert (seen[0] / "keys" / "node-0").is_file()
    finally:
        import shutil

        shutil.rmtree(seen[0], ignore_errors=True)
