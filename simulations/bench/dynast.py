"""`fedvault bench dynast`: DynaST's cascade vs coarse-only vs all-scale dense, over seeds.

The small-scale protocol of the design notes §7 (methods/dynast/README.md). Every seed is
one `fedvault simulate dynast` run in its own process (Flower's Simulation Engine, 3 nodes
with one texture family each); each run trains the three variants as federated stages
with identical schedules from the same initial weights. The L1 comparisons (1, and 2's
"within 5%") are judged on the means over seeds, the attention counts (2's 20%, 3) on
every seed; every band reports each seed's figures and "k of n seeds" (the seeds whose
own figures meet it) beside them:

1. cascade warp L1 <= 0.9 × coarse-only, and cascade recon L1 < coarse-only;
2. cascade within 5% of dense on both (<= 1.05 × dense) while computing <= 20% of the
   dense attention entries at 32² (counted, every seed);
3. the std of the kept keys per query Σ_j M_ij is > 0 (every seed).
"""

from __future__ import annotations

from pathlib import Path
from statistics import fmean
from typing import Any

from simulations.bench.runs import band, scenario_bench

DEFAULT_SEEDS = (0, 1, 2)
WARP_RATIO = 0.9
WITHIN = 0.05
MAX_FRACTION = 0.2


def _mean(summaries: dict[int, dict[str, Any]], key: str, variant: str) -> float:
    return fmean(r[key][variant] for r in summaries.values())


def _beats_coarse_only(warp: dict[str, float], recon: dict[str, float]) -> bool:
    return warp["cascade"] <= WARP_RATIO * warp["coarse_only"] and recon["cascade"] < recon["coarse_only"]


def _near_dense(warp: dict[str, float], recon: dict[str, float]) -> bool:
    return (warp["cascade"] <= (1 + WITHIN) * warp["dense"]
            and recon["cascade"] <= (1 + WITHIN) * recon["dense"])


def judge(summaries: dict[int, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    figures = {s: {k: r[k] for k in ("warp_l1", "recon_l1")} for s, r in summaries.items()}
    warp = {v: _mean(summaries, "warp_l1", v) for v in ("cascade", "coarse_only", "dense")}
    recon = {v: _mean(summaries, "recon_l1", v) for v in ("cascade", "coarse_only", "dense")}
    bands = {
        "cascade_beats_coarse_only": band(
            f"mean warp L1 cascade <= {WARP_RATIO} x coarse_only ({warp['cascade']:.4f} vs "
            f"{warp['coarse_only']:.4f}) and recon L1 lower ({recon['cascade']:.4f} vs "
            f"{recon['coarse_only']:.4f})", figures,
            _beats_coarse_only(warp, recon), seed_ok=lambda f: _beats_coarse_only(f["warp_l1"], f["recon_l1"])),
        "cascade_near_dense": band(
            f"mean warp and recon L1 cascade <= {1 + WITHIN} x dense (warp {warp['cascade']:.4f} vs "
            f"{warp['dense']:.4f}, recon {recon['cascade']:.4f} vs {recon['dense']:.4f})", figures,
            _near_dense(warp, recon), seed_ok=lambda f: _near_dense(f["warp_l1"], f["recon_l1"])),
    }
    fractions = {s: {"attention_fraction": r["attention_fraction"],
                     "attention_fraction_32": r["attention_fraction_32"]} for s, r in summaries.items()}
    bands["sparse_attention_fraction"] = band(
        f"cascade computes <= {MAX_FRACTION} of the dense attention entries at 32² (every seed)",
        fractions, seed_ok=lambda f: f["attention_fraction_32"] <= MAX_FRACTION)
    spread = {s: r["keys_per_query_std"] for s, r in summaries.items()}
    bands["dynamic_keys_per_query"] = band("std of kept keys per query > 0 (every seed)", spread,
                                           seed_ok=lambda v: v > 0)
    return bands


def run(out: Path | None = None, seeds: list[int] | None = None) -> dict[str, Any]:
    result = scenario_bench("dynast", list(seeds or DEFAULT_SEEDS), judge, out=out)
    ok = {s: r for s, r in result["summaries"].items() if "error" not in r}
    if ok:
        result["means"] = {key: {v: _mean(ok, key, v) for v in ("cascade", "coarse_only", "dense")}
                           for key in ("warp_l1", "recon_l1")}
        result["means"]["attention_fraction"] = fmean(r["attention_fraction"] for r in ok.values())
        result["means"]["keys_per_query_std"] = fmean(r["keys_per_query_std"] for r in ok.values())
    return result
