"""`fedvault bench attn-div`: the Attention Diversification claims over seeds.

Each seed is one `fedvault simulate attn-div` (Flower's Simulation Engine, 3 nodes, one
source domain each), which trains ERM+MixStyle, Intra-ADR and I2-ADR federated on every
leave-one-domain-out split of the scenario and reports the target-domain accuracies (mean
over splits) and the attention diversity of the last feature map on target images.

Bands (`pass` = all three):
- i2_minus_erm_mean: mean over seeds of target_accuracy.i2adr − target_accuracy.erm >= 0.01
  ("k of n seeds" counts the seeds whose own gain is >= 0.01)
- ordering: i2adr >= intra >= erm on >= 2 seeds of 3 (>= 2/3 of the seeds in general)
- intra_diversity_gt_erm: attention_diversity.intra > attention_diversity.erm on every seed
"""

from __future__ import annotations

import math
import statistics
import sys
from pathlib import Path
from typing import Any

from simulations.bench.runs import band, mean_std, scenario_bench

SCENARIO = "attn-div"
DEFAULT_SEEDS = (0, 1, 2)
GAIN_MIN = 0.01
ORDER_SHARE = 2 / 3


def judge(summaries: dict[int, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    acc = {s: r["target_accuracy"] for s, r in summaries.items()}
    gains = {s: a["i2adr"] - a["erm"] for s, a in acc.items()}
    ordered = {s: a["i2adr"] >= a["intra"] >= a["erm"] for s, a in acc.items()}
    diversity = {s: r["attention_diversity"] for s, r in summaries.items()}
    needed = math.ceil(ORDER_SHARE * len(summaries) - 1e-9)
    return {
        "i2_minus_erm_mean": band(f"mean(i2adr − erm) >= {GAIN_MIN}", gains,
                                  statistics.fmean(gains.values()) >= GAIN_MIN,
                                  seed_ok=lambda gain: gain >= GAIN_MIN),
        "ordering": band(f"i2adr >= intra >= erm on >= {needed} of {len(summaries)} seeds",
                         {s: {**acc[s], "ordered": ordered[s]} for s in acc},
                         sum(ordered.values()) >= needed, seed_ok=lambda a: a["ordered"]),
        "intra_diversity_gt_erm": band("attention_diversity.intra > attention_diversity.erm on every seed",
                                       diversity, seed_ok=lambda d: d["intra"] > d["erm"]),
    }


def table(summaries: dict[int, dict[str, Any]]) -> dict[str, Any]:
    """The README table: per-seed target accuracies and diversities, and their mean ± std."""
    ok = {s: r for s, r in summaries.items() if "error" not in r}
    columns = {f"acc_{v}": {s: r["target_accuracy"][v] for s, r in ok.items()} for v in ("erm", "intra", "i2adr")}
    columns.update({f"div_{v}": {s: r["attention_diversity"][v] for s, r in ok.items()} for v in ("erm", "intra")})
    return {name: {"per_seed": values, **(mean_std(list(values.values())) if values else {})}
            for name, values in columns.items()}


def run(out: Path | None = None, seeds: list[int] | None = None) -> dict[str, Any]:
    result = scenario_bench(SCENARIO, list(seeds or DEFAULT_SEEDS), judge, out=out)
    result["table"] = table(result["summaries"])
    for name, column in result["table"].items():
        if "mean" in column:
            print(f"[bench {SCENARIO}] {name}: {column['mean']:.4f} ± {column['std']:.4f}  "
                  f"{column['per_seed']}", file=sys.stderr, flush=True)
    return result
