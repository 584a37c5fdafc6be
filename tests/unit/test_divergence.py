"""Divergence is reported, never silent (docs/runs.md)."""

import json
import math
import re
from pathlib import Path

import pytest

from server.divergence import DivergenceWatch, diverged_because
from server.scenario import resolve

pytestmark = pytest.mark.unit


CHANCE = [0.1, 0.1, 0.105]

# Recorded runs of the finding, the dp-fedavg scenario with DP off (DP-SGD's lr 0.5): the
# model collapses to a uniform guess (loss ~ ln 10, accuracy 0.1) and stays there.
# `fedvault simulate dp-fedavg --set dp.enabled=false --set num-server-rounds=7`, rounds 1-7:
DP_FEDAVG_WITHOUT_DP = [(2.299404, 0.175), (2.296863, 0.101), (2.276406, 0.1), (2.302373, 0.103),
                        (2.295891, 0.106), (2.255555, 0.173), (2.303974, 0.1)]
# the same in process (tests/inprocess_grid.py), rounds 1-8:
DP_FEDAVG_WITHOUT_DP_IN_PROCESS = [(2.298438, 0.108), (2.287625, 0.123), (2.291346, 0.106),
                                   (2.309342, 0.1), (2.304653, 0.1), (2.303243, 0.1),
                                   (2.302943, 0.1), (2.280645, 0.109)]
SLOW_START = [(2.3005, 0.1), (2.2793, 0.134), (2.2554, 0.156), (2.2593, 0.108), (2.2763, 0.188),
              (2.2111, 0.166), (2.21, 0.135), (2.2434, 0.119), (2.2194, 0.25), (2.0532, 0.262),
              (1.9313, 0.322), (1.2299, 0.522), (1.4393, 0.429), (0.7321, 0.774), (0.583, 0.806)]


def _watch(history, spec=None):
    watch = DivergenceWatch({}, spec or resolve("dp-fedavg", {"dp.enabled": "false"}), num_classes=10)
    warnings = [watch.observe(r, {"loss": loss, "accuracy": acc})
                for r, (loss, acc) in enumerate(history, start=1)]
    return watch, [w for w in warnings if w]


def test_a_non_finite_loss_is_divergence():
    assert "the global loss is nan" in diverged_because([2.3, math.nan], [], None, 10)
    assert "the global loss is inf" in diverged_because([math.inf], [None], None, 10)


def test_a_loss_rising_three_rounds_at_chance_accuracy_is_divergence():
    why = diverged_because([2.0, 2.1, 2.4, 3.0], CHANCE, 1.9, 10)
    assert why is not None and "rose for 3 rounds in a row to 3" in why and "at chance (1/10)" in why


def test_the_dp_fedavg_scenario_without_dp_is_reported_as_diverged():
    watch, warnings = _watch(DP_FEDAVG_WITHOUT_DP)
    assert watch.diverged and len(warnings) == 1
    assert warnings[0] == (
        "round 4: training diverged: for 3 rounds the global loss stayed near or above a uniform "
        "guess's (ln 10 = 2.303) and ended at 2.302, above its earlier best (2.299), while accuracy "
        "0.103 sits at chance (1/10); likely cause: learning rate too high for this configuration "
        "(e.g. fedavg.lr=0.5)")
    watch, warnings = _watch(DP_FEDAVG_WITHOUT_DP_IN_PROCESS)
    assert watch.diverged and len(warnings) == 1 and warnings[0].startswith("round 5: training diverged")


def test_a_slow_start_that_learns_is_not_divergence():
    watch, warnings = _watch(SLOW_START)
    assert not watch.diverged and warnings == []


@pytest.mark.parametrize("losses,accuracies,best", [
    ([2.0, 2.1, 2.4, 3.0], [0.1, 0.1, 0.30], 1.9),  # rising, but the model is above chance
    ([2.1, 2.4, 3.0], CHANCE, None),                # at chance, two rises, nothing before
    ([2.4, 2.35, 2.32, 2.31], CHANCE, 2.5),         # at chance and above ln 10, but improving
    ([2.4, 2.35, 2.32, 2.31], CHANCE, None),        # a first window: no earlier best
    ([2.303, 2.302, 2.301, 2.300], CHANCE, 2.3025), # at a uniform guess, but still improving
    ([2.2, 2.1, 2.0, 2.05], CHANCE, 1.9),           # at chance, worse than its best, far below ln 10
    ([2.0, 2.1, 2.4, 3.0], [None] * 3, 1.9),        # no accuracy to judge chance by
])
def test_a_run_that_still_improves_or_is_above_chance_is_not_divergence(losses, accuracies, best):
    assert diverged_because(losses, accuracies, best, 10) is None


def test_the_watch_keeps_its_history_across_a_resume():
    spec = resolve("fedavg")
    state = {}
    first = DivergenceWatch(state, spec, num_classes=10)
    for r, (loss, acc) in enumerate(DP_FEDAVG_WITHOUT_DP[:3], start=1):
        assert first.observe(r, {"loss": loss, "accuracy": acc}) is None
    resumed = DivergenceWatch(json.loads(json.dumps(state)), spec, num_classes=10)  # the checkpoint
    assert resumed.observe(4, {"loss": 2.302373, "accuracy": 0.103}).startswith("round 4: training diverged")
    assert resumed.observe(5, {"loss": 2.295891, "accuracy": 0.106}) is None  # once


def test_a_diverging_run_says_so_in_events_log_the_record_and_summary(tmp_path):
    from server.runner import Job, run_job
    from tests.inprocess_grid import InProcessGrid, partition_nodes

    spec = resolve("fedavg", {"num-clients": "2", "num-server-rounds": "5", "data.dataset": "digits",
                              "data.partitioner": "iid", "node-wait-timeout": "2", "fedavg.lr": "3"})
    summary = run_job(InProcessGrid(partition_nodes(2)), Job(spec=spec, run_dir=str(tmp_path / "run")))
    assert summary["diverged"] is True
    events = (tmp_path / "run" / "events.log").read_text()
    # the diverged loss's last digit depends on the CPU's kernels (3.016 or 3.017 seen)
    assert re.search(r"round 5: training diverged: the global loss rose for 3 rounds in a row to "
                     r"3\.0\d\d while accuracy 0\.100 sits at chance \(1/10\); likely cause: "
                     r"learning rate too high for this configuration \(e\.g\. fedavg\.lr=3\)",
                     events), events
    records = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert [bool(r.get("warning")) for r in records] == [False] * 4 + [True]


def test_a_healthy_run_says_diverged_false(tmp_path):
    from server.runner import Job, run_job
    from tests.inprocess_grid import InProcessGrid, partition_nodes

    spec = resolve("fedavg", {"num-clients": "2", "num-server-rounds": "1", "data.dataset": "digits",
                              "data.partitioner": "iid", "node-wait-timeout": "2"})
    summary = run_job(InProcessGrid(partition_nodes(2)), Job(spec=spec, run_dir=str(tmp_path / "run")))
    assert summary["diverged"] is False


def test_the_console_shows_the_warning_in_yellow():
    from rich.text import Text

    from simulations.simulate import round_line

    record = {"round": 4, "phase": "train", "accuracy": 0.1, "loss": 2.9, "seconds": 1.0,
              "warning": "round 4: training diverged: ... (e.g. fedavg.lr=0.5) [sic]"}
    text = Text.from_markup(round_line(record, 20))
    assert "warning: round 4: training diverged: ... (e.g. fedavg.lr=0.5) [sic]" in text.plain
    warning_at = text.plain.index("round 4: training")
    assert any("yellow" in str(span.style) and span.start <= warning_at < span.end for span in text.spans)
    assert "warning" not in round_line({**record, "warning": None}, 20)


def test_the_summary_ends_with_a_yellow_warning_when_the_run_diverged(capsys):
    from simulations.cli import app as cli

    cli.finish(Path("run"), {"accuracy": 0.1, "diverged": True})
    assert "warning: training diverged (see events.log)" in capsys.readouterr().out
