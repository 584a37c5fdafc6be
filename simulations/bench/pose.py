"""`fedvault bench pose`: the dual-center pose claims over seeds, with bands.

Each seed is one `fedvault simulate pose` run in its own process (Flower's Simulation
Engine; two camera nodes; three federated stages: dual + multi-scale training,
body-only + multi-scale training, dual + single-scale training, the last also tested
at 3 scales). Bands (design notes §3(d), methods/pose/README.md), judged on the mean over
seeds, with every seed's value and "k of n seeds" (the seeds whose own margin is >= 0) printed:

- dual_beats_body: AP_small(dual centers) ≥ AP_small(body center only) + 0.03
- multiscale_train_recall: recall_small(multi-scale train, 1-scale test)
  ≥ recall_small(single-scale train, 1-scale test) + 0.03
- multiscale_train_vs_multiscale_test: AP_small(multi-scale train, 1-scale test)
  ≥ AP_small(single-scale train, 3-scale test) − 0.01 (at `inference_cost_ratio` of its cost)
"""

from __future__ import annotations

import statistics
from pathlib import Path
from typing import Any

from simulations.bench.runs import band, scenario_bench

DEFAULT_SEEDS = (0, 1, 2)
MARGIN_DUAL, MARGIN_RECALL, WITHIN_MULTITEST = 0.03, 0.03, 0.01


def margins(summary: dict[str, Any]) -> dict[str, float]:
    """The three claims' signed margins of one run (≥ 0 where the claim holds)."""
    ap, recall = summary["ap_small"], summary["recall_small"]
    return {
        "dual_beats_body": ap["dual_center"] - ap["body_center"] - MARGIN_DUAL,
        "multiscale_train_recall": (recall["multiscale_train"] - recall["single_scale_train"]
                                    - MARGIN_RECALL),
        "multiscale_train_vs_multiscale_test": (summary["ap_small_multiscale_train_single_test"]
                                                - summary["ap_small_single_train_multi_test"]
                                                + WITHIN_MULTITEST),
    }


RULES = {
    "dual_beats_body": "mean over seeds of ap_small.dual_center - ap_small.body_center - 0.03 >= 0",
    "multiscale_train_recall": ("mean of recall_small.multiscale_train - "
                                "recall_small.single_scale_train - 0.03 >= 0"),
    "multiscale_train_vs_multiscale_test": ("mean of ap_small_multiscale_train_single_test - "
                                            "ap_small_single_train_multi_test + 0.01 >= 0"),
}


def judge(summaries: dict[int, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    per_seed = {seed: margins(s) for seed, s in summaries.items()}
    verdicts = {}
    for name, rule in RULES.items():
        values = {seed: round(m[name], 4) for seed, m in per_seed.items()}
        verdicts[name] = band(rule, values, statistics.fmean(values.values()) >= 0,
                              seed_ok=lambda margin: margin >= 0)
    return verdicts


def table(summaries: dict[int, dict[str, Any]]) -> dict[str, dict[str, float]]:
    """The README's figures per seed (and their mean)."""
    rows: dict[str, dict[str, float]] = {}
    for seed, s in summaries.items():
        rows[str(seed)] = {
            "ap_small.body_center": s["ap_small"]["body_center"],
            "ap_small.dual_center": s["ap_small"]["dual_center"],
            "recall_small.single_scale_train": s["recall_small"]["single_scale_train"],
            "recall_small.multiscale_train": s["recall_small"]["multiscale_train"],
            "ap_small_single_train_single_test": s["ap_small_single_train_single_test"],
            "ap_small_multiscale_train_single_test": s["ap_small_multiscale_train_single_test"],
            "ap_small_single_train_multi_test": s["ap_small_single_train_multi_test"],
            "inference_cost_ratio": s["inference_cost_ratio"],
        }
    if rows:
        keys = next(iter(rows.values()))
        rows["mean"] = {k: statistics.fmean(r[k] for r in rows.values()) for k in keys}
    return rows


def run(out: Path | None = None, seeds: list[int] | None = None) -> dict[str, Any]:
    result = scenario_bench("pose", list(seeds or DEFAULT_SEEDS), judge, out=out)
    ok = {s: r for s, r in result["summaries"].items() if "error" not in r}
    result["table"] = table(ok)
    return result
