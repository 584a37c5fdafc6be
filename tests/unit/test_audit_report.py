"""Claims about the privacy audit report (server/audit), on a real in-process DP run.

One audited DP run on an in-process grid (no Ray) gives the run directory; copies of
it with one planted bug each show that the matching check FAILs.
"""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
from typer.testing import CliRunner

from clients.privacy import epsilon_of
from server.audit.scores import PHASE_FILE, SCORES_FILE
from server.audit.report import write_report
from server.ledger import LEDGER_FILE, read_ledger
from server.runner import Job, run_job
from server.scenario import resolve
from simulations.cli.app import cli
from tests.audit_screenshot import CHROMIUM, MIN_PIXELS_PER_FIGURE, SKIP_REASON, figure_pixels
from tests.inprocess_grid import InProcessGrid, partition_nodes

pytestmark = pytest.mark.unit

FAST = {
    "num-clients": "2",
    "num-server-rounds": "3",
    "data.dataset": "digits",
    "fedavg.batch-size": "32",
    "node-wait-timeout": "0.5",
    "dp.accountant": "rdp",
    "dp.target-epsilon": "8",
    "audit.canaries": "400",
    "audit.whitebox-canaries": "800",
}


@pytest.fixture(scope="module")
def audited(tmp_path_factory):
    """(run directory, summary) of a 3-round DP run with the audit on, 2 of 8 digit shards
    (~180 examples each: 45 canaries per node, a quarter of the data at most)."""
    root = tmp_path_factory.mktemp("audited")
    job = Job(spec=resolve("dp-fedavg", FAST), run_dir=str(root / "run"), scenario="dp-fedavg")
    summary = run_job(InProcessGrid(partition_nodes(8)[:2]), job)
    return root / "run", summary


def _copy(audited, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(audited[0], run)
    return run


def _status(report, check_id):
    return next(c["status"] for c in report["checks"] if c["id"] == check_id)


def test_the_run_ends_with_scores_and_a_report_it_points_to(audited):
    run, summary = audited
    assert {SCORES_FILE, PHASE_FILE, "report.json", "report.md", "report.html"} <= {
        p.name for p in (run / "audit").iterdir()
    }
    assert summary["audit_report"].endswith("audit/report.html")
    report = json.loads((run / "audit" / "report.json").read_text())
    assert summary["audit_verdict"] == report["verdict"] != "FAIL"


def test_the_report_carries_the_fields_reviewers_and_tests_rely_on(audited):
    report = json.loads((audited[0] / "audit" / "report.json").read_text())
    assert report["schema"] == "fl-privacy-audit/1.0"
    assert all({"id", "status", "detail"} <= set(c) for c in report["checks"])
    assert {c["id"] for c in report["checks"]} >= {
        "A1",
        "A2",
        "A3",
        "A4",
        "A5",
        "A6",
        "A7",
        "A8",
        "A12",
        "A13",
        "A14",
        "A15",
        "A16",
        "A17",
        "A18",
    }
    assert report["canary_audit"]["m"] == 90 and report["canary_audit"]["epsilon_lower_bound"] >= 0
    assert 0.0 <= report["mia"]["auc"] <= 1.0 and set(report["mia"]["tpr_at_fpr"]) == {
        "0.001",
        "0.01",
        "0.1",
    }
    per_client = report["accounting"]["per_client"]
    assert set(per_client) == {"p0", "p1"}
    assert all(c["epsilon"] <= 8.0 + 1e-6 and c["rounds"] == 3 for c in per_client.values())
    assert report["accounting"]["epsilon"] == audited[1]["epsilon"]


def test_the_white_box_audit_measures_its_power_on_the_runs_own_design(audited):
    report = json.loads((audited[0] / "audit" / "report.json").read_text())
    white = report["whitebox_canary_audit"]
    control = white["positive_control"]
    # a 10x noise bug is far more visible than honest noise, and never above the ceiling
    assert control["measured"] and control["sigma_factor_0.1"] > control["sigma_factor_1"]
    assert control["sigma_factor_0.1"] <= white["max_measurable"] + 1e-9
    assert white["outcome"].startswith("not refuted")
    # ε = 8 is beyond what even the σ/10 control reaches: A7 must not pass on the ceiling
    assert control["sigma_factor_0.1"] < report["accounting"]["epsilon"]
    assert _status(report, "A7") == "WARN"


def test_an_honest_run_passes_the_implementation_checks(audited):
    report = json.loads((audited[0] / "audit" / "report.json").read_text())
    for check in ("A1", "A2", "A4", "A5", "A6", "A8", "A12", "A13", "A15", "A16"):
        assert _status(report, check) == "PASS", report["checks"]


def test_a_node_that_resets_its_accountant_each_round_fails_the_rederivation(audited, tmp_path):
    run = _copy(audited, tmp_path)
    lines = read_ledger(run / LEDGER_FILE)
    for line in lines:  # what a fresh PrivacyEngine per round reports: only that round
        line["epsilon"] = epsilon_of(
            [(line["noise_multiplier"], line["sample_rate"], line["steps"])],
            line["delta"],
            line["accountant"],
        )
    (run / LEDGER_FILE).write_text("".join(json.dumps(x) + "\n" for x in lines))
    report = write_report(run)
    assert _status(report, "A1") == "FAIL" and report["verdict"] == "FAIL"


def test_noise_far_below_the_ledgers_claim_fails_the_noise_probe(audited, tmp_path):
    run = _copy(audited, tmp_path)
    phase = json.loads((run / "audit" / PHASE_FILE).read_text())
    for node in phase["nodes"].values():
        node["noise-probe-sum-sq"] *= 0.1**2  # a tenth of the claimed noise std
    (run / "audit" / PHASE_FILE).write_text(json.dumps(phase))
    assert _status(write_report(run), "A13") == "FAIL"


def test_spending_past_the_budget_fails_the_budget_check(audited, tmp_path):
    run = _copy(audited, tmp_path)
    config = json.loads((run / "config.json").read_text())
    config["run"]["dp.target-epsilon"] = 1.0
    (run / "config.json").write_text(json.dumps(config))
    assert _status(write_report(run), "A2") == "FAIL"


def test_an_example_in_the_audit_files_fails_the_raw_data_check(audited, tmp_path):
    run = _copy(audited, tmp_path)
    with np.load(run / "audit" / SCORES_FILE) as data:
        scores = {k: data[k] for k in data.files}
    scores["p0|leak"] = np.zeros((8, 8))  # an image
    np.savez(run / "audit" / SCORES_FILE, **scores)
    assert _status(write_report(run), "A12") == "FAIL"


def test_fedvault_audit_exits_0_on_pass_1_on_fail_and_2_on_a_bad_directory(audited, tmp_path):
    runner = CliRunner()
    good = runner.invoke(cli, ["audit", str(audited[0]), "--out", str(tmp_path / "good")])
    assert good.exit_code == 0, good.output
    assert (tmp_path / "good" / "report.html").is_file()
    run = _copy(audited, tmp_path)
    phase = json.loads((run / "audit" / PHASE_FILE).read_text())
    for node in phase["nodes"].values():
        node["noise-probe-sum-sq"] = 0.0  # no noise at all
    (run / "audit" / PHASE_FILE).write_text(json.dumps(phase))
    bad = runner.invoke(cli, ["audit", str(run)])
    assert bad.exit_code == 1 and "A13" in bad.output
    assert runner.invoke(cli, ["audit", str(tmp_path / "nothing")]).exit_code == 2


def test_the_html_report_is_one_self_contained_file(audited):
    html = (audited[0] / "audit" / "report.html").read_text()
    report = json.loads((audited[0] / "audit" / "report.json").read_text())
    assert html.count('src="data:image/png;base64,') == len(report["figures"]) >= 3
    assert "http://" not in html and "https://" not in html and "<script" not in html


@pytest.mark.skipif(CHROMIUM is None, reason=SKIP_REASON)
def test_the_html_report_renders_its_figures_in_headless_chromium(audited, tmp_path):
    html = tmp_path / "report.html"
    shutil.copy(audited[0] / "audit" / "report.html", html)  # one file, opened from anywhere
    report = json.loads((audited[0] / "audit" / "report.json").read_text())
    assert figure_pixels(html, tmp_path / "shots") > MIN_PIXELS_PER_FIGURE * len(report["figures"])


def test_a_lirf_deposit_gets_an_unlearning_section_and_its_check(audited, tmp_path):
    run = _copy(audited, tmp_path)
    summary = json.loads((run / "summary.json").read_text())
    summary.update(
        receipt={"deposit_id": "d-1", "status": "deposited"},
        mia_auc={"original": 0.91, "target": 0.74, "recovered": 0.9},
        target={"pre_acc": 0.95, "dep_acc": 0.1, "avg_acc": 0.8},
    )
    (run / "summary.json").write_text(json.dumps(summary))
    report = write_report(run)
    assert report["unlearning"]["applicable"]
    assert report["unlearning"]["stages"]["target"]["mia_auc"] == 0.74
    assert _status(report, "A11") == "WARN"  # 0.74: the deposited set is still recognisable
    assert "deposited vs never-seen" in (run / "audit" / "report.md").read_text()
