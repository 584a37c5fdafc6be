"""`fedvault bench hscl`: HSCL vs its baselines on one-class MNIST-5k, over seeds, with bands.

The small-scale protocol of the design notes §5 (methods/hscl/README.md). Every seed is
one `fedvault simulate hscl` run in its own process (Flower's Simulation Engine, 3 nodes
with contamination rates 0.5ρ, ρ, 1.5ρ); each run trains, per normal class, HSCL and
the CSI-lite contrastive baseline at ρ ∈ {0, 0.1, 0.2} and the supervised BCE baseline
at ρ = 0.1. AUROCs are means over the normal classes; the bands are judged
on the mean over seeds, as the note's claim is stated ("mean AUROC over ≥ 3 normal
classes × 2 seeds"), with every seed's figure and "k of n seeds" (the seeds whose own
figure meets the band) reported beside it:

1. at ρ = 0.1: auroc ≥ auroc_baseline_contrastive + 0.01 and ≥ auroc_baseline_supervised + 0.01;
2. HSCL's AUROC drop from ρ = 0 to ρ = 0.2 is smaller than the contrastive baseline's.
"""

from __future__ import annotations

from pathlib import Path
from statistics import fmean
from typing import Any

from simulations.bench.runs import band, scenario_bench

DEFAULT_SEEDS = (0, 1, 2)
MARGIN = 0.01


def judge(summaries: dict[int, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    bands = {}
    for key, name in (("auroc_baseline_contrastive", "contrastive"),
                      ("auroc_baseline_supervised", "supervised")):
        gaps = {s: r["auroc"] - r[key] for s, r in summaries.items()}
        per_seed = {s: {"hscl": r["auroc"], name: r[key], "gap": gaps[s]} for s, r in summaries.items()}
        bands[f"hscl_beats_{name}"] = band(
            f"mean over seeds of auroc − {key} >= {MARGIN} (rho 0.1; mean {fmean(gaps.values()):+.4f})",
            per_seed, fmean(gaps.values()) >= MARGIN, seed_ok=lambda p: p["gap"] >= MARGIN)
    drops = {s: r["contamination_drop"] for s, r in summaries.items()}
    hscl, csi = fmean(d["hscl"] for d in drops.values()), fmean(d["contrastive"] for d in drops.values())
    bands["smaller_contamination_drop"] = band(
        f"mean AUROC drop rho 0 -> 0.2: hscl < contrastive ({hscl:.4f} vs {csi:.4f})", drops, hscl < csi,
        seed_ok=lambda d: d["hscl"] < d["contrastive"])
    return bands


def run(out: Path | None = None, seeds: list[int] | None = None) -> dict[str, Any]:
    result = scenario_bench("hscl", list(seeds or DEFAULT_SEEDS), judge, out=out)
    ok = [r for r in result["summaries"].values() if "error" not in r]
    if ok:
        keys = ("auroc", "auroc_baseline_contrastive", "auroc_baseline_supervised")
        result["means"] = {k: fmean(r[k] for r in ok) for k in keys}
        result["means"]["auroc_by_contamination"] = {
            rho: fmean(r["auroc_by_contamination"][rho] for r in ok) for rho in ok[0]["auroc_by_contamination"]}
        result["means"]["auroc_baseline_contrastive_by_contamination"] = {
            rho: fmean(r["auroc_baseline_contrastive_by_contamination"][rho] for r in ok)
            for rho in ok[0]["auroc_baseline_contrastive_by_contamination"]}
    return result
