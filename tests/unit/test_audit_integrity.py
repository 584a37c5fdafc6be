"""Claims about what the report refuses to pass: unreadable or non-finite ledgers, releases
it cannot account, replayable noise, clipping that never binds, a model that never trained
(server/audit/ledger_checks.py, checks.py, training.py) and the fixed scope section."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from server.audit.checks import a14_clipping
from server.audit.ledger_checks import (
    UnreadableFileError,
    a15_complete,
    a16_releases,
    a17_secret_noise,
    inspect,
    read_strict,
)
from server.audit.report import node_guarantee, write_report
from server.audit.training import training_section
from server.ledger import LEDGER_FILE
from simulations.cli.app import cli
from tests.audit_run import detail, ledger_lines, make_run, status, write_jsonl

pytestmark = pytest.mark.unit
ROOT = Path(__file__).resolve().parents[2]


def _entries(lines):
    return list(enumerate(lines, start=1))


def _ledger_report(lines, private=True):
    """The part of a report the ledger checks read."""
    _, section = inspect(_entries(lines))
    return {"ledger": section, "accounting": {"private": private}}


def _run_with_ledger(tmp_path, edit):
    run = make_run(tmp_path / "run", rounds=3, whitebox=100)
    lines = ledger_lines(1.2, 1 / 16, 16, 3)
    edit(lines)
    write_jsonl(run / LEDGER_FILE, lines)
    return run


# --- reading --------------------------------------------------------------------------------
def test_a_ledger_line_that_is_not_json_is_an_error_naming_file_and_line(tmp_path):
    path = tmp_path / LEDGER_FILE
    path.write_text('{"round": 1}\n{"round": 2, "node": \n')
    with pytest.raises(UnreadableFileError, match=rf"{LEDGER_FILE}:2: not a valid JSON line"):
        read_strict(path)


def test_a_ledger_line_that_is_not_an_object_is_an_error(tmp_path):
    path = tmp_path / LEDGER_FILE
    path.write_text('{"round": 1}\n\n[1, 2]\n')
    with pytest.raises(UnreadableFileError, match=rf"{LEDGER_FILE}:3: not a JSON object"):
        read_strict(path)


def test_nan_missing_and_mistyped_values_are_left_out_of_the_accounting_and_named():
    lines = ledger_lines(1.2, 1 / 16, 16, 2)
    lines[1]["epsilon"] = math.nan
    del lines[2]["steps"]
    lines[3]["noise_multiplier"] = "1.2"
    usable, section = inspect(_entries(lines))
    assert usable == [lines[0]]
    bad = {(x["node"], x["round"]): x["problem"] for x in section["incomplete"]}
    assert set(bad) == {("p1", 1), ("p0", 2), ("p1", 2)}
    assert "epsilon=nan" in bad[("p1", 1)] and bad[("p0", 2)] == "missing steps"
    check = a15_complete({"ledger": section, "accounting": {"private": True}}, None, {})
    assert check["status"] == "FAIL" and "p1 round 1" in check["detail"]


def test_a_complete_ledger_passes_a15():
    report = _ledger_report(ledger_lines(1.2, 1 / 16, 16, 2))
    assert a15_complete(report, None, {})["status"] == "PASS"


# --- releases and randomness ---------------------------------------------------------------
def test_a_rejected_update_still_counts_toward_the_nodes_epsilon():
    lines = [x for x in ledger_lines(1.2, 1 / 16, 16, 3) if x["node"] == "p0"]
    lines[1].update(accepted=False, rejected_reason="norm too large")
    usable, section = inspect(_entries(lines))
    assert len(usable) == 3 and section["rejected_but_counted"][0]["round"] == 2
    guarantee = node_guarantee(usable, 1e-5)
    assert guarantee["steps"] == 48 and guarantee["rejected_rounds"] == [2]


def test_a_release_the_ledger_cannot_account_fails_a16():
    lines = ledger_lines(1.2, 1 / 16, 16, 2)
    lines.append({"round": 2, "node": "p1", "unaccounted": True, "accepted": False})
    check = a16_releases(_ledger_report(lines), None, {})
    assert check["status"] == "FAIL" and "cannot account: p1 round 2" in check["detail"]


@pytest.mark.parametrize("planned, expected", [(16, "PASS"), (15, "FAIL")])
def test_steps_that_differ_from_the_plan_fail_a16(planned, expected):
    lines = ledger_lines(1.2, 1 / 16, 16, 2)
    for line in lines:
        line["steps_planned"] = planned
    check = a16_releases(_ledger_report(lines), None, {})
    assert check["status"] == expected
    assert ("steps do not match the plan" in check["detail"]) == (expected == "FAIL")


@pytest.mark.parametrize(
    "rng, expected", [("os-csprng", "PASS"), ("run-seed", "FAIL"), (None, "N/A")]
)
def test_noise_the_server_can_replay_fails_a17(rng, expected):
    lines = ledger_lines(1.2, 1 / 16, 16, 2)
    for line in lines if rng else []:
        line["rng"] = rng
    check = a17_secret_noise(_ledger_report(lines), None, {})
    assert check["status"] == expected
    assert ("NOT private against the server" in check["detail"]) == (rng == "run-seed")


# --- the CLI --------------------------------------------------------------------------------
def test_fedvault_audit_fails_a_ledger_with_nan_epsilon_on_one_node(tmp_path):
    run = _run_with_ledger(tmp_path, lambda lines: lines[3].update(epsilon=math.nan))
    result = CliRunner().invoke(cli, ["audit", str(run)])
    assert result.exit_code == 1, result.output
    report = json.loads((run / "audit" / "report.json").read_text())
    assert report["verdict"] == "FAIL" and status(report, "A15") == "FAIL"
    assert "p1 round 2" in detail(report, "A15")
    assert report["accounting"]["lines_left_out"] == 1
    assert report["accounting"]["per_client"]["p1"]["rounds_trained"] == [1, 3]


def test_fedvault_audit_exits_2_with_one_line_for_an_unreadable_ledger(tmp_path):
    run = make_run(tmp_path / "run", rounds=2, whitebox=50)
    with open(run / LEDGER_FILE, "a") as fh:
        fh.write("{truncated\n")
    result = subprocess.run(
        [sys.executable, "-m", "simulations.cli", "audit", str(run)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        env={**os.environ, "COLUMNS": "60"},  # narrow: a wrapped message would take 2 lines
        timeout=300,
    )
    assert result.returncode == 2
    assert result.stdout == ""
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and f"{run / LEDGER_FILE}:5: not a valid JSON line" in lines[0]


# --- clipping and training ------------------------------------------------------------------
def _clipping(fractions):
    per_client = {
        k: {"level": "sample", "clip_fraction_by_round": v} for k, v in fractions.items()
    }
    return {"accounting": {"per_client": per_client}}


def test_clipping_that_never_binds_warns_naming_the_nodes():
    check = a14_clipping(_clipping({"p0": [0.0, 0.0], "p1": [0.0, 0.3]}), None, {})
    assert check["status"] == "WARN" and "['p0']" in check["detail"]
    assert "clipping never bound" in check["detail"]
    assert a14_clipping(_clipping({"p0": [0.1, 0.0]}), None, {})["status"] == "PASS"
    assert a14_clipping({"accounting": {"private": False}}, None, {})["status"] == "N/A"


@pytest.mark.parametrize(
    "summary, accuracy, warns",
    [({}, 0.9, False), ({}, 0.11, True), ({"diverged": True}, 0.9, True), ({}, math.nan, True)],
)
def test_a_model_that_diverged_or_sits_at_chance_is_flagged(summary, accuracy, warns):
    config = {"run": {"data.dataset": "digits"}}
    section = training_section(summary, config, [{"round": 1, "accuracy": accuracy}])
    assert bool(section["warning"]) == warns


def test_the_chance_test_is_skipped_without_a_class_count():
    config = {"run": {"data.dataset": "image-folder"}}
    assert training_section({}, config, [{"accuracy": 0.05}])["warning"] == ""


def test_a_diverged_run_is_flagged_at_the_top_of_the_report(tmp_path):
    run = make_run(tmp_path / "run", rounds=2, whitebox=50, summary={"diverged": True})
    report = write_report(run)
    assert status(report, "A18") == "WARN"
    md = (run / "audit" / "report.md").read_text()
    assert md.index("the model did not train") < md.index("## 1. Verdict")
    html = (run / "audit" / "report.html").read_text()
    assert html.index("the model did not train") < html.index("<h2>")


def test_the_report_states_what_the_guarantee_covers(tmp_path):
    run = make_run(tmp_path / "run", rounds=2, whitebox=50)
    report = write_report(run)
    for name in ("report.md", "report.html"):
        text = (run / "audit" / name).read_text()
        assert "What the guarantee covers" in text
        for phrase in ("add/remove-one", "num-examples", "NodeInfo", "OS CSPRNG", "run-seed"):
            assert phrase in text, (name, phrase)
    assert status(report, "A14") == "PASS" and status(report, "A15") == "PASS"
