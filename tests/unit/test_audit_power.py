"""Claims about the audit's measured power (server/audit/power.py, check A7) and about each
audit being reported with its own ceiling and its own positive control."""

from __future__ import annotations

import inspect

import numpy as np
import pytest

from methods.privacy_config import AuditConfig
from server.audit.canary import audit_epsilon, max_measurable, one_run_audit
from server.audit.power import NodeDesign, outcome, positive_control
from server.audit.report import build_report, write_report
from server.audit.sections import f
from tests.audit_run import detail, make_run, status

pytestmark = pytest.mark.unit

# σ=1.2, q=1/16, 10 rounds of 16 steps (160), 500 white-box canaries on each of 2 nodes
HISTORY = [(1.2, 1 / 16, 16)] * 10


def _designs(history=HISTORY, m=500):
    return [
        # coins from a stream of their own: one_run_audit breaks ties with default_rng(0)
        NodeDesign(node, np.random.default_rng([11, k]).random(m) < 0.5, list(history), 1.0)
        for k, node in enumerate(("p0", "p1"))
    ]


def test_a_tenfold_noise_bug_lifts_the_white_box_control_far_above_the_honest_level():
    control = positive_control(_designs(), 1e-5, 0.05)
    assert control["measured"] and control["repetitions"] == 5
    assert control["sigma_factor_1"] < 1.5  # honest noise: the audit sees little
    assert control["sigma_factor_0.1"] > 3.0  # σ/10: near the ceiling (4.58 for m=1000)
    assert control["sigma_factor_0.1"] <= max_measurable(1000, 1e-5) + 1e-9


def test_the_control_is_reproducible_from_its_fixed_seed():
    assert positive_control(_designs(), 1e-5, 0.05) == positive_control(_designs(), 1e-5, 0.05)


def test_canaries_that_joined_no_step_give_the_control_nothing():
    control = positive_control(_designs(history=[]), 1e-5, 0.05)
    assert control["sigma_factor_1"] == control["sigma_factor_0.1"] == 0.0


@pytest.mark.parametrize("noise", [0.3, 1.5, 5.0, 50.0])
def test_the_fast_estimate_is_one_run_audits_own(noise):
    rng = np.random.default_rng(3)
    coins = rng.random(600) < 0.5
    scores = 3.0 * coins + rng.normal(0, noise, 600)
    expected = one_run_audit(scores, coins, 1e-5, with_ceiling=False).epsilon_lower_bound
    assert audit_epsilon(scores, coins, 1e-5) == pytest.approx(expected, abs=1e-9)


def test_the_outcome_says_refuted_only_when_the_lower_bound_exceeds_the_claim():
    control = {"measured": True, "sigma_factor_1": 0.5, "sigma_factor_0.1": 3.2}
    assert outcome(0.4, 2.0, control) == (
        "not refuted: ε̂ = 0.400 ≤ ε = 2.000; against the same canaries with σ/10 this audit "
        "reaches ε̂ = 3.200, so it could refute a claim of ε below 3.200"
    )
    assert outcome(2.5, 2.0, control).startswith("refuted: ε̂ = 2.500 > ε = 2.000")
    assert outcome(0.4, 2.0, {"measured": False}).endswith("positive control: not measured")
    no_dp = outcome(0.4, None, {"measured": False})
    assert no_dp == "no DP: ε̂ = 0.400 shows what this audit detects"


def test_the_config_quotes_the_ceiling_the_code_computes():
    ceiling = max_measurable(200, 1e-5)
    assert ceiling == pytest.approx(3.49, abs=0.005)
    assert f"m=200 → {ceiling:.2f}" in inspect.getsource(AuditConfig)


def test_a7_passes_when_the_tenth_noise_control_refutes_the_claim(tmp_path):
    report, _ = build_report(make_run(tmp_path / "run", sigma=3.0))  # ε ≈ 1.17
    control = report["whitebox_canary_audit"]["positive_control"]
    assert control["sigma_factor_0.1"] > report["accounting"]["epsilon"]
    assert status(report, "A7") == "PASS"


def test_a7_warns_under_powered_when_even_a_tenfold_bug_stays_below_the_claim(tmp_path):
    report, _ = build_report(make_run(tmp_path / "run", sigma=1.2))  # ε ≈ 4.31
    control = report["whitebox_canary_audit"]["positive_control"]
    assert control["sigma_factor_0.1"] <= report["accounting"]["epsilon"]
    assert status(report, "A7") == "WARN" and "under-powered" in detail(report, "A7")
    # the ceiling (4.58) is above the claim: a ceiling-based A7 would have passed here
    assert report["whitebox_canary_audit"]["max_measurable"] > report["accounting"]["epsilon"]


def test_a_run_without_dp_shows_its_white_box_lower_bound_and_claims_nothing(tmp_path):
    report = write_report(make_run(tmp_path / "run", dp=False, rounds=3, whitebox=200))
    white = report["whitebox_canary_audit"]
    assert white["applicable"] and not white["positive_control"]["measured"]
    assert white["outcome"].startswith(f"no DP: ε̂ = {white['epsilon_lower_bound']:.3f}")
    assert status(report, "A7") == "N/A"
    assert white["outcome"] in (tmp_path / "run" / "audit" / "report.md").read_text()


def test_each_audit_is_shown_with_its_own_ceiling_and_control(tmp_path):
    report = write_report(make_run(tmp_path / "run", rounds=3, whitebox=300, blackbox=60))
    black, white = report["canary_audit"], report["whitebox_canary_audit"]
    assert black["m"] == 120 and white["m"] == 600
    assert black["max_measurable"] < white["max_measurable"]
    md = (tmp_path / "run" / "audit" / "report.md").read_text()
    black_row = next(line for line in md.splitlines() if line.startswith("| black-box canaries"))
    assert f"its ceiling {f(black['max_measurable'])}" in black_row
    assert f(white["max_measurable"]) not in black_row and "not measured" in black_row
    white_row = next(line for line in md.splitlines() if line.startswith("| white-box canaries"))
    assert f"σ/10: {f(white['positive_control']['sigma_factor_0.1'])}" in white_row
    assert report["mia"]["outcome"].endswith("positive control: not measured")
