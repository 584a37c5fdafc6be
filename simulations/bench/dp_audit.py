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
import sys
from pathlib import Path
from typing import Any

from simulations.bench.runs import band, band_line, count_failed_seeds, runs_root, simulate_scenario

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
    bands = {
        "dp accuracy >= 0.85": band(
            "DP run accuracy >= 0.85", {s: r["accuracy"] for s, r in ok_dp.items()},
            seed_ok=lambda accuracy: (accuracy or 0) >= 0.85),
        "dp every eps_hat <= eps": band(
            "every audit's ε̂ <= the run's ε", {s: [worst[s], ok_dp[s]["epsilon"]] for s in ok_dp},
            seed_ok=lambda pair: pair[0] <= pair[1] + 1e-9),
        "no-dp white-box eps_hat > 0": band(
            "run without DP: white-box ε̂ > 0 (the audit detects missing DP)",
            {s: r["eps_hat_white-box"] for s, r in ok_plain.items()}, seed_ok=lambda eps: eps > 0),
        "no-dp black-box eps_hat > 0": band(
            "run without DP: black-box canary ε̂ > 0",
            {s: r["eps_hat_black-box"] for s, r in ok_plain.items()}, seed_ok=lambda eps: eps > 0,
            informational=True),
    }
    failed = {"dp": set(dp) - set(ok_dp), "no-dp": set(plain) - set(ok_plain)}
    return {name: count_failed_seeds(b, failed["no-dp" if name.startswith("no-dp") else "dp"])
            for name, b in bands.items()}


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
    for name, verdict in bands.items():
        print(band_line("bench dp-audit", name, verdict), file=sys.stderr, flush=True)
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
