"""The multi-stage workflow: a method's stages run one after another, each a round loop.

Methods whose scenario compares them with baselines or ablations (BPTT vs LTL,
HSCL vs a contrastive baseline, ...) or trains in phases (a teacher, then a
student) list `Method.stages`. Every stage is the standard round loop
(`server.rounds.run_rounds`) over the same nodes with the stage's config, so a
baseline is trained federated exactly like the method it is compared with.

Rounds are numbered across stages (stage 2 starts after stage 1's last round):
metrics.jsonl stays one increasing sequence, each record names its stage, and
`--resume` continues inside the stage it stopped in. A finished stage's final
arrays are saved (atomic, checksummed) so later stages and the summary can use them.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import numpy as np
from flwr.serverapp.strategy import FedAvg

from methods.base import Method, RunSpec, Stage, StageResult
from protos.records import from_array_record, to_array_record
from server.divergence import STATE_KEY as DIVERGENCE_KEY
from server.federation import Federation
from server.rounds import Progress, run_rounds, save_state
from server.run_dir import RunDirectory
from server.strategy import STRATEGY_SAMPLING


class _StageRun:
    """The run directory as one stage sees it: every metrics record names the stage."""

    def __init__(self, run: RunDirectory, stage: str) -> None:
        self._run, self._stage = run, stage

    def log_metrics(self, record: dict[str, Any]) -> None:
        self._run.log_metrics({**record, "stage": self._stage})

    def __getattr__(self, name: str) -> Any:
        return getattr(self._run, name)


def average_changed(global_arrays: dict[str, np.ndarray],
                    updates: list[tuple[dict[str, np.ndarray], float]]) -> dict[str, np.ndarray]:
    """Each array's example-weighted mean over the updates that changed it (else unchanged).

    With one sub-model per client, plain FedAvg would average its owner's update with the
    other clients' untouched copies (moving it by n_k/N of the update per round).
    """
    out = {}
    for key, ref in global_arrays.items():
        changed = [(a[key], n) for a, n in updates if not np.array_equal(a[key], ref)]
        if not changed:
            out[key] = ref
        elif not np.issubdtype(ref.dtype, np.floating):
            out[key] = changed[0][0]
        else:
            total = sum(n for _, n in changed)
            mean = sum(a.astype(np.float64) * (n / total) for a, n in changed)
            out[key] = np.asarray(mean, dtype=ref.dtype)
    return out


class ChangedArraysFedAvg(FedAvg):
    """FedAvg whose arrays are `average_changed` of the round's replies (Stage.average_changed_only)."""

    def configure_train(self, server_round, arrays, config, grid):
        self._global = from_array_record(arrays)  # what "unchanged" means this round
        return super().configure_train(server_round, arrays, config, grid)

    def aggregate_train(self, server_round, replies):
        replies = list(replies)
        arrays, metrics = super().aggregate_train(server_round, replies)
        if arrays is not None:
            updates = [(from_array_record(r.content[self.arrayrecord_key]),
                        float(r.content["metrics"][self.weighted_by_key])) for r in replies if not r.has_error()]
            arrays = to_array_record(average_changed(self._global, updates))
        return arrays, metrics


def changed_arrays_strategy(spec: RunSpec) -> ChangedArraysFedAvg:
    """The strategy of an `average_changed_only` stage (it is a FedAvg, so only with fedavg)."""
    if spec.federation.aggregation != "fedavg":
        raise ValueError(f"a stage with average_changed_only needs aggregation fedavg, "
                         f"not {spec.federation.aggregation!r}")
    return ChangedArraysFedAvg(**STRATEGY_SAMPLING)


def check_stages(stages: list[Stage]) -> None:
    names = [s.name for s in stages]
    if not stages or len(set(names)) != len(names):
        raise ValueError(f"stage names must be unique and non-empty (got {names})")
    for i, stage in enumerate(stages):
        if stage.init_from is not None and stage.init_from not in names[:i]:
            raise ValueError(f"stage {stage.name!r} starts from {stage.init_from!r}, "
                             "which is not an earlier stage")
        if stage.rounds is not None and stage.rounds < 1:
            raise ValueError(f"stage {stage.name!r} needs >= 1 round (got {stage.rounds})")


def run_stages(
    fed: Federation,
    method: Method,
    spec: RunSpec,
    run: RunDirectory,
    state: dict[str, Any],
    progress: Progress,
) -> dict[str, Any]:
    """Run the method's stages from where `state` stopped; returns the summary figures."""
    stages = method.stages(spec)
    check_stages(stages)
    history: dict[str, list[dict[str, Any]]] = state.setdefault("stage_history", {})
    finished: dict[str, StageResult] = {}
    extras: dict[str, Any] = {}
    for index, stage in enumerate(stages):
        stage_spec = spec.for_stage(stage)
        if index < state.get("stage_index", 0):  # done before a resume
            finished[stage.name] = StageResult(history[stage.name], run.load_stage(stage.name))
            continue
        if "stage_index" not in state or state.get("stage_started") != stage.name:
            state.update(stage_index=index, stage_started=stage.name, stage_start=state["round"],
                         arrays=method.stage_arrays(stage_spec, stage, finished))
            history[stage.name] = []
            state.pop(DIVERGENCE_KEY, None)  # each stage is its own training run
        extras = _run_one(fed, method, stage_spec, stage, run, state, progress)
        run.save_stage(stage.name, state["arrays"])
        finished[stage.name] = StageResult(history[stage.name], dict(state["arrays"]))
        state["stage_index"] = index + 1
        save_state(run, state)
    return {**method.summarize(spec, finished, run.path), **extras}


def _run_one(fed: Federation, method: Method, spec: RunSpec, stage: Stage, run: RunDirectory,
             state: dict[str, Any], progress: Progress) -> dict[str, Any]:
    rounds = stage.rounds or spec.federation.num_server_rounds
    # run_rounds counts to num-server-rounds: this stage ends `rounds` after its start.
    last = int(state["stage_start"]) + rounds
    stage_spec = replace(spec, federation=replace(spec.federation, num_server_rounds=last))

    def record(rec: dict[str, Any]) -> None:
        state["stage_history"][stage.name].append({**rec, "stage": stage.name})
        progress({**rec, "stage": stage.name, "last_round": last})

    strategy = changed_arrays_strategy(stage_spec) if stage.average_changed_only else None
    figures = run_rounds(fed, method, stage_spec, _StageRun(run, stage.name), state, record,
                         strategy)
    return {k: v for k, v in figures.items() if k not in ("accuracy", "loss")}
