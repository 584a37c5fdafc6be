"""A real `fedvault simulate` run: a clean console, its plots; then `fedvault report` over it
and a second run, rendered by headless Chromium with every curve drawn."""

from __future__ import annotations

import json
import re

import pytest
from typer.testing import CliRunner

from server.run_dir import RunDirectory
from simulations.cli.app import cli
from tests.audit_screenshot import CHROMIUM, SKIP_REASON, figure_pixels

pytestmark = pytest.mark.integration

# What `make demo` printed before issue #22 (each a library's message, not fedvault's).
NOISE = ("DEPRECATED", "FutureWarning", "warnings.warn", "Federated evaluation will be skipped",
         "Manually terminating", "WARNING")
# A curve drawn at half the page's width puts ~10k dark pixels on it; a broken image, a
# placeholder icon of a few hundred.
MIN_PIXELS_PER_CURVE = 6_000


def _second_run(path, first):
    """A run written with the run directory's own writer: another lr, a DP ledger."""
    config = json.loads((first / "config.json").read_text())
    config["run"].update({"fedavg.lr": 0.2, "dp.enabled": True, "dp.target-epsilon": 2.0})
    run = RunDirectory.create(path, config)
    for record in RunDirectory(first).metrics():
        run.log_metrics({**record, "accuracy": record["accuracy"] * 0.8})
    ledger = [{"round": r["round"], "node": node, "epsilon": 0.6 * r["round"]}
              for r in RunDirectory(first).metrics() for node in ("p0", "p1")]
    (path / "ledger.jsonl").write_text("".join(json.dumps(line) + "\n" for line in ledger))
    run.log_event("round 2: node p1 <script>alert(1)</script> update rejected")
    return run


def test_a_run_prints_clean_lines_plots_itself_and_reports_beside_another(fedvault_cli, tmp_path):
    first = tmp_path / "lr-0.05"
    proc = fedvault_cli("simulate", "fedavg", "--out", str(first), "--set", "num-server-rounds=2",
                        "--set", "num-clients=2", "--set", "fedavg.local-epochs=1",
                        "--set", "data.dataset=digits", "--set", "data.partitioner=iid", check=True)
    console = proc.stdout + proc.stderr
    assert not [word for word in NOISE if word in console], console
    rounds = [line for line in proc.stdout.splitlines() if line.startswith("round ")]
    assert len(rounds) == 2 and all(re.fullmatch(r"round \d/2 .* \d+\.\ds", line) for line in rounds)
    assert sorted(p.name for p in (first / "plots").iterdir()) == ["accuracy.png", "loss.png"]
    assert f"plots: {first / 'plots'}/ (accuracy.png, loss.png)\n" in proc.stdout
    # the run directory a simulation writes
    summary = json.loads((first / "summary.json").read_text())
    assert summary["rounds"] == 2 and summary["num_clients"] == 2 and summary["seed"] == 0
    assert summary["transport"] == "simulation" and summary["wall_seconds"] > 0
    assert 0.3 < summary["accuracy"] <= 1.0  # digits: chance 0.1; 2 rounds of 1 epoch reach 0.43
    assert [r["round"] for r in RunDirectory(first).metrics()] == [1, 2]
    assert json.loads((first / "config.json").read_text())["run"]["num-clients"] == 2

    second = _second_run(tmp_path / "lr-0.2", first)
    plotted = CliRunner().invoke(cli, ["plot", str(second.path)])  # in process: no Ray here
    assert plotted.exit_code == 0 and plotted.output.strip().endswith("accuracy.png, loss.png, epsilon.png")
    page = tmp_path / "out" / "report.html"
    reported = CliRunner().invoke(cli, ["report", str(first), str(second.path), "--out", str(page)])
    assert reported.exit_code == 0, reported.output
    text = page.read_text()
    assert "http://" not in text and "https://" not in text and "<script>" not in text
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in text  # the event, escaped
    diff = re.search(r"Configuration differences</h2><p>(\d+) keys differ", text)
    assert diff and diff.group(1) == "3"  # lr, dp.enabled, dp.target-epsilon
    curves = text.count("<img class=\"figure\"")
    assert curves == 7  # accuracy and loss of both runs, side by side; 2 + 3 per run
    if CHROMIUM is None:
        pytest.skip(SKIP_REASON)
    assert figure_pixels(page, tmp_path / "shots") >= curves * MIN_PIXELS_PER_CURVE
