"""LIRF's FedAvg stages (server/lirf.py): phase 0 and the retrain baseline.

The retrain baseline is FedAvg from scratch without D_r, phase 0's schedule, in its own
run directory (<run dir>/retrain/, resumed from its own checkpoint). It keeps, per round,
what `fedvault bench lirf-speed` needs to find where retraining matches the deposit
(summary.json `retrain_history`): the model's accuracy on the preserved and on the
deposit classes, the cumulative seconds of the rounds so far (the round loop's own
timing: this evaluation is not counted) and the cumulative examples all nodes processed
(each round's reported examples × local epochs).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import numpy as np

from methods.base import Method, RunSpec
from methods.lirf.config import round_lr
from protos.contract import Phase
from server.federation import Federation
from server.rounds import initial_arrays, run_rounds, save_state
from server.run_dir import CHECKPOINT_FILE, RunDirectory

HISTORY = "retrain_history"
Evaluate = Callable[[dict[str, np.ndarray]], dict[str, float]]


def fedavg(fed: Federation, method: Method, spec: RunSpec, run: RunDirectory,
           state: dict[str, Any], progress: Callable,
           after_round: Callable[[int], None] | None = None) -> None:
    """server/rounds.py's loop; one call per round when the lr decays (each round's header
    carries that round's lr to the nodes) or when something follows each round."""
    rounds = spec.federation.num_server_rounds
    if spec.method.lr_schedule == "constant" and after_round is None:
        run_rounds(fed, method, spec, run, state, progress)
        return
    for rnd in range(state["round"] + 1, rounds + 1):
        one = dataclasses.replace(
            spec, federation=dataclasses.replace(spec.federation, num_server_rounds=rnd),
            method=dataclasses.replace(spec.method, lr=round_lr(spec.method, rnd, rounds)))
        run_rounds(fed, method, one, run, state, progress)
        if after_round is not None and state["round"] == rnd:  # the round ran
            after_round(rnd)


def retrain_baseline(fed: Federation, method: Method, spec: RunSpec, parent: RunDirectory,
                     progress: Callable, evaluate: Evaluate
                     ) -> tuple[dict[str, np.ndarray], float, list[dict[str, Any]]]:
    """(final arrays, seconds of all rounds, per-round history) of the retrain baseline.

    `spec` has `fedavg-data = "preserved"`; `evaluate` gives {"pre_acc", "dep_acc"}."""
    run, state = _open_run(parent / "retrain", method, spec)
    history: list[dict[str, Any]] = state.setdefault(HISTORY, [])
    epochs = spec.method.local_epochs

    def record(rnd: int) -> None:
        rounds = [m for m in run.metrics() if m.get("phase") == Phase.TRAIN and m["round"] <= rnd]
        history.append({"round": rnd, **evaluate(state["arrays"]),
                        "seconds": sum(m.get("seconds", 0.0) for m in rounds),
                        "sample_steps": epochs * sum(int(m.get("examples", 0)) for m in rounds)})
        save_state(run, state)  # the history survives a crash in the next round

    fedavg(fed, method, spec, run, state, progress, after_round=record)
    seconds = sum(m.get("seconds", 0.0) for m in run.metrics())
    return state["arrays"], seconds, history


def _open_run(path, method: Method, spec: RunSpec) -> tuple[RunDirectory, dict[str, Any]]:
    """The retrain baseline's own run directory (resumed from its checkpoint)."""
    if (path / "checkpoint" / CHECKPOINT_FILE).is_file():
        sub = RunDirectory.open_existing(path)
        arrays, sub_state = sub.load_checkpoint()
        sub.truncate_metrics_after(int(sub_state["round"]))
        return sub, {**sub_state, "arrays": arrays}
    if (path / "config.json").is_file():
        sub = RunDirectory.open_existing(path)
        sub.truncate_metrics_after(0)
    else:
        sub = RunDirectory.create(path, {"baseline": "FedAvg from scratch without D_r",
                                         "run": spec.to_flat()})
    return sub, {"round": 0, "arrays": initial_arrays(method, spec)}
