"""`fedvault choose`: pick a setting on a validation split, then measure it once on test.

Issue #24: settings were chosen on test figures. Here every candidate value of one key runs
per seed with `data.validation-fraction` carved off the training data (no node trains on
it) and `data.evaluate-on=validation`, so each round's evaluation and the summary read the
validation split and no test figure exists yet. The value with the best mean of the metric
over the seeds is chosen (ties: the earlier value in the list); a seed on which any value's
run failed, or gave no number, is left out of every value's mean. Only then does the chosen
value run per seed with `data.evaluate-on=test`, the same validation split held out (so the
nodes train on exactly the data of the choosing runs): those are the figures to report.

The metric is a dotted path into summary.json (`snn_accuracy`, `warp_l1.cascade`; a number
indexes a list, `return_askac.greedy.2`), or the difference of two
(`ltl_accuracy_at_epoch.5 - bptt_accuracy_at_epoch.5`) for a claim that compares a method
with its baseline. A path that the first summary to finish lacks stops the study with exit
2 and the summary's keys; the other inputs are checked before the first run starts
(simulations/cli/app.py plan_choice).
Settings that move together (a schedule and its clip) are one study: `--key a,b` with each
candidate's values joined by "/" (`--values constant/0,linear/0.5`).
Cost: (values + 1) × seeds runs of the scenario, one process each, as the claim benches.
"""
from __future__ import annotations

import math
import re
import statistics
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from methods.config import ConfigError
from simulations.bench.runs import runs_root, simulate_scenario

GOALS = ("max", "min")
DEFAULT_FRACTION = 0.1
VALUE_JOIN = "/"  # joins one candidate's values when --key names several keys
_PATH = re.compile(r"[A-Za-z0-9_@.]+")

Runner = Callable[[str, int, Path, Sequence[str]], dict[str, Any]]


@dataclass(frozen=True)
class Metric:
    """A summary figure to choose by: `path`, or `path - minus`."""

    path: str
    minus: str = ""

    @classmethod
    def parse(cls, text: str) -> "Metric":
        parts = [p.strip() for p in text.split(" - ")] if " - " in text else [text.strip()]
        if len(parts) > 2 or not all(_PATH.fullmatch(p) for p in parts):
            raise ConfigError(f"--metric must be a dotted summary path (snn_accuracy, "
                              f"warp_l1.cascade) or 'A - B' of two, got {text!r}")
        return cls(*parts)

    def of(self, summary: Mapping[str, Any]) -> float:
        value = _lookup(summary, self.path)
        return value - _lookup(summary, self.minus) if self.minus else value

    def __str__(self) -> str:
        return f"{self.path} - {self.minus}" if self.minus else self.path


class MissingFigure(ConfigError):
    """The metric names a figure the scenario's summary does not have."""


class NotANumber(MissingFigure):
    """The metric's figure is there but not a finite number (None, NaN, a flag)."""


def _lookup(summary: Mapping[str, Any], path: str) -> float:
    node: Any = summary
    for i, part in enumerate(path.split(".")):
        if isinstance(node, list) and part.isdigit() and int(part) < len(node):
            node = node[int(part)]  # a per-level list: return_askac.greedy.2
            continue
        if not isinstance(node, Mapping) or part not in node:
            where = ".".join(path.split(".")[:i]) or "summary.json"
            keys = (sorted(node) if isinstance(node, Mapping) else
                    [f"0..{len(node) - 1}"] if isinstance(node, list) else [])
            raise MissingFigure(f"--metric {path!r}: {where} has no {part!r}; it has "
                                f"{', '.join(map(str, keys)) or 'no keys'}")
        node = node[part]
    if isinstance(node, bool) or not isinstance(node, (int, float)) or not math.isfinite(node):
        raise NotANumber(f"--metric {path!r} is {node!r}, not a finite number")
    return float(node)


def choose(scores: Mapping[str, Sequence[float]], goal: str) -> str:
    """The value with the best mean score (ties: the earliest); values without a score
    (every run failed) are never chosen."""
    means = {value: statistics.fmean(s) for value, s in scores.items() if s}
    if not means:
        raise ValueError("no run finished: there is nothing to choose by")
    sign = 1 if goal == "max" else -1
    order = list(scores)
    return max(means, key=lambda v: (sign * means[v], -order.index(v)))


def choice_keys(key: str) -> list[str]:
    """The keys `--key` names: one, or several that move together (`a,b`)."""
    return [k.strip() for k in key.split(",")]


def setting_items(key: str, value: str) -> list[str]:
    """The `--set` items of one candidate. Several keys (`--key a,b`) move together: each
    candidate then gives one value per key, joined by "/" (`--values constant/0,linear/0.5`);
    ConfigError when the counts differ."""
    keys = choice_keys(key)
    parts = value.split(VALUE_JOIN) if len(keys) > 1 else [value]
    if len(parts) != len(keys):
        raise ConfigError(f"--values {value!r} gives {len(parts)} value(s) for the {len(keys)} "
                          f"keys of --key {key!r}: join one per key with {VALUE_JOIN!r}")
    return [f"{k}={v.strip()}" for k, v in zip(keys, parts)]


def split_sets(key: str, value: str, fraction: float, on: str, sets: Sequence[str]) -> list[str]:
    """The `--set` items of one run: the user's, the candidate, the split and where to measure."""
    return [*sets, *setting_items(key, value), f"data.validation-fraction={fraction}",
            f"data.evaluate-on={on}"]


def run(scenario: str, key: str, values: Sequence[str], metric: Metric, *, goal: str = "max",
        seeds: Sequence[int] = (0, 1, 2), fraction: float = DEFAULT_FRACTION,
        sets: Sequence[str] = (), out: Path | None = None,
        runner: Runner | None = None) -> dict[str, Any]:
    """Every value × seed on validation, the choice, then the chosen value × seed on test."""
    runner = runner or (lambda sc, seed, run_dir, items: simulate_scenario(sc, seed, run_dir, items))
    root = runs_root(out, f"choose-{scenario}")
    started = time.perf_counter()
    scorer = _Scorer(metric)
    validation: dict[str, dict[int, Any]] = {}
    for i, value in enumerate(values):  # the index keeps two values' run directories apart
        validation[value] = {}
        for seed in seeds:
            summary = _timed(runner, scenario, seed, root / f"val-{i}-{_slug(value)}-s{seed}",
                             split_sets(key, value, fraction, "validation", sets),
                             f"{key}={value} seed {seed} (validation)")
            validation[value][seed] = scorer(summary)
    # every value is compared over the same seeds: those on which each of them has a score
    common = [s for s in seeds if all(isinstance(validation[v][s], float) for v in values)]
    scores = {v: [validation[v][s] for s in common] for v in values}
    chosen = choose(scores, goal) if common else None
    test: dict[int, Any] = {}
    for seed in seeds if chosen is not None else ():
        summary = _timed(runner, scenario, seed,
                         root / f"test-{values.index(chosen)}-{_slug(chosen)}-s{seed}",
                         split_sets(key, chosen, fraction, "test", sets),
                         f"{key}={chosen} seed {seed} (test, the chosen value)")
        score = scorer(summary)
        test[seed] = {"metric": score, "summary": summary} if isinstance(score, float) else score
    failed = sum(not isinstance(s, float) for per in validation.values() for s in per.values())
    failed += sum("error" in t for t in test.values())
    return {
        "study": "choose", "scenario": scenario, "key": key, "values": list(values),
        "metric": str(metric), "goal": goal, "seeds": list(seeds), "validation_fraction": fraction,
        "sets": list(sets), "validation": {v: {str(s): x for s, x in per.items()}
                                           for v, per in validation.items()},
        "compared_on_seeds": common,
        "validation_mean": {v: statistics.fmean(s) if s else None for v, s in scores.items()},
        "chosen": chosen, "test": {str(s): t for s, t in test.items()},
        "test_mean": _mean_metric(test), "failed_runs": failed, "run_dirs": str(root),
        "wall_seconds": time.perf_counter() - started,
        "pass": failed == 0 and chosen is not None,
    }


class _Scorer:
    """A run's metric, or {"error": why}. A path missing from the first summary that
    finished is bad input (MissingFigure, exit 2); after that, and for a figure that is
    there but not a number (None, NaN), only that run is marked."""

    def __init__(self, metric: Metric) -> None:
        self.metric, self.checked = metric, False

    def __call__(self, summary: dict[str, Any]) -> Any:
        if "error" in summary:
            return {"error": summary["error"]}
        try:
            value = self.metric.of(summary)
        except NotANumber as exc:
            value = {"error": str(exc)}
        except MissingFigure as exc:
            if not self.checked:
                raise
            value = {"error": str(exc)}
        self.checked = True
        return value


def _timed(runner: Runner, scenario: str, seed: int, run_dir: Path, items: Sequence[str],
           label: str) -> dict[str, Any]:
    t0 = time.perf_counter()
    summary = runner(scenario, seed, run_dir, items)
    status = summary.get("error", "ok")[-300:]
    print(f"[choose {scenario}] {label}: {status} ({time.perf_counter() - t0:.0f} s)",
          file=sys.stderr, flush=True)
    return summary


def _mean_metric(test: Mapping[int, Any]) -> float | None:
    values = [t["metric"] for t in test.values() if "metric" in t]
    return statistics.fmean(values) if values else None


def _slug(value: str) -> str:
    return re.sub(r"[^A-Za-z0-9.]+", "_", value)
