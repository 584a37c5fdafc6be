"""`fedvault bench lirf-speed`: LIRF's deposit wall time against retraining without
the deposit data, at equal forgetting (docs/performance.md).

`fedvault bench lirf` already times both inside each LIRF run (the deposit, and the
retrain baseline: FedAvg from scratch over the same nodes without the deposit set,
by the same engine), so this bench reuses its runner (simulations/bench/lirf.py) and
reads the two timings and the forgetting each reaches. "Equal forgetting": the
deposited classes' accuracy of the deposit target must be at or below the LIRF band
(dep_acc ≤ 0.30; the retrain model never saw them). Floor from the LIRF issue:
retrain ÷ deposit ≥ 3. Median over seeds (default: seed 0, deposit classes 0,1,2).
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

from simulations.bench.lirf import DEP_MAX, TIME_RATIO_MIN, simulate
from simulations.bench.perf import median

CLASSES = "0,1,2"


def figures(summary: dict[str, Any]) -> dict[str, Any]:
    """The timings and forgetting of one LIRF run's summary."""
    deposit, retrain = summary["deposit_seconds"], summary["retrain_seconds"]
    return {"deposit_seconds": deposit, "retrain_seconds": retrain,
            "ratio": retrain / deposit, "target_dep_acc": summary["target"]["dep_acc"],
            "retrain_dep_acc": summary["retrain"]["dep_acc"],
            "forgot": summary["target"]["dep_acc"] <= DEP_MAX}


def run(out: Path | None = None, seeds: list[int] | None = None) -> dict[str, Any]:
    seeds = list(seeds or [0])
    runs: dict[int, dict[str, Any]] = {}
    with tempfile.TemporaryDirectory(prefix="bench-lirf-speed-") as tmp:
        for seed in seeds:
            summary = simulate(seed, CLASSES, Path(tmp) / f"s{seed}")
            runs[seed] = summary if "error" in summary else figures(summary)
    done = [r for r in runs.values() if "error" not in r]
    ratio = median(r["ratio"] for r in done) if done else None
    forgot = bool(done) and all(r["forgot"] for r in done)
    return {"bench": "lirf-speed", "seeds": seeds, "deposit_classes": CLASSES, "runs": runs,
            "retrain_over_deposit": ratio, "floor": TIME_RATIO_MIN,
            "pass": len(done) == len(seeds) and forgot and ratio >= TIME_RATIO_MIN}
