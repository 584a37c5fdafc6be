"""Optional experiment trackers: sinks of the metrics stream (server/run_dir.py).

`--set tracking=tensorboard` writes TensorBoard event files into RUN_DIR/tensorboard/
(tensorboardX: a few hundred kB, where torch.utils.tensorboard needs the whole
tensorboard package, server included); `--set tracking=mlflow` logs to a local MLflow
file store, RUN_DIR/mlruns unless MLFLOW_TRACKING_URI names another. Both are extras
(`pip install -e ".[tracking]"`); nothing else in fedvault needs either. A tracker sees
exactly the records metrics.jsonl gets: each number is a scalar at step = the record's
round, named `<stage>/<key>` in multi-stage runs.
"""

from __future__ import annotations

import importlib.util
import json
import math
import os
import time
from pathlib import Path
from typing import Any, Mapping

from methods.base import RunSpec
from methods.config import ConfigError
from server.run_dir import MetricsSink, RunDirectory

# tracking value → the module it imports (and the extra that installs it)
TRACKER_MODULES = {"tensorboard": "tensorboardX", "mlflow": "mlflow"}
EXTRA = "tracking"
MLFLOW_RUN_FILE = "mlflow_run.json"  # the MLflow run id, so a resumed run logs to the same run
NOT_SCALARS = frozenset({"round", "last_round"})


def check_tracking(spec: RunSpec) -> None:
    """ConfigError (one line, before anything starts) when the tracker's package is missing."""
    module = TRACKER_MODULES.get(spec.federation.tracking)
    if module and importlib.util.find_spec(module) is None:
        raise ConfigError(f"tracking={spec.federation.tracking} needs the {module} package: "
                          f"pip install -e \".[{EXTRA}]\" (or tracking=none)")


def scalars(record: Mapping[str, Any]) -> dict[str, float]:
    """The record's numbers by tracker name (`<stage>/<key>` inside a stage)."""
    prefix = f"{record['stage']}/" if record.get("stage") else ""
    return {f"{prefix}{key}": float(value) for key, value in record.items()
            if key not in NOT_SCALARS and isinstance(value, (int, float))
            and not isinstance(value, bool) and math.isfinite(value)}


class TensorBoardSink:
    def __init__(self, run: RunDirectory) -> None:
        from tensorboardX import SummaryWriter

        self.writer = SummaryWriter(logdir=str(run.path / "tensorboard"))
        config = json.dumps(run.config().get("run", {}), indent=1)
        self.writer.add_text("config", f"```\n{config}\n```")

    def write(self, record: Mapping[str, Any]) -> None:
        for name, value in scalars(record).items():
            self.writer.add_scalar(name, value, global_step=int(record["round"]))
        self.writer.flush()  # a user watching `tensorboard --logdir` sees each round

    def close(self) -> None:
        self.writer.close()


class MlflowSink:
    """MlflowClient, not mlflow's fluent API: the ServerApp runs in a thread of
    `fedvault simulate`, and the fluent API keeps its active run per thread."""

    def __init__(self, run: RunDirectory) -> None:
        # mlflow ≥ 3.7 refuses a file store unless this is set: it still works, is local and
        # needs no database server, which is all a run's tracking asks for.
        os.environ.setdefault("MLFLOW_ALLOW_FILE_STORE", "true")
        import logging

        from mlflow.tracking import MlflowClient

        logging.getLogger("mlflow").setLevel(logging.WARNING)  # "Creating a new experiment" etc.
        uri = os.environ.get("MLFLOW_TRACKING_URI") or (run.path / "mlruns").resolve().as_uri()
        self.client = MlflowClient(tracking_uri=uri)
        self.run_id = self._run_id(run)

    def _run_id(self, run: RunDirectory) -> str:
        saved = run.path / MLFLOW_RUN_FILE
        if saved.is_file():  # a resumed run goes on in its own MLflow run
            return json.loads(saved.read_text())["run_id"]
        config = run.config()
        experiment = str(config.get("scenario") or "fedvault")
        found = self.client.get_experiment_by_name(experiment)
        experiment_id = found.experiment_id if found else self.client.create_experiment(experiment)
        mlflow_run = self.client.create_run(experiment_id, run_name=run.path.name,
                                            tags={"fedvault.run_dir": str(run.path.resolve())})
        run_id = mlflow_run.info.run_id
        params = {k: str(v)[:500] for k, v in sorted(config.get("run", {}).items())}
        from mlflow.entities import Param

        keys = list(params)
        for start in range(0, len(keys), 100):  # MLflow takes at most 100 params per batch
            batch = [Param(k, params[k]) for k in keys[start:start + 100]]
            self.client.log_batch(run_id, params=batch)
        saved.write_text(json.dumps({"run_id": run_id, "tracking_uri": self.client.tracking_uri}))
        return run_id

    def write(self, record: Mapping[str, Any]) -> None:
        from mlflow.entities import Metric

        now, step = int(time.time() * 1000), int(record["round"])
        metrics = [Metric(name, value, now, step) for name, value in scalars(record).items()]
        if metrics:
            self.client.log_batch(self.run_id, metrics=metrics)

    def close(self) -> None:
        self.client.set_terminated(self.run_id)


SINKS = {"tensorboard": TensorBoardSink, "mlflow": MlflowSink}


def attach_tracker(spec: RunSpec, run: RunDirectory) -> MetricsSink | None:
    """Add the run's tracker to its metrics stream (None for tracking=none). A tracker that
    cannot start is one line in events.log: the run and its metrics.jsonl go on without it."""
    sink_class = SINKS.get(spec.federation.tracking)
    if sink_class is None:
        return None
    try:
        sink = sink_class(run)
    except Exception as exc:  # noqa: BLE001 - see the docstring
        run.log_event(f"tracking={spec.federation.tracking} did not start, the run goes on "
                      f"without it: {type(exc).__name__}: {exc}")
        return None
    run.sinks.append(sink)
    return sink


def tracker_path(run_dir: Path) -> Path | None:
    """Where the run's tracker wrote, for the console and `fedvault report` (None: none)."""
    if (run_dir / "tensorboard").is_dir():
        return run_dir / "tensorboard"
    if (run_dir / MLFLOW_RUN_FILE).is_file():
        return run_dir / MLFLOW_RUN_FILE
    return None
