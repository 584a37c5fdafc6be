"""`fedvault bench ask-ac`: Ask-AC vs continuous monitoring (CM) vs vanilla PPO, over seeds.

The small-scale design of the design notes §8 (methods/askac/README.md). Every seed is one
`fedvault simulate ask-ac` run in its own process (Flower's Simulation Engine); its three
stages train the three learners federated over the same CartPole variants.

Bands (each must hold in every seed):
- later-levels: Ask-AC training return (last 2k steps of a level) >= 90 % of CM's on levels 2..L
- queries: Ask-AC's advisor queries <= 30 % of CM's
- greedy-vs-vanilla: the learner's greedy return (standard head) > vanilla's on >= 2 of 3 levels
"""

from __future__ import annotations

import statistics
import sys
from pathlib import Path
from typing import Any

from simulations.bench.runs import band, scenario_bench

SCENARIO = "ask-ac"
DEFAULT_SEEDS = (0, 1, 2)
RETURN_SHARE, QUERY_SHARE, GREEDY_WINS = 0.90, 0.30, 2


def _seed_figures(s: dict[str, Any]) -> dict[str, Any]:
    askac, cm, vanilla = (s["return_askac"], s["return_continuous_monitoring"], s["return_vanilla"])
    return {
        "later_ratios": [a / c if c else 0.0 for a, c in zip(askac["train"][1:], cm["train"][1:])],
        "query_ratio": s["advisor_queries_askac"] / max(s["advisor_queries_cm"], 1),
        "greedy_wins": sum(a > v for a, v in zip(askac["greedy"], vanilla["greedy"])),
    }


def judge(summaries: dict[int, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    figures = {seed: _seed_figures(s) for seed, s in summaries.items()}
    return {
        "later-levels": band(f"Ask-AC train return >= {RETURN_SHARE:.0%} of CM on levels 2..L",
                             {s: f["later_ratios"] for s, f in figures.items()},
                             seed_ok=lambda ratios: min(ratios) >= RETURN_SHARE),
        "queries": band(f"Ask-AC advisor queries <= {QUERY_SHARE:.0%} of CM's",
                        {s: f["query_ratio"] for s, f in figures.items()},
                        seed_ok=lambda ratio: ratio <= QUERY_SHARE),
        "greedy-vs-vanilla": band(f"greedy return > vanilla on >= {GREEDY_WINS} levels",
                                  {s: f["greedy_wins"] for s, f in figures.items()},
                                  seed_ok=lambda wins: wins >= GREEDY_WINS),
    }


def table(summaries: dict[int, dict[str, Any]]) -> dict[str, Any]:
    """Per learner and figure: per-seed lists (per level) and their mean."""
    rows: dict[str, Any] = {}
    for key in ("return_askac", "return_continuous_monitoring", "return_vanilla"):
        for kind in ("train", "greedy"):
            per_seed = {s: r[key][kind] for s, r in summaries.items()}
            levels = zip(*per_seed.values())
            rows[f"{key}.{kind}"] = {"per_seed": per_seed,
                                     "mean": [statistics.fmean(v) for v in levels]}
    for key in ("advisor_queries_askac", "advisor_queries_cm", "ask_rate_askac"):
        per_seed = {s: r[key] for s, r in summaries.items()}
        rows[key] = {"per_seed": per_seed, "mean": statistics.fmean(per_seed.values())}
    return rows


def run(out: Path | None = None, seeds: list[int] | None = None) -> dict[str, Any]:
    result = scenario_bench(SCENARIO, list(seeds or DEFAULT_SEEDS), judge, out=out)
    ok = {s: r for s, r in result["summaries"].items() if "error" not in r}
    if ok:
        result["table"] = table(ok)
        for name, row in result["table"].items():
            print(f"[bench {SCENARIO}] {name}: {row['per_seed']} mean {row['mean']}",
                  file=sys.stderr, flush=True)
    return result
