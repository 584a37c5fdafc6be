"""Claims about the worked example of docs/own_method.md (examples/own_method), run the way a
user runs it: from a copy outside the repository, with the installed `fedvault` command
and nothing of the repository on PYTHONPATH, from another working directory, so that the
user's module is found only because it lies beside the scenario file."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import REPO, isolated_env

pytestmark = pytest.mark.integration

EXAMPLE = REPO / "examples" / "own_method"
FEDVAULT = Path(sys.executable).parent / "fedvault"  # the console script pip installed


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    """A copy of the example with its data written by its own make_data.py, and the
    environment to run it in."""
    tmp = tmp_path_factory.mktemp("own-method")
    copy = tmp / "my project"  # a space: no path is ever split or unquoted
    shutil.copytree(EXAMPLE, copy, ignore=shutil.ignore_patterns("data", "__pycache__"))
    assert REPO not in copy.resolve().parents
    env = isolated_env(tmp)
    del env["PYTHONPATH"]  # the installed fedvault only, as on a user's machine
    subprocess.run([sys.executable, "make_data.py"], cwd=copy, env=env, check=True,
                   capture_output=True, timeout=300)
    return copy, env


def _fedvault(env: dict, cwd: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([str(FEDVAULT), *args], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=600)


def test_the_example_trains_the_users_model_on_the_users_images(project):
    copy, env = project
    out = copy.parent / "run"
    proc = _fedvault(env, copy.parent, "simulate", str(copy / "scenario.toml"),
                     "--set", "num-server-rounds=2", "--out", str(out))
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    config = json.loads((out / "config.json").read_text())["run"]
    assert config["method"] == "mymethod:TinyCNN" and config["tinycnn.width"] == 8
    assert config["data.root"] == str(copy / "data")  # relative to the scenario file
    summary = json.loads((out / "summary.json").read_text())
    assert summary["method"] == "mymethod:TinyCNN" and summary["rounds"] == 2
    # accuracy on data/test, which no client trains on; chance is 0.1 (10 digits). Measured
    # 0.78 after 2 rounds (seed 0).
    assert summary["accuracy"] > 0.5


def test_a_model_that_does_not_fit_the_images_exits_2_naming_the_users_file(project):
    copy, env = project
    broken = copy.parent / "broken"
    shutil.copytree(copy, broken, ignore=shutil.ignore_patterns("data", "__pycache__"))
    (broken / "scenario.toml").write_text(
        (broken / "scenario.toml").read_text().replace('root = "data"', f'root = "{copy / "data"}"'))
    source = (broken / "mymethod.py").read_text()
    (broken / "mymethod.py").write_text(source.replace("(height // 4)", "(height // 2)"))
    out = copy.parent / "broken-run"
    proc = _fedvault(env, copy.parent, "simulate", str(broken / "scenario.toml"), "--out", str(out))
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode == 2 and len(lines) == 1, proc.stderr
    assert str(broken / "mymethod.py") in lines[0] and "fails on 2 examples" in lines[0]
    assert not out.exists()


@pytest.mark.slow  # a real gRPC federation: ~2.5 min on 2 busy cores
def test_the_example_runs_under_deploy_its_nodes_importing_it_through_method_path(project):
    """The nodes start in /tmp/fvdeploy-*, not beside the module: only `fedvault node
    --method-path` (passed by deploy, as an operator passes it) lets their ClientApps
    import it; the ServerApp finds it beside the scenario file."""
    copy, env = project
    out = copy.parent / "deployed"
    proc = _fedvault(env, copy.parent, "deploy", str(copy / "scenario.toml"), "--nodes", "2",
                     "--set", "num-server-rounds=2", "--out", str(out))
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    summary = json.loads((out / "summary.json").read_text())
    assert summary["method"] == "mymethod:TinyCNN" and summary["transport"] == "grpc-rere"
    assert summary["rounds"] == 2 and summary["num_clients"] == 2
    assert summary["accuracy"] > 0.2  # measured 0.44 (2 nodes, 2 rounds, seed 0)
