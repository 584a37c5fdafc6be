"""Shared fixtures: an isolated Flower/Ray environment and the fedvault CLI.

Every test that starts processes gets its own FLWR_HOME and RAY_TMPDIR, and
telemetry, update checks and runtime dependency installation are off.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

# /tmp/fvray-* made by isolated_env, shared by both imports of this file (tests/ray_dirs.py)
from tests.ray_dirs import CURRENT as _RAY_DIRS, EVERY as _EVERY_RAY_DIR

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture(autouse=True)
def _remove_ray_dirs():
    yield
    while _RAY_DIRS:
        shutil.rmtree(_RAY_DIRS.pop(), ignore_errors=True)


@pytest.fixture(autouse=True, scope="session")
def _remove_ray_dirs_at_the_end():
    """A Ray process still shutting down may write into a directory after its test removed
    it, and a module fixture re-creates its directory: when the session ends, stop (by PID)
    every process still running out of one, then sweep them all."""
    yield
    _stop_processes_naming({str(d) for d in _EVERY_RAY_DIR})
    for ray_dir in _EVERY_RAY_DIR:
        shutil.rmtree(ray_dir, ignore_errors=True)


def _stop_processes_naming(dirs: set[str], grace: float = 5.0) -> None:
    """SIGTERM, then after `grace` seconds SIGKILL, each process whose command line names
    one of `dirs` (Ray's raylet, GCS and workers carry their session directory)."""
    import signal
    import time

    def naming() -> list[int]:
        pids = []
        for entry in Path("/proc").glob("[0-9]*"):
            try:
                cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            except OSError:  # gone meanwhile, or not ours to read
                continue
            if int(entry.name) != os.getpid() and any(d in cmdline for d in dirs):
                pids.append(int(entry.name))
        return pids

    if not dirs or not Path("/proc").is_dir():
        return
    for sig in (signal.SIGTERM, signal.SIGKILL):
        pids = naming()
        for pid in pids:
            try:
                os.kill(pid, sig)
            except OSError:
                pass
        deadline = time.monotonic() + grace
        while pids and time.monotonic() < deadline and naming():
            time.sleep(0.2)


def isolated_env(tmp: Path) -> dict[str, str]:
    # Ray's AF_UNIX socket paths must stay under 107 bytes: pytest's tmp paths
    # are too long, so Ray gets a short directory of its own under /tmp.
    ray_tmp = tmp / "ray-dir.txt"
    if not ray_tmp.exists():
        tmp.mkdir(parents=True, exist_ok=True)
        ray_tmp.write_text(tempfile.mkdtemp(prefix="fvray-", dir="/tmp"))
    ray_dir = Path(ray_tmp.read_text())
    if ray_dir not in _RAY_DIRS:  # (again, when a module fixture's test already removed it)
        ray_dir.mkdir(mode=0o700, exist_ok=True)
        _RAY_DIRS.append(ray_dir)
        _EVERY_RAY_DIR.add(ray_dir)
    env = dict(os.environ)
    env.update(
        FLWR_HOME=str(tmp / "flwr-home"),
        RAY_TMPDIR=ray_tmp.read_text(),
        FLWR_TELEMETRY_ENABLED="0",
        FLWR_DISABLE_UPDATE_CHECK="1",
        FLWR_DISABLE_RUNTIME_DEPENDENCY_INSTALLATION="1",
        RAY_USAGE_STATS_ENABLED="0",
        PYTHONUNBUFFERED="1",
        PYTHONPATH=str(REPO),
        # Flower starts its own executables (flower-superlink, flwr-clientapp) by name.
        PATH=os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")]),
    )
    return env


@pytest.fixture
def fedvault_cli(tmp_path):
    """Run `fedvault ARGS...` in a subprocess; returns the CompletedProcess."""

    def run(*args: str, timeout: float = 600, check: bool = False) -> subprocess.CompletedProcess:
        proc = subprocess.run(
            [sys.executable, "-m", "simulations.cli", *args],
            cwd=REPO,
            env=isolated_env(tmp_path),
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        if check and proc.returncode != 0:
            raise AssertionError(f"fedvault {' '.join(args)} exited {proc.returncode}:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
        return proc

    return run
