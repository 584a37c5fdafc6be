"""`fedvault bench lirf-speed`: LIRF's deposit against retraining without the deposit data,
at a matched endpoint (docs/performance.md).

`fedvault bench lirf` already times both inside each LIRF run (the deposit, and the
retrain baseline: FedAvg from scratch over the same nodes without the deposit set, by the
same engine), so this bench reuses its runner (simulations/bench/lirf.py). The run's
summary keeps the retrain baseline's per-round metrics (`retrain_history`: pre_acc,
dep_acc, and cumulative seconds and sample-steps since the retrain started) beside the
deposit's `deposit_seconds` and `deposit_sample_steps`.

Matched endpoint: the first retrain round whose pre_acc >= the deposit target's pre_acc
and whose dep_acc <= the target's dep_acc (equal preserved accuracy, at least equal
forgetting). Retraining stops counting there, not at its last round:
- `wall_ratio_matched` = that round's cumulative seconds ÷ deposit_seconds;
- `compute_ratio` = that round's cumulative sample-steps ÷ deposit_sample_steps (free of
  the engine's per-round overhead and of the machine's load);
- `wall_ratio_full` = the whole retrain run's seconds ÷ deposit_seconds (the figure before
  the matched endpoint, for comparison).
A seed whose retrain run never reaches the endpoint has `matched_round: null` and fails,
with the reason. `pass`: every seed ran and matched, and the median `wall_ratio_matched`
over seeds is >= 3 (the LIRF issue's floor; a median, as wall time on a shared machine is
noisy). Each band also reports "k of n seeds" (seeds with their own ratio >= 3) beside the
mean; `compute_ratio` is reported the same way but does not decide `pass`.
Default: seeds 0, 1, 2, deposit classes 0,1,2.
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path
from typing import Any

from simulations.bench.lirf import EPS, TIME_RATIO_MIN, simulate
from simulations.bench.perf import median
from simulations.bench.runs import band, band_line, count_failed_seeds

DEFAULT_SEEDS = (0, 1, 2)
CLASSES = "0,1,2"


def matched_round(history: list[dict[str, Any]], target: dict[str, Any]) -> dict[str, Any] | None:
    """The first retrain round with pre_acc >= target pre_acc and dep_acc <= target dep_acc."""
    for entry in sorted(history, key=lambda e: e["round"]):
        if (entry["pre_acc"] >= target["pre_acc"] - EPS
                and entry["dep_acc"] <= target["dep_acc"] + EPS):
            return entry
    return None


def figures(summary: dict[str, Any]) -> dict[str, Any]:
    """The matched endpoint, its ratios and the full-run ratio of one LIRF run's summary;
    {"error": ...} when the summary lacks the per-round retrain metrics."""
    missing = [k for k in ("retrain_history", "deposit_sample_steps") if not summary.get(k)]
    if missing:
        return {"error": f"the LIRF summary has no {' or '.join(missing)} (a run from before "
                         f"the retrain's per-round metrics?)"}
    target, history = summary["target"], summary["retrain_history"]
    deposit_seconds, deposit_steps = summary["deposit_seconds"], summary["deposit_sample_steps"]
    match = matched_round(history, target)
    result = {
        "target": {"pre_acc": target["pre_acc"], "dep_acc": target["dep_acc"]},
        "deposit_seconds": deposit_seconds, "deposit_sample_steps": deposit_steps,
        "retrain_seconds": summary["retrain_seconds"], "retrain_rounds": len(history),
        "wall_ratio_full": summary["retrain_seconds"] / deposit_seconds,
        "matched_round": None, "wall_ratio_matched": None, "compute_ratio": None,
        "retrain_history": history,
    }
    if match is None:
        best = max(history, key=lambda e: e["pre_acc"]) if history else {}
        return {**result, "reason": (
            f"no retrain round of {len(history)} reached the deposit target's endpoint "
            f"(pre_acc >= {target['pre_acc']:.4f} and dep_acc <= {target['dep_acc']:.4f}); "
            f"best pre_acc {best.get('pre_acc')} at round {best.get('round')}")}
    return {**result, "matched_round": match["round"], "matched_seconds": match["seconds"],
            "matched_sample_steps": match["sample_steps"],
            "matched": {"pre_acc": match["pre_acc"], "dep_acc": match["dep_acc"]},
            "wall_ratio_matched": match["seconds"] / deposit_seconds,
            "compute_ratio": match["sample_steps"] / deposit_steps}


def verdict(runs: dict[int, dict[str, Any]]) -> dict[str, Any]:
    """Medians, bands ("k of n seeds") and `pass` over the seeds' figures."""
    done = {s: r for s, r in runs.items() if "error" not in r}
    failed = sorted(set(runs) - set(done))
    matched = {s: r for s, r in done.items() if r["matched_round"] is not None}
    medians = {key: median(r[key] for r in matched.values()) if matched else None
               for key in ("wall_ratio_matched", "compute_ratio")}
    medians["wall_ratio_full"] = (median(r["wall_ratio_full"] for r in done.values())
                                  if done else None)
    bands = {key: count_failed_seeds(band(
        f"{key} >= {TIME_RATIO_MIN} (median {_shown(medians[key])})",
        {s: r[key] for s, r in done.items()}, _floor_ok(medians[key]) and len(matched) == len(runs),
        seed_ok=_floor_ok, informational=key == "compute_ratio"), failed)
        for key in ("wall_ratio_matched", "compute_ratio")}
    reasons = [f"seed {s}: {r['error']}" for s, r in runs.items() if "error" in r]
    reasons += [f"seed {s}: {r['reason']}" for s, r in done.items() if s not in matched]
    if matched and not _floor_ok(medians["wall_ratio_matched"]):
        reasons.append(f"median wall_ratio_matched {medians['wall_ratio_matched']:.2f} "
                       f"< {TIME_RATIO_MIN}")
    return {**medians, "matched_rounds": {s: r["matched_round"] for s, r in done.items()},
            "bands": bands, "failed_runs": failed, "reason": "; ".join(reasons) or None,
            "pass": bool(runs) and not reasons}


def _floor_ok(ratio: float | None) -> bool:
    return ratio is not None and ratio >= TIME_RATIO_MIN


def _shown(value: float | None) -> str:
    return "none" if value is None else f"{value:.2f}"


def run(out: Path | None = None, seeds: list[int] | None = None) -> dict[str, Any]:
    seeds = list(seeds or DEFAULT_SEEDS)
    runs: dict[int, dict[str, Any]] = {}
    with tempfile.TemporaryDirectory(prefix="bench-lirf-speed-") as tmp:
        for seed in seeds:
            summary = simulate(seed, CLASSES, Path(tmp) / f"s{seed}")
            runs[seed] = summary if "error" in summary else figures(summary)
    result = verdict(runs)
    for name, b in result["bands"].items():
        print(band_line("bench lirf-speed", name, b), file=sys.stderr, flush=True)
    return {"bench": "lirf-speed", "seeds": seeds, "deposit_classes": CLASSES, "runs": runs,
            "floor": TIME_RATIO_MIN, **result}
