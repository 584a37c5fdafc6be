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
    it, and a module fixture re-creates its directory: sweep them all when the session ends."""
    yield
    for ray_dir in _EVERY_RAY_DIR:
        shutil.rmtree(ray_dir, ignore_errors=True)


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
