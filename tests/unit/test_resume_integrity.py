"""Resume is exact or refused (docs/commands.md, "Resume").

A checkpoint belongs to the config it was written under; a run resumes only as
itself, never a finished one, never with overrides; the exit code is the run's
own; a JSONL line cut by a crash does not make a run unresumable.
"""

import json
import shutil
from types import SimpleNamespace

import numpy as np
import pytest
from typer.testing import CliRunner

from server.run_dir import RunDirError, RunDirectory
from server.runner import Job, run_job
from server.scenario import resolve
from simulations.cli.app import cli
from tests.inprocess_grid import InProcessGrid, dies_in_round_2, partition_nodes

pytestmark = pytest.mark.unit

FAST = {"num-clients": "2", "num-server-rounds": "2", "data.partitioner": "iid",
        "data.dataset": "digits", "node-wait-timeout": "2"}


def _cli(*args):
    result = CliRunner().invoke(cli, [str(a) for a in args])
    return SimpleNamespace(code=result.exit_code, out=result.output)


def _interrupted_run(path, scenario="fedavg", **over) -> RunDirectory:
    """A run directory as a server that died after round 1's checkpoint leaves it."""
    spec = resolve(scenario, {**FAST, **over})
    run = RunDirectory.create(path, {"scenario": scenario, "run": spec.to_flat(),
                                     "seed": spec.federation.seed})
    run.save_checkpoint({"w": np.zeros(3, np.float32)}, {"round": 1, "wall_seconds": 1.0})
    run.log_metrics({"round": 1, "phase": "train", "accuracy": 0.5})
    return run


def _snapshot(path):
    return {p.relative_to(path): p.read_bytes() for p in sorted(path.rglob("*")) if p.is_file()}


def _refused(run_dir, *extra, needle):
    before = _snapshot(run_dir)
    proc = _cli("simulate", "--resume", run_dir, *extra)
    assert proc.code == 2, proc.out
    assert needle in proc.out and proc.out.count("\n") == 1 and "Traceback" not in proc.out
    assert _snapshot(run_dir) == before  # nothing changed


@pytest.mark.parametrize("key,value", [("seed", 7), ("fedavg.lr", 0.5), ("num-server-rounds", 9)])
def test_resume_refuses_an_edited_config(tmp_path, key, value):
    run = _interrupted_run(tmp_path / "run")
    config = run.config()
    config["run"][key] = value
    (run.path / "config.json").write_text(json.dumps(config))
    _refused(run.path, needle="was edited after its checkpoint was written")


def test_resume_refuses_a_checkpoint_of_a_digits_run_inside_an_mnist_run(tmp_path):
    digits = _interrupted_run(tmp_path / "digits")
    mnist = _interrupted_run(tmp_path / "mnist", **{"data.dataset": "mnist5k"})
    shutil.copy(digits.checkpoint_path, mnist.checkpoint_path)
    _refused(mnist.path, needle="belongs to a run of scenario 'fedavg' on data set 'digits', "
                                f"but {mnist.path / 'config.json'} is a run of scenario 'fedavg' "
                                "on data set 'mnist5k'")


def test_resume_refuses_another_scenario(tmp_path):
    run = _interrupted_run(tmp_path / "run")
    _refused(run.path, "--", "lirf", needle="is a run of scenario 'fedavg', not 'lirf'")


def test_resume_refuses_a_finished_run_and_keeps_its_summary(tmp_path):
    run = _interrupted_run(tmp_path / "run")
    run.write_summary({"accuracy": 0.93, "rounds": 2})
    _refused(run.path, needle="is a finished run (summary.json exists): nothing to resume")
    assert json.loads((run.path / "summary.json").read_text())["accuracy"] == 0.93


@pytest.mark.parametrize("command,flag,value", [
    ("simulate", "--set", "seed=3"), ("simulate", "--seed", "3"), ("simulate", "--out", "elsewhere"),
    ("deploy", "--set", "seed=3"), ("deploy", "--out", "elsewhere"),  # deploy has no --seed
])
def test_overrides_with_resume_exit_2(tmp_path, command, flag, value):
    run = _interrupted_run(tmp_path / "run")
    before = _snapshot(run.path)
    nodes = ["--nodes", "2"] if command == "deploy" else []
    proc = _cli(command, *nodes, "--resume", run.path, flag, value)
    assert proc.code == 2 and f"{flag} cannot be combined with it" in proc.out, proc.out
    assert _snapshot(run.path) == before


def test_a_malformed_config_json_is_refused_with_one_line(tmp_path):
    run = _interrupted_run(tmp_path / "run")
    (run.path / "config.json").write_text('{"run": {"seed": ')
    _refused(run.path, needle="config.json is unreadable or not valid JSON")


def test_a_checkpoint_that_records_no_config_is_refused(tmp_path):
    from server.run_dir import _save_checked

    run = _interrupted_run(tmp_path / "run")
    _save_checked(run.checkpoint_path, {"w": np.zeros(3, np.float32)}, {"round": 1})
    with pytest.raises(RunDirError, match="does not record the config"):
        run.load_checkpoint()


def test_the_checkpoint_config_hash_is_not_part_of_the_state_it_returns(tmp_path):
    run = _interrupted_run(tmp_path / "run")
    _, state = run.load_checkpoint()
    assert state == {"round": 1, "wall_seconds": 1.0}


def test_a_failed_resume_exits_1_whatever_summary_json_says(tmp_path, monkeypatch):
    """The exit code is the run's own result: here the resumed run dies, and a stale
    summary.json written meanwhile (by anything) must not make it pass."""
    run = _interrupted_run(tmp_path / "run")

    def dying_run(job, nodes, **kwargs):
        (run.path / "summary.json").write_text('{"accuracy": 0.9}')  # stale, not this run's
        with pytest.raises(RunDirError):  # the real run_job, refusing: a finished run
            run_job(InProcessGrid(partition_nodes(2)), job)

    monkeypatch.setattr("simulations.simulate.run_in_process", dying_run)
    proc = _cli("simulate", "--resume", run.path)
    assert proc.code == 1, proc.out
    assert "the run failed: RunDirError" in proc.out and "did not finish" in proc.out


def test_a_resumed_run_exits_0_on_its_own_summary(tmp_path, monkeypatch):
    run = tmp_path / "run"
    with pytest.raises(KeyboardInterrupt):
        run_job(_dies_in_round_2(), Job(spec=resolve("fedavg", FAST), run_dir=str(run),
                                        scenario="fedavg"))
    monkeypatch.setattr("simulations.simulate.run_in_process",
                        lambda job, nodes, **kw: run_job(InProcessGrid(partition_nodes(2)), job))
    proc = _cli("simulate", "--resume", run)
    assert proc.code == 0, proc.out
    summary = json.loads((run / "summary.json").read_text())
    assert summary["rounds"] == 2 and summary["accuracy"] is not None


def _dies_in_round_2() -> InProcessGrid:
    return dies_in_round_2(2)


@pytest.mark.parametrize("name", ["metrics.jsonl", "ledger.jsonl"])
def test_an_unterminated_last_jsonl_line_is_dropped_and_logged_on_resume(tmp_path, name):
    run = tmp_path / "run"
    with pytest.raises(KeyboardInterrupt):
        run_job(_dies_in_round_2(), Job(spec=resolve("fedavg", FAST), run_dir=str(run),
                                        scenario="fedavg"))
    with open(run / name, "a") as fh:  # the crash cut round 2's line short
        fh.write('{"round": 2, "phase": "tra')
    summary = run_job(InProcessGrid(partition_nodes(2)), Job(spec=None, run_dir=str(run), resume=True))
    assert summary["rounds"] == 2
    events = (run / "events.log").read_text()
    assert f"resume: dropped the unterminated last line of {name}" in events
    assert "'{\"round\": 2, \"phase\": \"tra'" in events
    lines = (run / name).read_text().splitlines()
    assert all(json.loads(line) for line in lines)  # every line parses again
    if name == "metrics.jsonl":
        assert [json.loads(line)["round"] for line in lines] == [1, 2]


def test_an_unterminated_line_is_dropped_only_at_the_end(tmp_path):
    run = RunDirectory.create(tmp_path / "run", {})
    (run.path / "metrics.jsonl").write_text('{"round": 1}\n{"round": 2}\n')
    run.drop_unterminated_lines()
    assert (run.path / "metrics.jsonl").read_text() == '{"round": 1}\n{"round": 2}\n'
    events = run.path / "events.log"
    assert not events.exists() or "dropped" not in events.read_text()


def test_a_run_resumed_after_its_last_checkpoint_keeps_its_accuracy(tmp_path):
    """The server died after the last round's checkpoint, before summary.json: the resume
    runs no round and must still report the model's figures, not null."""
    run = tmp_path / "run"
    full = run_job(InProcessGrid(partition_nodes(2)), Job(spec=resolve("fedavg", FAST), run_dir=str(run),
                                                          scenario="fedavg"))
    (run / "summary.json").unlink()
    resumed = run_job(InProcessGrid(partition_nodes(2)), Job(spec=None, run_dir=str(run), resume=True))
    assert resumed["accuracy"] == full["accuracy"] and resumed["loss"] == full["loss"]
    assert resumed["rounds"] == 2 and resumed["diverged"] is False
