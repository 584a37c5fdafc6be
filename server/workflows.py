"""Server workflows by name; a method names its own (`Method.workflow`).

A workflow is `(federation, method, spec, run_dir, state, progress) -> summary
figures`. It must checkpoint through `server.rounds.save_state` after each
round or phase so `--resume` continues where the run stopped. One line each.
"""

from __future__ import annotations

from typing import Any, Callable

from server.fedsa import run_fedsa
from server.lirf import run_lirf
from server.rounds import run_rounds
from server.stages import run_stages

Workflow = Callable[..., dict[str, Any]]

WORKFLOWS: dict[str, Workflow] = {
    "rounds": run_rounds,
    "fedsa": run_fedsa,
    "lirf": run_lirf,
    "stages": run_stages,  # multi-stage methods (baselines, phases)
}
