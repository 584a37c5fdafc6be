"""`fedvault bench dp-audit`: the dp-fedavg scenario with and without DP, audited the same way.

Per seed, two real simulated runs of `dp-fedavg` (each ends with its audit phase,
which writes RUN/audit/report.json):
- **DP**: the scenario as shipped (DP-SGD, ε = 3 at δ = 1e-5, secret noise);
- **no DP**: `dp.enabled=false` with the non-private settings that converge
  (lr 0.05, momentum 0.9; at the DP run's lr 0.5 plain SGD diverges to chance and an
  audit of a diverged model shows nothing), same canaries, same audit.

Bands: the DP run keeps its accuracy (>= 0.85) and every audit's ε̂ stays
<= ε; the run without DP gives white-box ε̂ > 0 on every seed (the audit detects
missing DP). The black-box canary ε̂ and the MIA AUC of the run without DP are printed
as informational bands.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from simulations.bench.runs import band, runs_root, simulate_scenario

SCENARIO = "dp-fedavg"
NO_DP = ("dp.enabled=false", "fedavg.lr=0.05", "fedavg.momentum=0.9")
AUDITS = {"white-box": "whitebox_canary_audit", "black-box": "canary_audit", "mia": "mia"}


def _audited(run_dir: Path, summary: dict[str, Any]) -> dict[str, Any]:
    """The figures of one run: accuracy, ε, and each audit's ε̂ from its report."""
    report_path = run_dir / "audit" / "report.json"
    if "error" in summary or not report_path.is_file():
        return {"error": summary.get("error", "no audit report")}
    report = json.loads(report_path.read_text())
    figures = {
        "accuracy": summary.get("accuracy"),
        "epsilon": summary.get("epsilon"),
        "private": summary.get("private"),
        "verdict": report.get("verdict"),
        "mia_auc": report.get("mia", {}).get("auc"),
    }
    for name, key in AUDITS.items():
        section = report.get(key, {})
        figures[f"eps_hat_{name}"] = section.get("epsilon_lower_bound") or 0.0
        if "positive_control" in section:
            figures[f"positive_control_{name}"] = section["positive_control"]
    return figures


def _judge(dp: dict[int, dict], plain: dict[int, dict]) -> dict[str, dict[str, Any]]:
    ok_dp = {s: r for s, r in dp.items() if "error" not in r}
    ok_plain = {s: r for s, r in plain.items() if "error" not in r}
    worst = {s: max(r[f"eps_hat_{a}"] for a in AUDITS) for s, r in ok_dp.items()}
    return {
        "dp accuracy >= 0.85": band(
            "DP run accuracy >= 0.85", {s: r["accuracy"] for s, r in ok_dp.items()},
            bool(ok_dp) and all((r["accuracy"] or 0) >= 0.85 for r in ok_dp.values())),
        "dp every eps_hat <= eps": band(
            "every audit's ε̂ <= the run's ε", {s: [worst[s], ok_dp[s]["epsilon"]] for s in ok_dp},
            bool(ok_dp) and all(worst[s] <= ok_dp[s]["epsilon"] + 1e-9 for s in ok_dp)),
        "no-dp white-box eps_hat > 0": band(
            "run without DP: white-box ε̂ > 0 (the audit detects missing DP)",
            {s: r["eps_hat_white-box"] for s, r in ok_plain.items()},
            bool(ok_plain) and all(r["eps_hat_white-box"] > 0 for r in ok_plain.values())),
        "no-dp black-box eps_hat > 0": band(
            "run without DP: black-box canary ε̂ > 0",
            {s: r["eps_hat_black-box"] for s, r in ok_plain.items()},
            bool(ok_plain) and all(r["eps_hat_black-box"] > 0 for r in ok_plain.values()),
            informational=True),
    }


def run(out: Path | None = None, seeds: list[int] | None = None) -> dict[str, Any]:
    seeds = seeds if seeds is not None else [0, 1, 2]
    root = runs_root(out, "dp-audit")
    dp, plain = {}, {}
    for seed in seeds:
        for kind, sets, into in (("dp", (), dp), ("no-dp", NO_DP, plain)):
            run_dir = root / f"{kind}-s{seed}"
            into[seed] = _audited(run_dir, simulate_scenario(SCENARIO, seed, run_dir, sets))
            print(f"[bench dp-audit] seed {seed} {kind}: {json.dumps(into[seed])[:400]}",
                  flush=True)
    bands = _judge(dp, plain)
    failed = [f"{k}-s{s}" for k, runs in (("dp", dp), ("no-dp", plain))
              for s, r in runs.items() if "error" in r]
    return {
        "bench": "dp-audit",
        "seeds": seeds,
        "dp": dp,
        "no_dp": plain,
        "no_dp_settings": list(NO_DP),
        "bands": bands,
        "failed_runs": failed,
        "run_dirs": str(root),
        "pass": not failed and all(b["pass"] for b in bands.values() if not b.get("informational")),
    }
