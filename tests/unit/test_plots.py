"""A run directory's plots (server/plots.py), its claim figure and `fedvault plot` / `report`
input checks. The pictures are checked through what they draw (lines, their data, panels),
not only that a file exists."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from server.plots import PLOTS_DIR, plot_run, run_figures, stage_curve_keys, write_plots
from server.run_dir import RunDirectory
from server.runner import Job, run_job
from server.scenario import resolve
from simulations.bench.claim_figure import claim_bands, write_claim_figure
from simulations.cli.app import cli
from simulations.cli.report import write_run_report
from tests.inprocess_grid import InProcessGrid, dies_in_round_2, partition_nodes

pytestmark = pytest.mark.unit
PNG = b"\x89PNG\r\n\x1a\n"


def _run_dir(tmp_path, records, run=None, scenario="fedavg", ledger=()):
    run_dir = RunDirectory.create(tmp_path / "run", {"scenario": scenario, "run": run or {}})
    for record in records:
        run_dir.log_metrics(record)
    (run_dir.path / "ledger.jsonl").write_text("".join(json.dumps(line) + "\n" for line in ledger))
    return run_dir


def _lines(fig):
    return {line.get_label(): (list(line.get_xdata()), list(line.get_ydata()))
            for ax in fig.axes for line in ax.get_lines() if not line.get_label().startswith("_")}


def test_accuracy_and_loss_curves_carry_each_rounds_figures(tmp_path):
    records = [{"round": r, "phase": "train", "accuracy": 0.1 * r, "loss": 2.0 / r,
                "train_loss": 1.5 / r} for r in (1, 2, 3)]
    run = _run_dir(tmp_path, records)
    figures = run_figures(run.path)
    assert set(figures) == {"accuracy.png", "loss.png"}  # no ledger, no stages
    xs, ys = _lines(figures["accuracy.png"])["accuracy"]
    assert xs == [1, 2, 3] and ys == pytest.approx([0.1, 0.2, 0.3])
    loss = _lines(figures["loss.png"])
    assert loss["evaluation loss"][1] == pytest.approx([2.0, 1.0, 2 / 3])
    assert loss["training loss (nodes' mean)"][1] == pytest.approx([1.5, 0.75, 0.5])
    written = write_plots(run.path)
    assert sorted(written) == ["accuracy.png", "loss.png"]
    assert (run.path / PLOTS_DIR / "accuracy.png").read_bytes().startswith(PNG)


def test_a_dp_run_plots_each_nodes_epsilon_against_its_budget(tmp_path):
    ledger = [{"round": r, "node": node, "epsilon": eps * r, "unaccounted": False}
              for r in (1, 2) for node, eps in (("p0", 0.5), ("p1", 0.7))]
    ledger.append({"round": 3, "node": "p1", "unaccounted": True})  # no figures: not a point
    run = _run_dir(tmp_path, [{"round": 1, "accuracy": 0.5}],
                   run={"dp.enabled": True, "dp.target-epsilon": 3.0, "dp.max-epsilon": 0.0},
                   ledger=ledger)
    lines = _lines(run_figures(run.path)["epsilon.png"])
    assert lines["p0"] == ([1, 2], pytest.approx([0.5, 1.0]))
    assert lines["p1"] == ([1, 2], pytest.approx([0.7, 1.4]))
    assert lines["budget ε=3"][1] == [3.0, 3.0]


def test_stages_are_drawn_side_by_side_one_panel_each(tmp_path):
    records = [{"round": r, "stage": stage, "phase": "train", "auroc": 0.5 + 0.1 * r + shift,
                "contamination": 0.1, "seconds": 1.0}
               for stage, shift, rounds in (("hscl", 0.1, (1, 2)), ("csi", 0.0, (3, 4)),
                                             ("bce", -0.1, (5, 6))) for r in rounds]
    fig = run_figures(_run_dir(tmp_path, records).path)["stages.png"]
    panels = [ax for ax in fig.axes if ax.get_visible()]
    assert [ax.get_title() for ax in panels] == ["hscl", "csi", "bce"]
    assert [line.get_label() for line in panels[1].get_lines()] == ["auroc"]  # constants are settings
    assert list(panels[1].get_lines()[0].get_xdata()) == [3, 4]


def test_stage_curve_keys_prefer_the_known_figures_then_changing_ones():
    records = [{"round": 1, "loss": 1.0, "mask_iou": 0.2, "lr": 0.1, "fixed": 3.0},
               {"round": 2, "loss": 0.5, "mask_iou": 0.4, "lr": 0.05, "fixed": 3.0}]
    assert stage_curve_keys(records) == ["loss", "mask_iou"]


def test_a_plotting_error_is_an_event_never_a_failed_run(tmp_path):
    run = _run_dir(tmp_path, [{"round": 1, "accuracy": 0.5}], run={"dp.enabled": True})
    (run.path / "ledger.jsonl").write_text("{not json\n")  # a broken ledger
    assert plot_run(run) == {}
    assert "plots: not written (JSONDecodeError" in (run.path / "events.log").read_text()


def test_a_crash_cut_last_record_is_skipped_not_fatal(tmp_path):
    run = _run_dir(tmp_path, [{"round": 1, "accuracy": 0.5}])
    with open(run.path / "metrics.jsonl", "a") as fh:
        fh.write('{"round": 2, "accur')
    assert _lines(run_figures(run.path)["accuracy.png"])["accuracy"][0] == [1]


def _spec(**extra):
    return resolve("fedavg", {"num-clients": "3", "num-server-rounds": "2", "device": "cpu",
                              "data.dataset": "digits", "data.partitioner": "iid", **extra})


def test_plots_are_written_when_a_run_dies_and_rewritten_after_its_resume(tmp_path):
    run_dir = tmp_path / "run"
    with pytest.raises(KeyboardInterrupt):
        run_job(dies_in_round_2(3), Job(spec=_spec(), run_dir=str(run_dir)))
    accuracy = run_dir / PLOTS_DIR / "accuracy.png"
    first = accuracy.read_bytes()  # round 1's curve: the run died in round 2
    run_job(InProcessGrid(partition_nodes(3), first_node_id=7000),
            Job(spec=None, run_dir=str(run_dir), resume=True))
    assert accuracy.read_bytes() != first
    rounds = [r["round"] for r in RunDirectory(run_dir).metrics()]
    assert _lines(run_figures(run_dir)["accuracy.png"])["accuracy"][0] == rounds == [1, 2]


HSCL_SUMMARY = {"seed": 4, "auroc": 0.80, "auroc_baseline_contrastive": 0.70,
                "auroc_baseline_supervised": 0.85,
                "contamination_drop": {"hscl": 0.02, "contrastive": 0.05}}


def test_the_claim_figure_shows_the_benchs_bands_on_this_run(tmp_path):
    run = _run_dir(tmp_path, [{"round": 1, "auroc": 0.8}], scenario="hscl")
    (run.path / "summary.json").write_text(json.dumps(HSCL_SUMMARY))
    bands = claim_bands(run.path)
    assert {name: b["pass"] for name, b in bands.items()} == {
        "hscl_beats_contrastive": True, "hscl_beats_supervised": False,
        "smaller_contamination_drop": True}
    assert write_claim_figure(run.path).read_bytes().startswith(PNG)


def test_no_claim_figure_without_a_bench_or_with_a_summary_it_cannot_read(tmp_path):
    run = _run_dir(tmp_path, [{"round": 1, "accuracy": 0.8}])
    (run.path / "summary.json").write_text(json.dumps({"accuracy": 0.8}))
    assert write_claim_figure(run.path) is None  # fedavg: no bench judges it
    other = _run_dir(tmp_path / "b", [{"round": 1}], scenario="hscl")
    (other.path / "summary.json").write_text(json.dumps({"seed": 0}))
    assert write_claim_figure(other.path) is None
    assert "plots: no claim figure (KeyError" in (other.path / "events.log").read_text()


@pytest.mark.parametrize("args, says", [
    (["report", "{tmp}/missing", "--out", "{tmp}/r.html"], "is not a fedvault run directory"),
    (["report", "{run}", "--out", "{tmp}/r.txt"], "name it FILE.html"),
    (["plot", "{tmp}/missing"], "is not a fedvault run directory"),
])
def test_report_and_plot_refuse_bad_input_with_exit_2_and_one_line(tmp_path, args, says):
    run = _run_dir(tmp_path, [{"round": 1, "accuracy": 0.5}])
    argv = [a.format(tmp=tmp_path, run=run.path) for a in args]
    result = CliRunner().invoke(cli, argv)
    assert result.exit_code == 2
    assert says in result.output and len(result.output.strip().splitlines()) == 1
    assert not (tmp_path / "r.html").exists() and not (tmp_path / "r.txt").exists()


def test_the_report_gives_each_runs_audit_verdict_and_links_its_report_from_the_page(tmp_path):
    audited = _run_dir(tmp_path / "a", [{"round": 1, "accuracy": 0.5}])
    (audited.path / "audit").mkdir()
    (audited.path / "audit" / "report.json").write_text(json.dumps({"verdict": "FAIL"}))
    plain = _run_dir(tmp_path / "b", [{"round": 1, "accuracy": 0.6}], run={"fedavg.lr": 0.1})
    page = write_run_report([audited.path, plain.path], tmp_path / "pages" / "r.html").read_text()
    assert '<span class="badge fail">FAIL</span> <a href="../a/run/audit/report.html">' in page
    assert f"not audited (fedvault audit {plain.path})" in page
    assert "1 key differs" in page and "<td>fedavg.lr</td><td>—</td><td>0.1</td>" in page


def test_fedsa_and_lirf_runs_get_their_benchs_claim_figure_too():
    from simulations.bench import fedsa, lirf

    run = {"accuracy": 0.50, "accuracy_scratch": 0.40, "selection": "sampled",
           "selection_precision": 1.0, "similarity_gap": 0.03}
    bands = fedsa.judge({0: run})
    assert bands["G2"]["pass"] and "sampled accuracy" in bands["G2"]["rule"]
    assert not fedsa.judge({0: {**run, "accuracy": 0.44}})["G2"]["pass"]
    summary = {"original": {"pre_acc": 0.96, "dep_acc": 0.98}, "target": {"pre_acc": 0.96,
               "dep_acc": 0.35, "H": 0.75}, "recovered": {"pre_acc": 0.95, "dep_acc": 0.98},
               "retrain_seconds": 20.0, "deposit_seconds": 4.0, "deposit_module_on_server": False}
    bands = lirf.judge({0: summary})
    assert not bands["target_dep_acc"]["pass"] and not bands["target_H"]["pass"]
    assert bands["recovered_dep_diff"]["pass"] and bands["deposit_module_on_server"]["pass"]
