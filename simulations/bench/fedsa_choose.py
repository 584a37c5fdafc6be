"""`fedvault bench fedsa-choose`: choose adapt-backbone-lr on validation, then run every variant.

Issue #24: FedSA's `adapt-backbone-lr = 0.1` had been adopted after a test-set figure
missed its band. Here the choice reads only the server's validation canvases (carved
from the training digits, methods/fedsa/canvas.py), never the test canvases:

1. For each candidate v in {0, 0.1, 1} and each seed: one topk run with
   `fedsa.adapt-backbone-lr = v`; its validation gain = val_accuracy − val_accuracy_scratch.
2. The chosen v has the largest MEDIAN validation gain over seeds (ties: the candidate
   listed first).
3. `fedvault bench fedsa`'s six rows (scratch, sampled, topk, random, all, oracle) at the
   chosen v, reporting validation and test per variant and "k of n seeds" per band; the
   topk runs of step 1 at the chosen v are reused, not run again.

`pass` is the variants bench's verdict; the choice itself is reported, not judged.
21 runs of `fedvault simulate fedsa` for 3 seeds (3 candidates × 3 + 4 variants × 3; tens of
minutes on 2 cores).
"""

from __future__ import annotations

import statistics
import sys
import time
from pathlib import Path
from typing import Any, Iterable

from simulations.bench import fedsa as variants_bench
from simulations.bench.fedsa import DEFAULT_SEEDS, VARIANTS, Simulate, simulate_fedsa
from simulations.bench.runs import runs_root

CANDIDATES = (0.0, 0.1, 1.0)
KEY = "fedsa.adapt-backbone-lr"


def validation_gain(summary: dict[str, Any]) -> float | None:
    """topk's validation accuracy over the probe-only baseline's (None: no figure)."""
    if "error" in summary or summary.get("val_accuracy") is None \
            or summary.get("val_accuracy_scratch") is None:
        return None
    return summary["val_accuracy"] - summary["val_accuracy_scratch"]


def choose(runs: dict[float, dict[int, dict[str, Any]]]) -> dict[str, Any]:
    """The candidate with the largest median validation gain (first listed on ties)."""
    gains = {v: {s: validation_gain(r) for s, r in by_seed.items()} for v, by_seed in runs.items()}
    medians = {v: statistics.median(g for g in by_seed.values() if g is not None)
               for v, by_seed in gains.items() if any(g is not None for g in by_seed.values())}
    if not medians:
        raise RuntimeError("no candidate run produced a validation figure (see the run errors)")
    best = max(medians.values())
    chosen = next(v for v in runs if v in medians and medians[v] == best)
    return {"chosen": chosen, "median_val_gain": medians, "val_gain": gains,
            "rule": "largest median over seeds of topk val_accuracy - val_accuracy_scratch"}


def run(out: Path | None = None, seeds: list[int] | None = None,
        candidates: Iterable[float] = CANDIDATES, extra: Iterable[str] = (), *,
        simulate_run: Simulate = simulate_fedsa) -> dict[str, Any]:
    seeds, extra, candidates = list(seeds or DEFAULT_SEEDS), list(extra), list(candidates)
    root = runs_root(out, "fedsa-choose")
    started = time.perf_counter()
    trials: dict[float, dict[int, dict[str, Any]]] = {v: {} for v in candidates}
    for value in candidates:
        for seed in seeds:
            sets = [*VARIANTS["topk"], *extra, f"{KEY}={value}"]
            trials[value][seed] = r = simulate_run(seed, sets, root / f"choose-lr{value}-s{seed}")
            print(f"[bench fedsa-choose] {KEY}={value} seed {seed}: "
                  + (r["error"][-300:] if "error" in r
                     else f"validation gain {validation_gain(r)}"),
                  file=sys.stderr, flush=True)
    choice = choose(trials)
    print(f"[bench fedsa-choose] chosen {KEY}={choice['chosen']} (median validation gain "
          f"{choice['median_val_gain']})", file=sys.stderr, flush=True)
    result = variants_bench.run(
        seeds=seeds, extra=[*extra, f"{KEY}={choice['chosen']}"], root=root,
        done={"topk": trials[choice["chosen"]]}, simulate_run=simulate_run)
    failed_trials = [f"{KEY}={v}/seed {s}" for v, by_seed in trials.items()
                     for s, r in by_seed.items() if "error" in r]
    return {**result, "choice": choice, "failed_trials": failed_trials,
            "wall_seconds": time.perf_counter() - started}
