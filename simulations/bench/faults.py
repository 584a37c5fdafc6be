"""`fedvault bench faults`: SIGKILL a SuperNode mid-round in real gRPC deployments.

The claim (docs/guarantees.md): across fedavg, fedsa and lirf, every run must end (completed with
the remaining nodes, or a clean server-side FederationError when too few remain) within the
round timeout plus a bounded grace, and events.log must name the node and round.
Each trial is a fresh LocalFederation (TLS + node auth, 3 SuperNodes via
`fedvault node`), a tiny configuration and one kill while the node's second
ClientApp (its first training request) runs.

Figures: trials, completed, clean_errors, hangs (must be 0), max_seconds_to_end
(from the kill to the run's last write: summary.json or its "run failed" event).
"""

from __future__ import annotations

import json
import shutil
import tempfile
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from server.scenario import resolve
from simulations.deploy.local_federation import DeploymentError
from simulations.deploy.scenario import deploy
from simulations.deploy.faults import kill_node_mid_round

ROUND_TIMEOUT = {"fedavg": 45.0, "fedsa": 120.0, "lirf": 45.0}
"""Seconds each round waits for a killed node: short, so a trial costs little, yet long
enough for a live node's ClientApp to start on a shared 2-core machine (FedSA's nodes
train their teachers at the first request, as its scenario's 900 s timeout allows for).
At 30 s for all, under a load average of ~25 live nodes missed rounds too."""
GRACE = 120.0
"""Bound on the rest of a run after the timed-out round: later rounds and phases, the
final evaluation and writing the summary, on a shared 2-core machine."""

SMALL = {
    "fedavg": {"fedavg.local-epochs": "1", "data.dataset": "digits"},
    "fedsa": {"fedsa.teacher-epochs": "1", "fedsa.probe-epochs": "2", "fedsa.adapt-epochs": "2",
              "fedsa.reselect-every": "1", "fedsa.batch-size": "256", "min-nodes": "2"},
    "lirf": {"lirf.local-epochs": "1", "lirf.deposit-epochs": "1", "lirf.retrain-baseline": "false",
             "data.dataset": "digits"},
}


@dataclass(frozen=True)
class Trial:
    scenario: str
    kill: int
    """Index of the SuperNode to SIGKILL (LIRF's owner is partition 0)."""
    extra: dict[str, str] = field(default_factory=dict)

    def overrides(self) -> dict[str, str]:
        return {"num-server-rounds": "2", "num-clients": "3",
                "round-timeout": str(ROUND_TIMEOUT[self.scenario]),
                "node-wait-timeout": "60", **SMALL[self.scenario], **self.extra}


TRIALS = [
    Trial("fedavg", 1), Trial("fedavg", 2, {"seed": "1"}), Trial("fedavg", 0, {"seed": "2"}),
    Trial("fedavg", 1, {"min-nodes": "3"}),  # too few remain: must be a clean error
    Trial("fedsa", 1), Trial("fedsa", 2), Trial("fedsa", 0),
    Trial("lirf", 1), Trial("lirf", 2),
    Trial("lirf", 0),  # the depositing owner dies
]


def _outcome(status: str, run_dir: Path) -> str:
    events = (run_dir / "events.log").read_text() if (run_dir / "events.log").exists() else ""
    if status == "finished:completed" and (run_dir / "summary.json").is_file():
        return "completed"
    if status == "finished:failed" and "run failed: FederationError" in events:
        return "clean_error"
    return "unclean"


def _end_wall(run_dir: Path) -> float:
    """When the run wrote its last word: summary.json, else its final event."""
    for name in ("summary.json", "events.log"):
        if (run_dir / name).exists():
            return (run_dir / name).stat().st_mtime
    return float("nan")


def run_trial(trial: Trial, run_dir: Path) -> dict[str, Any]:
    overrides = trial.overrides()
    spec = resolve(trial.scenario, overrides)
    stamp: dict[str, float] = {}

    def on_started(fed):
        threading.Thread(target=kill_node_mid_round, args=(fed, f"node-{trial.kill}", stamp),
                         daemon=True).start()

    try:
        status = deploy(trial.scenario, spec, overrides, nodes=3, run_dir=run_dir, on_started=on_started)
    except DeploymentError as exc:  # the run outlived deploy's own upper bound: a hang
        status = f"hang: {exc}"
    events = (run_dir / "events.log").read_text() if (run_dir / "events.log").exists() else ""
    seconds = _end_wall(run_dir) - stamp["killed_wall"] if "killed_wall" in stamp else None
    outcome = _outcome(status, run_dir) if seconds is not None else "no-kill"
    bound = spec.federation.round_timeout + GRACE
    if status.startswith("hang") or (seconds is not None and seconds > bound):
        outcome = "hang"
    return {
        "scenario": trial.scenario, "killed_node": trial.kill, "overrides": overrides,
        "status": status, "outcome": outcome, "seconds_to_end": seconds, "bound_seconds": bound,
        "events_name_node_and_round": f"(partition {trial.kill}) sent no reply" in events,
        "last_event": events.strip().splitlines()[-1][20:] if events.strip() else "",
    }


def run(out: Path | None = None, seeds: list[int] | None = None) -> dict[str, Any]:
    """All TRIALS (`seeds` is not used: each trial fixes its own seed)."""
    root = Path(tempfile.mkdtemp(prefix="fvfaults-", dir="/tmp"))
    results = []
    try:
        for i, trial in enumerate(TRIALS):
            results.append(run_trial(trial, root / f"trial-{i}"))
            print(json.dumps(results[-1]), flush=True)
    finally:
        shutil.rmtree(root, ignore_errors=True)
    count = {k: sum(r["outcome"] == k for r in results) for k in ("completed", "clean_error", "hang")}
    timed = [r for r in results if r["seconds_to_end"] is not None]
    return {
        "trials": len(results), "completed": count["completed"], "clean_errors": count["clean_error"],
        "hangs": count["hang"], "max_seconds_to_end": max((r["seconds_to_end"] for r in timed), default=None),
        "max_seconds_past_round_timeout": max(
            (r["seconds_to_end"] - (r["bound_seconds"] - GRACE) for r in timed), default=None),
        "grace_seconds": GRACE, "round_timeout": ROUND_TIMEOUT,
        "events_name_every_killed_node": all(r["events_name_node_and_round"] for r in results),
        "results": results,
        "pass": count["hang"] == 0 and count["completed"] + count["clean_error"] == len(results)
        and all(r["events_name_node_and_round"] for r in results),
    }
