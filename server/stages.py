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

from methods.base import Method, RunSpec, Stage, StageResult
from server.federation import Federation
from server.rounds import Progress, run_rounds, save_state
from server.run_dir import RunDirectory


class _StageRun:
    """The run directory as one stage sees it: every metrics record names the stage."""

    def __init__(self, run: RunDirectory, stage: str) -> None:
        self._run, self._stage = run, stage

    def log_metrics(self, record: dict[str, Any]) -> None:
        self._run.log_metrics({**record, "stage": self._stage})

    def __getattr__(self, name: str) -> Any:
        return getattr(self._run, name)


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

    figures = run_rounds(fed, method, stage_spec, _StageRun(run, stage.name), state, record)
    return {k: v for k, v in figures.items() if k not in ("accuracy", "loss")}
