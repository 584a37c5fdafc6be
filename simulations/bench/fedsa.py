"""`fedvault bench fedsa`: scratch / sampled / topk / random / all / oracle over seeds.

The small-scale protocol of the design notes §3.1 (methods/fedsa/README.md). Every
(seed, variant) is one `fedvault simulate fedsa` run in its own process (Flower's Simulation
Engine, 6 teacher nodes). `scratch` is each run's probe-only baseline: the same
pre-fitted student and the same fresh head as the variants of its seed, adapted
without any distillation (the bench checks that all variants of a seed agree).

Each variant is reported twice: on the server's validation canvases (carved from the
training digits; what `fedvault bench fedsa-choose` chooses on) and on the test canvases
(the final figure, read for nothing else).

Bands (PASS/FAIL each, with "k of n seeds"; `pass` = all of them):
- G1 (the design notes' G1): in every seed, top-k precision at the first selection
  >= 0.8, and mean similarity of relevant teachers > that of distractors.
- G2: in every seed, topk test accuracy >= accuracy_scratch + 0.05.
- G2-mean (note G2): mean(sampled or topk) − mean(scratch) >= 0.05 (on the mean; the
  seed count is of seeds where either gains 0.05).
Selection against random / all / oracle is reported (`selection_vs_baselines`: per seed,
on validation and test, and in how many seeds selection wins), not gated (pitfall 4).
"""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Any, Callable, Iterable

from simulations.bench.runs import (band, band_line, count_failed_seeds, mean_std, runs_root,
                                    simulate_scenario, tally)

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
SELECTIONS, BASELINES = ("topk", "sampled"), ("random", "all", "oracle")

# (seed, --set items, run directory) → the run's summary, or {"error": ...}
Simulate = Callable[[int, list[str], Path], dict[str, Any]]


def simulate_fedsa(seed: int, sets: list[str], run_dir: Path) -> dict[str, Any]:
    """One `fedvault simulate fedsa` run in a subprocess."""
    return simulate_scenario("fedsa", seed, run_dir, sets)


def _figures(by_seed: dict[int, dict[str, Any]], key: str) -> dict[int, float]:
    return {s: r[key] for s, r in by_seed.items() if r.get(key) is not None}


def _row(acc: dict[int, float], val: dict[int, float]) -> dict[str, Any]:
    row = {**mean_std(list(acc.values())), "per_seed": acc}
    if val:
        row["val"] = {**mean_std(list(val.values())), "per_seed": val}
    return row


def table_of(ok: dict[str, dict[int, dict[str, Any]]]) -> dict[str, Any]:
    """scratch + one row per variant: test mean/std/per seed, `val` alike, gains, shares."""
    scratch: dict[str, dict[int, float]] = {"test": {}, "val": {}}
    for by_seed in ok.values():
        for seed, r in by_seed.items():
            scratch["test"].setdefault(seed, r["accuracy_scratch"])
            if r.get("val_accuracy_scratch") is not None:
                scratch["val"].setdefault(seed, r["val_accuracy_scratch"])
    table = {"scratch": _row(scratch["test"], scratch["val"])} if scratch["test"] else {}
    for variant, by_seed in ok.items():
        if by_seed:
            table[variant] = {
                **_row(_figures(by_seed, "accuracy"), _figures(by_seed, "val_accuracy")),
                "gain": {s: r["accuracy"] - r["accuracy_scratch"] for s, r in by_seed.items()},
                "val_gain": {s: r["val_accuracy"] - r["val_accuracy_scratch"]
                             for s, r in by_seed.items()
                             if r.get("val_accuracy") is not None
                             and r.get("val_accuracy_scratch") is not None},
                "relevant_share": {s: r["relevant_share"] for s, r in by_seed.items()}}
    return table


def selection_vs_baselines(table: dict[str, Any]) -> dict[str, Any]:
    """Per pair (a selection rule − a baseline): differences per seed on validation and test,
    and in how many seeds the selection rule wins."""
    out = {}
    for rule in SELECTIONS:
        for base in BASELINES:
            if rule not in table or base not in table:
                continue
            pair = {}
            for split, pick in (("val", lambda row: row.get("val", {}).get("per_seed", {})),
                                ("test", lambda row: row["per_seed"])):
                a, b = pick(table[rule]), pick(table[base])
                diff = {s: a[s] - b[s] for s in a if s in b}
                pair[split] = {"per_seed": diff, **tally({s: d > 0 for s, d in diff.items()})}
            out[f"{rule} - {base}"] = pair
    return out


def judge(summaries: dict[int, dict[str, Any]], rule: str | None = None) -> dict[str, dict[str, Any]]:
    """G1 and G2 over runs of one selection rule, by seed; the claim figure of a single run
    (simulations/bench/claim_figure.py) is this with one seed and the run's own rule."""
    rule = rule or next(iter(summaries.values()), {}).get("selection", "topk")
    return {
        "G1": band(f"every seed: {rule} precision >= {PRECISION_MIN} and sim(L) - sim(R) > 0",
                   {s: [r["selection_precision"], r["similarity_gap"]] for s, r in summaries.items()},
                   seed_ok=lambda v: v[0] >= PRECISION_MIN and (v[1] or 0) > 0),
        "G2": band(f"every seed: {rule} accuracy >= accuracy_scratch + {GAIN_MIN}",
                   {s: r["accuracy"] - r["accuracy_scratch"] for s, r in summaries.items()},
                   seed_ok=lambda gain: gain >= GAIN_MIN),
    }


def evaluate(runs: dict[str, dict[int, dict[str, Any]]], seeds: list[int]) -> dict[str, Any]:
    """Table and bands from the summaries `runs[variant][seed]`."""
    ok = {v: {s: r for s, r in by_seed.items() if "error" not in r} for v, by_seed in runs.items()}
    table = table_of(ok)
    topk = ok.get("topk", {})
    failed_topk = [s for s in seeds if s not in topk]
    bands = {name: count_failed_seeds(b, failed_topk) for name, b in judge(topk, "topk").items()}
    if failed_topk:  # a missing seed cannot pass an every-seed band
        bands = {name: {**b, "pass": False} for name, b in bands.items()}
    full = [v for v in ("sampled", "topk")
            if v in table and len(table[v]["per_seed"]) == len(seeds)]
    gains = {v: table[v]["mean"] - table["scratch"]["mean"] for v in full}
    per_seed_best = {s: max(table[v]["gain"][s] for v in full) for s in seeds} if full else {}
    bands["G2-mean"] = band(f"mean(sampled or topk) - mean(scratch) >= {GAIN_MIN}", per_seed_best,
                            bool(gains) and max(gains.values()) >= GAIN_MIN,
                            seed_ok=lambda gain: gain >= GAIN_MIN)
    bands["G2-mean"]["mean_gain"] = gains
    consistent = all(len({ok[v][s]["accuracy_scratch"] for v in ok if s in ok[v]}) <= 1
                     for s in seeds)
    failed = [f"{v}/seed {s}" for v, by_seed in runs.items() for s, r in by_seed.items()
              if "error" in r]
    return {"table": table, "bands": bands, "selection_vs_baselines": selection_vs_baselines(table),
            "scratch_consistent": consistent, "failed_runs": failed,
            "pass": all(b["pass"] for b in bands.values()) and consistent and not failed}


def markdown(table: dict[str, Any], seeds: list[int]) -> str:
    header = " / ".join(map(str, seeds))
    lines = [f"| method | validation mean ± std | validation per seed ({header}) "
             f"| test mean ± std | test per seed ({header}) | test gain over scratch "
             "| relevant share of draws |",
             "|---|---|---|---|---|---|---|"]

    def per_seed(values: dict | None, fmt: str) -> str:
        return " / ".join(fmt.format(values[s]) if s in values else "–" for s in seeds) \
            if values else "–"

    def mean(row: dict | None) -> str:
        return f"{100 * row['mean']:.1f} ± {100 * row['std']:.1f}" if row else "–"

    for name, row in table.items():
        val = row.get("val")
        cells = [mean(val), per_seed({s: 100 * v for s, v in val["per_seed"].items()}, "{:.1f}")
                 if val else "–", mean(row),
                 per_seed({s: 100 * v for s, v in row["per_seed"].items()}, "{:.1f}"),
                 per_seed({s: 100 * v for s, v in row.get("gain", {}).items()}, "{:+.1f}"),
                 per_seed(row.get("relevant_share"), "{:.2f}")]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def run(out: Path | None = None, seeds: list[int] | None = None,
        variants: Iterable[str] = tuple(VARIANTS), extra: Iterable[str] = (), *,
        root: Path | None = None, done: dict[str, dict[int, dict[str, Any]]] | None = None,
        simulate_run: Simulate = simulate_fedsa) -> dict[str, Any]:
    """Every variant × seed (`done` holds runs already made with the same `extra`, reused)."""
    seeds, extra = list(seeds or DEFAULT_SEEDS), list(extra)
    root = root or runs_root(out, "fedsa")
    started = time.perf_counter()
    done = done or {}
    runs: dict[str, dict[int, dict[str, Any]]] = {v: dict(done.get(v, {})) for v in variants}
    for seed in seeds:
        for variant in runs:
            if seed in runs[variant]:
                continue
            t0 = time.perf_counter()
            r = simulate_run(seed, [*VARIANTS[variant], *extra], root / f"{variant}-s{seed}")
            runs[variant][seed] = r
            print(f"[bench fedsa] seed {seed} {variant}: "
                  + (r["error"][-300:] if "error" in r else
                     f"val {r.get('val_accuracy')} test {r['accuracy']:.3f} "
                     f"scratch val {r.get('val_accuracy_scratch')} "
                     f"test {r['accuracy_scratch']:.3f} "
                     f"precision {r['selection_precision']}")
                  + f" ({time.perf_counter() - t0:.0f} s)", file=sys.stderr, flush=True)
    result = evaluate(runs, seeds)
    for name, verdict in result["bands"].items():
        print(band_line("bench fedsa", name, verdict), file=sys.stderr, flush=True)
    result.update(seeds=seeds, run_dirs=str(root), extra=extra,
                  markdown=markdown(result["table"], seeds),
                  wall_seconds=time.perf_counter() - started,
                  runs={v: {s: {k: r.get(k) for k in ("accuracy", "accuracy_scratch",
                                                      "val_accuracy", "val_accuracy_scratch",
                                                      "selection_precision", "similarity_gap",
                                                      "relevant_share", "selected", "error")}
                            for s, r in by_seed.items()} for v, by_seed in runs.items()})
    return result
