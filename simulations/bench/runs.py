"""Shared plumbing of the paper-claim benchmarks: real simulated runs, bands, verdicts.

A claim benchmark runs `fedvault simulate SCENARIO` once per seed, each in its own
process (Flower's Simulation Engine, exactly what a user runs), and judges the
summaries against the claim's bands. Every band is judged per seed too and reports
"k of n seeds" (`k_of_n`, `passed_seeds`, `seeds`, `seed_pass`) beside the mean of its
per-seed figures; a seed whose run failed counts as not passed. A band's own verdict is
"every seed" unless its bench's docstring states the claim otherwise (on the mean over
seeds, or on k of n); the bench's `pass` is the conjunction of its bands and no failed run.
An informational band (a figure the design notes ask about that is not one of the bench's
bands) is judged and printed like the others but does not decide `pass`. Benches that do not
go through `scenario_bench` (lirf, lirf-speed, dp-audit) report the same fields with
`band` and `tally`.
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
from typing import Any, Callable, Iterable, Mapping

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
    try:
        proc = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True,
                              timeout=timeout)
    except subprocess.TimeoutExpired:  # one run's failure, not the whole bench's
        return {"error": f"timed out after {timeout:.0f} s"}
    summary_path = run_dir / "summary.json"
    if proc.returncode != 0 or not summary_path.is_file():
        return {"error": f"exit {proc.returncode}: {(proc.stdout + proc.stderr)[-1500:]}"}
    return json.loads(summary_path.read_text())


def tally(passes: Mapping[Any, bool], unit: str = "seeds") -> dict[str, Any]:
    """How many of the seeds (or runs) passed:
    {"k_of_n": "2 of 3", "passed_seeds": 2, "seeds": 3}."""
    k, n = sum(bool(p) for p in passes.values()), len(passes)
    return {"k_of_n": f"{k} of {n}", f"passed_{unit}": k, unit: n}


def band(rule: str, per_seed: dict[Any, Any], passed: bool | None = None, *,
         seed_ok: Callable[[Any], bool] | None = None,
         informational: bool = False) -> dict[str, Any]:
    """One band's verdict. `seed_ok` judges one seed's figure (giving `seed_pass` and
    "k of n seeds"); `passed` is the band's verdict where the claim is not "every seed"
    (on the mean, on k of n), by default every seed must pass. Without `seed_ok` (a
    caller that judges only the whole) there is no per-seed verdict."""
    verdict: dict[str, Any] = {"rule": rule, "per_seed": per_seed,
                               "mean": mean_figure(per_seed.values())}
    if seed_ok is not None:
        seed_pass = {seed: bool(seed_ok(value)) for seed, value in per_seed.items()}
        verdict.update(seed_pass=seed_pass, **tally(seed_pass))
        if passed is None:
            passed = bool(seed_pass) and all(seed_pass.values())
    if passed is None:
        raise ValueError(f"band {rule!r}: give `passed`, `seed_ok` or both")
    verdict["pass"] = bool(passed)
    return {**verdict, "informational": True} if informational else verdict


def count_failed_seeds(verdict: dict[str, Any], failed: Iterable[Any]) -> dict[str, Any]:
    """The band with each failed run's seed counted as not passed: 3 seeds asked, one run
    crashed, two passed is "2 of 3", not "2 of 2"."""
    if "seed_pass" not in verdict:
        return verdict
    seed_pass = {**verdict["seed_pass"], **{seed: False for seed in failed}}
    return {**verdict, "seed_pass": seed_pass, **tally(seed_pass)}


def mean_figure(values: Iterable[Any]) -> Any:
    """The mean of per-seed figures: numbers, or dicts / lists of them (key by key,
    position by position); None where they are not all numbers (a missing figure, a flag)."""
    values = list(values)
    if values and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values):
        return statistics.fmean(values)
    if (values and all(isinstance(v, dict) for v in values)
            and len({frozenset(v) for v in values}) == 1):
        means = {key: mean_figure([v[key] for v in values]) for key in values[0]}
        return {key: m for key, m in means.items() if m is not None} or None
    if values and all(isinstance(v, list) for v in values) and len({len(v) for v in values}) == 1:
        means = [mean_figure(column) for column in zip(*values)]
        return None if None in means else means
    return None


def band_line(prefix: str, name: str, verdict: dict[str, Any]) -> str:
    """The printed row of one band: verdict, k of n seeds, mean, rule, per-seed figures."""
    label = ("PASS" if verdict["pass"] else "FAIL") + (
        " (informational)" if verdict.get("informational") else "")
    count = f"  {verdict['k_of_n']} seeds" if "k_of_n" in verdict else ""
    mean = verdict.get("mean")
    shown = "" if mean is None else f"  mean {json.dumps(_rounded(mean))}"
    return (f"[{prefix}] {name}: {label}{count}{shown}  {verdict['rule']}  "
            f"{json.dumps(_rounded(verdict['per_seed']), default=str)}")


def _rounded(value: Any) -> Any:
    if isinstance(value, float):
        return round(value, 4)
    if isinstance(value, dict):
        return {key: _rounded(v) for key, v in value.items()}
    if isinstance(value, list):
        return [_rounded(v) for v in value]
    return value


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
    bands = {name: count_failed_seeds(b, failed) for name, b in (judge(ok) if ok else {}).items()}
    for name, b in bands.items():
        print(band_line(f"bench {scenario}", name, b), file=sys.stderr, flush=True)
    return {"scenario": scenario, "seeds": seeds, "summaries": summaries, "bands": bands,
            "failed_runs": failed, "run_dirs": str(root), "wall_seconds": time.perf_counter() - started,
            "pass": bool(bands) and not failed and all(b["pass"] for b in bands.values()
                                                       if not b.get("informational"))}
