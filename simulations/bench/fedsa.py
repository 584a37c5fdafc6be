"""`fedvault bench fedsa`: scratch / random / all / sampled / topk / oracle over seeds.

The small-scale protocol of the design notes §3.1 (methods/fedsa/README.md). Every
(seed, variant) is one `fedvault simulate fedsa` run in its own process (Flower's Simulation
Engine, 6 teacher nodes). `scratch` is each run's `accuracy_scratch`: the same
pre-fitted student and the same fresh head as the variants of its seed, adapted
without any distillation (the bench checks that all variants of a seed agree).

Bands (PASS/FAIL each; `pass` = all of them):
- G1 (the design notes' G1): in every seed, top-k precision at the first selection
  >= 0.8, and mean similarity of relevant teachers > that of distractors.
- G2: in every seed, topk accuracy >= accuracy_scratch + 0.05.
- G2-mean (note G2): mean(sampled or topk) − mean(scratch) >= 0.05.
Saliency against random / all / oracle is reported, not gated (pitfall 4).
"""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Any, Iterable

from simulations.bench.runs import band, mean_std, runs_root, simulate_scenario

VARIANTS: dict[str, list[str]] = {
    "sampled": ["fedsa.selection=sampled"],
    "topk": ["fedsa.selection=topk"],
    "random": ["fedsa.selection=random"],
    "all": ["fedsa.selection=all"],
    "oracle": ["fedsa.selection=fixed", "fedsa.fixed-teachers=0,1,2"],  # the 3 left-digit teachers
}
DEFAULT_SEEDS = (0, 1, 2)
PRECISION_MIN = 0.8
GAIN_MIN = 0.05


def simulate(seed: int, variant: str, run_dir: Path, extra: Iterable[str] = ()) -> dict[str, Any]:
    """One `fedvault simulate fedsa` run in a subprocess; its summary (or an "error")."""
    return simulate_scenario("fedsa", seed, run_dir, [*VARIANTS[variant], *extra])


def _band(per_seed: dict[int, Any], passed: bool, rule: str) -> dict[str, Any]:
    return band(rule, per_seed, passed)


def evaluate(runs: dict[str, dict[int, dict[str, Any]]], seeds: list[int]) -> dict[str, Any]:
    """Table and bands from the summaries `runs[variant][seed]`."""
    ok = {v: {s: r for s, r in by_seed.items() if "error" not in r} for v, by_seed in runs.items()}
    scratch: dict[int, float] = {}
    for by_seed in ok.values():
        for seed, r in by_seed.items():
            scratch.setdefault(seed, r["accuracy_scratch"])
    table = {"scratch": {**mean_std(list(scratch.values())), "per_seed": scratch}} if scratch else {}
    for variant, by_seed in ok.items():
        if by_seed:
            acc = {s: r["accuracy"] for s, r in by_seed.items()}
            share = {s: r["relevant_share"] for s, r in by_seed.items()}
            gain = {s: r["accuracy"] - r["accuracy_scratch"] for s, r in by_seed.items()}
            table[variant] = {**mean_std(list(acc.values())), "per_seed": acc,
                              "gain": gain, "relevant_share": share}
    topk = ok.get("topk", {})
    bands = {
        "G1": _band({s: [r["selection_precision"], r["similarity_gap"]] for s, r in topk.items()},
                    len(topk) == len(seeds) and all(
                        r["selection_precision"] >= PRECISION_MIN and (r["similarity_gap"] or 0) > 0
                        for r in topk.values()),
                    f"every seed: top-k precision >= {PRECISION_MIN} and sim(L) - sim(R) > 0"),
        "G2": _band({s: r["accuracy"] - r["accuracy_scratch"] for s, r in topk.items()},
                    len(topk) == len(seeds) and all(
                        r["accuracy"] - r["accuracy_scratch"] >= GAIN_MIN for r in topk.values()),
                    f"every seed: topk accuracy >= accuracy_scratch + {GAIN_MIN}"),
    }
    gains = {v: table[v]["mean"] - table["scratch"]["mean"] for v in ("sampled", "topk")
             if v in table and len(table[v]["per_seed"]) == len(seeds)}
    bands["G2-mean"] = _band(gains, bool(gains) and max(gains.values()) >= GAIN_MIN,
                             f"mean(sampled or topk) - mean(scratch) >= {GAIN_MIN}")
    consistent = all(len({ok[v][s]["accuracy_scratch"] for v in ok if s in ok[v]}) <= 1
                     for s in seeds)
    failed = [f"{v}/seed {s}" for v, by_seed in runs.items() for s, r in by_seed.items()
              if "error" in r]
    return {"table": table, "bands": bands, "scratch_consistent": consistent, "failed_runs": failed,
            "pass": all(b["pass"] for b in bands.values()) and consistent and not failed}


def markdown(table: dict[str, Any], seeds: list[int]) -> str:
    header = " / ".join(map(str, seeds))
    lines = [f"| method | mean ± std | per seed ({header}) | gain over scratch | "
             "relevant share of draws |", "|---|---|---|---|---|"]

    def per_seed(values: dict | None, fmt: str) -> str:
        return " / ".join(fmt.format(values[s]) if s in values else "–" for s in seeds) \
            if values else "–"

    for name, row in table.items():
        mean = f"{100 * row['mean']:.1f} ± {100 * row['std']:.1f}"
        acc = per_seed({s: 100 * v for s, v in row["per_seed"].items()}, "{:.1f}")
        gain = per_seed({s: 100 * v for s, v in row.get("gain", {}).items()}, "{:+.1f}")
        share = per_seed(row.get("relevant_share"), "{:.2f}")
        lines.append(f"| {name} | {mean} | {acc} | {gain} | {share} |")
    return "\n".join(lines)


def run(out: Path | None = None, seeds: list[int] | None = None,
        variants: Iterable[str] = tuple(VARIANTS), extra: Iterable[str] = ()) -> dict[str, Any]:
    seeds = list(seeds or DEFAULT_SEEDS)
    root = runs_root(out, "fedsa")
    started = time.perf_counter()
    runs: dict[str, dict[int, dict[str, Any]]] = {v: {} for v in variants}
    for seed in seeds:
        for variant in runs:
            t0 = time.perf_counter()
            runs[variant][seed] = simulate(seed, variant, root / f"{variant}-s{seed}", extra)
            r = runs[variant][seed]
            print(f"[bench fedsa] seed {seed} {variant}: "
                  + (r["error"][-300:] if "error" in r else
                     f"accuracy {r['accuracy']:.3f} scratch {r['accuracy_scratch']:.3f} "
                     f"precision {r['selection_precision']}")
                  + f" ({time.perf_counter() - t0:.0f} s)", file=sys.stderr, flush=True)
    result = evaluate(runs, seeds)
    result.update(seeds=seeds, run_dirs=str(root), markdown=markdown(result["table"], seeds),
                  wall_seconds=time.perf_counter() - started,
                  runs={v: {s: {k: r.get(k) for k in ("accuracy", "accuracy_scratch",
                                                      "selection_precision", "similarity_gap",
                                                      "relevant_share", "selected", "error")}
                            for s, r in by_seed.items()} for v, by_seed in runs.items()})
    return result
