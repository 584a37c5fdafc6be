"""`fedvault bench style-gnn`: the GNN style transfer vs AdaIN over seeds, with bands.

The small-scale protocol of the design notes §6 (methods/style_gnn/README.md). Every seed is
one `fedvault simulate style-gnn` run in its own process (Flower's Simulation Engine, 3 nodes
with their own content crops and style families): a federated GNN stage and a federated
AdaIN stage, judged on the server's held-out pairs. The bands must hold on every
seed:

1. patch_nn_distance.gnn < patch_nn_distance.adain and content_loss.gnn ≤ 1.2 × content_loss.adain;
2. outputs for different k differ: diversity_by_k[k] > 0.02 for k = 1, 3, 8.

The note's further claim, patch-NN distance rising with k, is reported (not a band).
"""

from __future__ import annotations

from itertools import pairwise
from pathlib import Path
from statistics import fmean
from typing import Any

from simulations.bench.runs import band, scenario_bench

DEFAULT_SEEDS = (0, 1, 2)
CONTENT_FACTOR = 1.2
MIN_DIVERSITY = 0.02


def judge(summaries: dict[int, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    closer, diverse, rising = {}, {}, {}
    for seed, r in summaries.items():
        nn, content = r["patch_nn_distance"], r["content_loss"]
        closer[seed] = {"nn_gnn": nn["gnn"], "nn_adain": nn["adain"], "content_gnn": content["gnn"],
                        "content_adain": content["adain"],
                        "content_ratio": content["gnn"] / content["adain"]}
        diverse[seed] = r["diversity_by_k"]
        by_k = [r["patch_nn_distance_by_k"][k] for k in sorted(r["patch_nn_distance_by_k"], key=int)]
        rising[seed] = {"by_k": r["patch_nn_distance_by_k"],
                        "rises": all(a <= b for a, b in pairwise(by_k))}
    return {
        "gnn_closer_to_style": band(
            f"every seed: patch_nn_distance gnn < adain and content_loss gnn <= {CONTENT_FACTOR} x adain",
            closer, seed_ok=lambda c: c["nn_gnn"] < c["nn_adain"] and c["content_ratio"] <= CONTENT_FACTOR),
        "k_changes_output": band(
            f"every seed and k: diversity_by_k > {MIN_DIVERSITY} (mean pixel L2 to the other ks)",
            diverse, seed_ok=lambda d: min(d.values()) > MIN_DIVERSITY),
        "info_nn_distance_rises_with_k": band(
            "the note's claim (d)2, not an issue band: patch-NN distance non-decreasing in k",
            rising, seed_ok=lambda x: x["rises"], informational=True),
    }


def run(out: Path | None = None, seeds: list[int] | None = None) -> dict[str, Any]:
    result = scenario_bench("style-gnn", list(seeds or DEFAULT_SEEDS), judge, out=out)
    ok = [r for r in result["summaries"].values() if "error" not in r]
    if ok:
        result["means"] = {
            key: {name: fmean(r[key][name] for r in ok) for name in ok[0][key]}
            for key in ("patch_nn_distance", "content_loss", "diversity_by_k", "patch_nn_distance_by_k")}
    return result
