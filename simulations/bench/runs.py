"""Shared plumbing of the paper-claim benchmarks: real simulated runs, bands, verdicts.

A claim benchmark runs `fedvault simulate SCENARIO` once per seed, each in its own
process (Flower's Simulation Engine, exactly what a user runs), and judges the
summaries against the claim's bands. A band is PASS/FAIL over all seeds; the
bench's `pass` is the conjunction of its bands and no failed run. An informational
band (a figure the design notes ask about that is not one of the bench's bands) is judged and
printed like the others but does not decide `pass`.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Callable, Iterable

REPO = Path(__file__).resolve().parents[2]

Judge = Callable[[dict[int, dict[str, Any]]], dict[str, dict[str, Any]]]


def simulate_scenario(scenario: str, seed: int, run_dir: Path, sets: Iterable[str] = (),
                      timeout: float = 3600) -> dict[str, Any]:
    """One `fedvault simulate` run in a subprocess; its summary, or {"error": ...}."""
    args = [arg for item in sets for arg in ("--set", item)]
    cmd = [sys.executable, "-m", "simulations.cli", "simulate", scenario, "--out", str(run_dir),
           "--seed", str(seed), *args]
    env = {**os.environ, "FLWR_TELEMETRY_ENABLED": "0", "FLWR_DISABLE_UPDATE_CHECK": "1",
           "RAY_USAGE_STATS_ENABLED": "0", "PYTHONPATH": str(REPO)}
    proc = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=timeout)
    summary_path = run_dir / "summary.json"
    if proc.returncode != 0 or not summary_path.is_file():
        return {"error": f"exit {proc.returncode}: {(proc.stdout + proc.stderr)[-1500:]}"}
    return json.loads(summary_path.read_text())


def band(rule: str, per_seed: dict[int, Any], passed: bool, *,
         informational: bool = False) -> dict[str, Any]:
    verdict = {"rule": rule, "per_seed": per_seed, "pass": bool(passed)}
    return {**verdict, "informational": True} if informational else verdict


def mean_std(values: list[float]) -> dict[str, float]:
    return {"mean": statistics.fmean(values),
            "std": statistics.stdev(values) if len(values) > 1 else 0.0}


def runs_root(out: Path | None, name: str) -> Path:
    """Where the bench's run directories go: beside --out, else a temp dir."""
    return out.parent / f"{out.stem}-runs" if out else Path(tempfile.mkdtemp(prefix=f"{name}-bench-"))


def scenario_bench(scenario: str, seeds: list[int], judge: Judge, *, out: Path | None = None,
                   sets: Iterable[str] = ()) -> dict[str, Any]:
    """Run the scenario per seed, then judge: {"summaries", "bands", "failed_runs", "pass", ...}."""
    root = runs_root(out, scenario)
    started = time.perf_counter()
    summaries: dict[int, dict[str, Any]] = {}
    for seed in seeds:
        t0 = time.perf_counter()
        summaries[seed] = simulate_scenario(scenario, seed, root / f"{scenario}-s{seed}", sets)
        status = summaries[seed].get("error", "ok")[-300:]
        print(f"[bench {scenario}] seed {seed}: {status} ({time.perf_counter() - t0:.0f} s)",
              file=sys.stderr, flush=True)
    ok = {s: r for s, r in summaries.items() if "error" not in r}
    failed = sorted(set(summaries) - set(ok))
    bands = judge(ok) if ok else {}
    for name, b in bands.items():
        label = ("PASS" if b["pass"] else "FAIL") + (" (informational)" if b.get("informational") else "")
        print(f"[bench {scenario}] {name}: {label}  {b['rule']}  "
              f"{json.dumps(b['per_seed'])}", file=sys.stderr, flush=True)
    return {"scenario": scenario, "seeds": seeds, "summaries": summaries, "bands": bands,
            "failed_runs": failed, "run_dirs": str(root), "wall_seconds": time.perf_counter() - started,
            "pass": bool(bands) and not failed and all(b["pass"] for b in bands.values()
                                                       if not b.get("informational"))}
