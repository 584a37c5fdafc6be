"""The metrics stream (server/run_dir.py sinks): metrics.jsonl, the console and the optional
trackers get the same records; trackers are optional extras, refused before a run starts
when missing; and the library noise the console filters (server/quiet_logs.py)."""

from __future__ import annotations

import io
import json
import logging
import os
import struct
import warnings

import pytest
from rich.console import Console
from typer.testing import CliRunner

from methods.config import ConfigError
from methods.registry import get_method
from server import tracking
from server.quiet_logs import quiet_library_logs, quiet_workers
from server.run_dir import RunDirectory
from server.runner import Job, run_job
from server.scenario import resolve
from simulations.cli.app import cli
from simulations.cli.progress import RoundConsole, round_plan
from tests.inprocess_grid import InProcessGrid, dies_in_round_2, partition_nodes

pytestmark = pytest.mark.unit


def _spec(**extra):
    return resolve("fedavg", {"num-clients": "3", "num-server-rounds": "2", "device": "cpu",
                              "data.dataset": "digits", "data.partitioner": "iid", **extra})


def _tensorboard_scalars(logdir) -> dict[tuple[str, int], float]:
    """Every scalar in the TFRecord event files: (tag, step) → value."""
    from tensorboardX.proto.event_pb2 import Event

    scalars = {}
    for path in sorted(logdir.glob("events.out.tfevents.*")):
        data, at = path.read_bytes(), 0
        while at < len(data):
            (length,) = struct.unpack("<Q", data[at:at + 8])
            event = Event.FromString(data[at + 12:at + 12 + length])
            at += 12 + length + 4  # length, its CRC, the event, its CRC
            for value in event.summary.value:
                if value.HasField("simple_value"):  # (the config is a text summary)
                    scalars[(value.tag, event.step)] = value.simple_value
    return scalars


def test_one_stream_feeds_metrics_jsonl_the_console_and_tensorboard_alike(tmp_path):
    pytest.importorskip("tensorboardX")
    spec = _spec(tracking="tensorboard")
    out = io.StringIO()
    console = RoundConsole(Console(file=out, force_terminal=False, width=40), spec)
    run_dir = tmp_path / "run"
    with console:
        run_job(InProcessGrid(partition_nodes(3)), Job(spec=spec, run_dir=str(run_dir),
                                                       sinks=[console]))
    records = RunDirectory(run_dir).metrics()
    assert [r["round"] for r in records] == [1, 2]
    scalars = _tensorboard_scalars(run_dir / "tensorboard")
    expected = {(key, r["round"]): value for r in records for key, value in r.items()
                if key != "round" and isinstance(value, (int, float)) and not isinstance(value, bool)}
    assert set(scalars) == set(expected) and {"accuracy", "loss", "examples"} <= {k for k, _ in expected}
    assert all(scalars[k] == pytest.approx(v, rel=1e-6) for k, v in expected.items())
    lines = out.getvalue().splitlines()  # narrower than a line, not a terminal: never wrapped
    assert [line.split("  ")[0] for line in lines] == ["round 1/2", "round 2/2"]
    assert all(line.endswith("s") and f"accuracy {r['accuracy']:.4f}" in line
               for line, r in zip(lines, records))


def test_mlflow_logs_every_round_to_one_run_that_a_resume_continues(tmp_path, monkeypatch):
    pytest.importorskip("mlflow")
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    spec, run_dir = _spec(tracking="mlflow"), tmp_path / "run"
    with pytest.raises(KeyboardInterrupt):
        run_job(dies_in_round_2(3), Job(spec=spec, run_dir=str(run_dir)))
    run_job(InProcessGrid(partition_nodes(3), first_node_id=7000),
            Job(spec=None, run_dir=str(run_dir), resume=True))
    from mlflow.tracking import MlflowClient

    saved = json.loads((run_dir / tracking.MLFLOW_RUN_FILE).read_text())
    client = MlflowClient(saved["tracking_uri"])
    assert saved["tracking_uri"] == (run_dir / "mlruns").resolve().as_uri()
    history = client.get_metric_history(saved["run_id"], "accuracy")
    records = RunDirectory(run_dir).metrics()
    assert [(m.step, m.value) for m in history] == [(r["round"], pytest.approx(r["accuracy"]))
                                                     for r in records]
    mlflow_run = client.get_run(saved["run_id"])
    assert mlflow_run.data.params["num-clients"] == "3"
    assert mlflow_run.info.status == "FINISHED"
    assert len(client.search_runs([mlflow_run.info.experiment_id])) == 1  # not one per attempt


def test_a_missing_tracker_package_is_refused_before_anything_is_written(tmp_path, monkeypatch):
    real = tracking.importlib.util.find_spec
    monkeypatch.setattr(tracking.importlib.util, "find_spec",
                        lambda name: None if name == "tensorboardX" else real(name))
    with pytest.raises(ConfigError, match=r'needs the tensorboardX package: pip install -e "\.\[tracking\]"'):
        run_job(InProcessGrid(partition_nodes(3)),
                Job(spec=_spec(tracking="tensorboard"), run_dir=str(tmp_path / "run")))
    assert not (tmp_path / "run").exists()
    result = CliRunner().invoke(cli, ["simulate", "--out", str(tmp_path / "cli"), "--set",
                                      "tracking=tensorboard", "--set", "data.dataset=digits"])
    assert result.exit_code == 2 and len(result.output.strip().splitlines()) == 1
    assert "tracking=tensorboard needs the tensorboardX package" in result.output
    assert not (tmp_path / "cli").exists()


def test_a_failing_sink_is_dropped_with_one_event_and_metrics_jsonl_goes_on(tmp_path):
    class Broken:
        def write(self, record):
            raise OSError("disk full")

        def close(self):
            raise AssertionError("a dropped sink is not closed")

    run = RunDirectory.create(tmp_path / "run", {"run": {}})
    run.sinks.append(Broken())
    run.log_metrics({"round": 1, "accuracy": 0.5})
    run.log_metrics({"round": 2, "accuracy": 0.6})
    run.close_sinks()
    assert [r["round"] for r in run.metrics()] == [1, 2]
    events = (run.path / "events.log").read_text().splitlines()
    assert len(events) == 1 and "metrics sink Broken dropped: OSError: disk full" in events[0]


def test_the_console_counts_rounds_across_stages_as_the_stages_workflow_numbers_them():
    spec = resolve("ltl", {})
    stages = get_method("ltl").stages(spec)
    total, ends = round_plan(spec)
    rounds = [s.rounds or spec.federation.num_server_rounds for s in stages]
    assert total == sum(rounds) and list(ends.values())[-1] == total
    assert list(ends) == [s.name for s in stages] and list(ends.values())[0] == rounds[0]
    out = io.StringIO()
    live = RoundConsole(Console(file=out, force_terminal=False), spec)
    live.write({"round": rounds[0] + 1, "stage": stages[1].name, "seconds": 1.0})
    assert out.getvalue().startswith(f"stage {stages[1].name}: round {rounds[0] + 1}/{rounds[0] + rounds[1]}")


def test_library_noise_is_dropped_and_every_other_message_kept(monkeypatch):
    quiet_library_logs()
    seen = []
    handler = logging.Handler()
    handler.emit = lambda record: seen.append(record.getMessage())
    flower = logging.getLogger("flwr")
    flower.addHandler(handler)
    try:
        flower.warning("DEPRECATED FEATURE: %s", "The `run_simulation` function is deprecated and ...")
        flower.warning("fraction_evaluate is set to 0.0. Federated evaluation will be skipped.")
        flower.warning("a node did not answer")
    finally:
        flower.removeHandler(handler)
    assert seen == ["a node did not answer"]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("default")
        quiet_library_logs()  # after simplefilter: its filter comes first again
        warnings.warn("Tip: In future versions of Ray, Ray will no longer override accelerator "
                      "visible devices env var if num_gpus=0", FutureWarning)
        warnings.warn("something else", FutureWarning)
    assert [str(w.message) for w in caught] == ["something else"]
    monkeypatch.delenv("FLWR_LOG_LEVEL", raising=False)
    with quiet_workers():
        assert os.environ["FLWR_LOG_LEVEL"] == "ERROR"  # what Ray's workers inherit
    assert "FLWR_LOG_LEVEL" not in os.environ  # a later `flwr` or node keeps its logs
    monkeypatch.setenv("FLWR_LOG_LEVEL", "DEBUG")
    with quiet_workers():
        assert os.environ["FLWR_LOG_LEVEL"] == "DEBUG"  # the user's own choice wins
