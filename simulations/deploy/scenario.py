"""`fedvault deploy`: a scenario over a real local gRPC federation.

A SuperLink and N SuperNodes start on 127.0.0.1 (simulations/deploy/local_federation.py), each
node through `fedvault node` (the same path a client on another host uses),
with TLS and SuperNode authentication unless `insecure`. The app in this
repository is submitted with `flwr run`; the ServerApp writes the run
directory; whatever happens, every process started is stopped.
"""

from __future__ import annotations

import contextlib
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Callable, Mapping

from methods.base import RunSpec
from simulations.deploy.local_federation import DeploymentError, LocalFederation, NodeLaunch

APP_DIR = Path(__file__).resolve().parents[2]  # holds pyproject.toml [tool.flwr.app]


def node_policy_flags(spec: RunSpec) -> list[str]:
    """A DP scenario's local nodes hold their own floor (clients/dp_policy.py), as an
    operator's would: they refuse any request without sample-level DP-SGD."""
    if not (spec.dp.enabled and spec.dp.level == "sample"):
        return []
    return ["--require-dp"] + (["--allow-audit"] if spec.audit.enabled else [])


def node_method_path_flags(scenario: str) -> list[str]:
    """A scenario file's directory, where a user's `module:Class` lies, for the local nodes'
    ClientApps; an operator on another host passes `--method-path` the same way."""
    if not scenario.endswith(".toml"):
        return []
    return ["--method-path", str(Path(scenario).resolve().parent)]


def fedvault_node_command(launch: NodeLaunch, flags: tuple[str, ...] = ()) -> list[str]:
    """`fedvault node` for a local node; `flags`: its policy and method-path options."""
    argv = [sys.executable, "-m", "simulations.cli", "node", "--superlink", launch.superlink,
            "--port", str(launch.port), "--partition", f"{launch.index}/{launch.num_nodes}",
            *flags]
    if launch.insecure:
        return argv + ["--insecure"]
    argv += ["--root-certificates", str(launch.root_certificates)]
    return argv + (["--auth-key", str(launch.auth_key)] if launch.auth_key else [])


def run_config(scenario: str, overrides: Mapping[str, str], run_dir: Path, secure: bool,
               resume: bool = False) -> dict:
    """The ServerApp's run config; with `resume` it continues the run in `run_dir`."""
    transport = {"transport": "grpc-rere", "tls": secure, "node_auth": secure}
    config = {
        "scenario": scenario,
        "overrides": ";".join(f"{k}={v}" for k, v in overrides.items()),
        "run-dir": str(run_dir.resolve()),
        "deployment": json.dumps(transport),
    }
    return {**config, "resume": str(run_dir.resolve())} if resume else config


def run_timeout(spec: RunSpec) -> float:
    """An upper bound for the whole run: every round may wait its full timeout."""
    fed = spec.federation
    return fed.node_wait_timeout + 3 * fed.num_server_rounds * fed.round_timeout + 300


# Seconds between two `flwr ls` while the run directory shows no end. Each is a fresh
# Python process importing Flower (~1.4 CPU-s), taken from the rounds it watches on a
# 2-core host; the run directory says cheaply when to ask (docs/performance.md, deploy).
STATUS_EVERY = 15.0


def run_end_marks(run_dir: Path) -> tuple[bool, int]:
    """What the ServerApp writes as a run ends: summary.json, or a "run failed" event."""
    events = run_dir / "events.log"
    failures = events.read_text(errors="replace").count("run failed") if events.exists() else 0
    return (run_dir / "summary.json").exists(), failures


def follow(run_dir: Path, seen: int, on_record: Callable[[dict], None]) -> int:
    """Report metrics records that appeared since `seen`; returns the new count."""
    path = run_dir / "metrics.jsonl"
    lines = path.read_text().splitlines() if path.exists() else []
    for line in lines[seen:]:
        on_record(json.loads(line))
    return len(lines)


def deploy(
    scenario: str,
    spec: RunSpec,
    overrides: Mapping[str, str],
    *,
    nodes: int,
    run_dir: Path,
    secure: bool = True,
    on_record: Callable[[dict], None] = lambda record: None,
    on_started: Callable[[LocalFederation], None] = lambda fed: None,
    resume: bool = False,
    keep_temp: bool = False,
    node_flags: tuple[str, ...] = (),
) -> str:
    """Run `scenario` on a fresh local federation (or, with `resume`, continue the
    run in `run_dir` from its checkpoint); returns Flower's final run status.

    The federation's working directory (/tmp/fvdeploy-*: certificates, node keys,
    Flower's state database, process logs) is removed at the end unless `keep_temp`;
    when the run did not complete, its process logs are first copied to
    `run_dir/deploy-logs/`. `node_flags` go to every `fedvault node` (e.g.
    `("--isolation", "subprocess")` for Flower's one process per message)."""
    workdir = Path(tempfile.mkdtemp(prefix="fvdeploy-", dir="/tmp"))
    status = ""
    try:
        status = _deploy_in(workdir, scenario, spec, overrides, nodes=nodes, run_dir=run_dir,
                            secure=secure, on_record=on_record, on_started=on_started,
                            resume=resume, node_flags=node_flags)
        return status
    finally:
        if status != "finished:completed" and (workdir / "logs").is_dir():
            with contextlib.suppress(OSError):  # best effort: never hide the run's own error
                shutil.copytree(workdir / "logs", run_dir / "deploy-logs", dirs_exist_ok=True)
        if not keep_temp:
            shutil.rmtree(workdir, ignore_errors=True)


def _deploy_in(workdir: Path, scenario: str, spec: RunSpec, overrides: Mapping[str, str], *,
               nodes: int, run_dir: Path, secure: bool, on_record: Callable[[dict], None],
               on_started: Callable[[LocalFederation], None], resume: bool,
               node_flags: tuple[str, ...] = ()) -> str:
    flags = (*node_policy_flags(spec), *node_method_path_flags(scenario), *node_flags)
    with LocalFederation(workdir, nodes, secure=secure,
                         node_command=lambda launch: fedvault_node_command(launch, flags)) as fed:
        on_started(fed)
        ends_before = run_end_marks(run_dir)
        run_id = fed.submit(APP_DIR, run_config(scenario, overrides, run_dir, secure, resume))
        deadline, seen, next_status = time.monotonic() + run_timeout(spec), 0, 0.0
        while True:
            fed.group.track()
            seen = follow(run_dir, seen, on_record)
            ended = run_end_marks(run_dir) != ends_before
            if ended or time.monotonic() >= next_status:
                if (status := fed.status(run_id)).startswith("finished:"):
                    break
                next_status = time.monotonic() + STATUS_EVERY
            if time.monotonic() > deadline:
                fed.flwr("stop", str(run_id), fed.connection, check=False)
                raise DeploymentError(f"run {run_id} still {status!r} after {run_timeout(spec):.0f} s")
            time.sleep(1.0)
        follow(run_dir, seen, on_record)
        if status != "finished:completed":
            (run_dir / "serverapp.log").parent.mkdir(parents=True, exist_ok=True)
            (run_dir / "serverapp.log").write_text(fed.logs(run_id))
    return status
