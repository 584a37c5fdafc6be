"""Measurement helpers shared by the performance benches (docs/performance.md).

The machines are shared and noisy, so every figure is a ratio of medians taken
side by side in one run, with CPU-seconds beside wall time (a loaded machine stretches
wall time, not the work done); memory and CPU time are read from /proc (psutil is not a
dependency) and summed over a process and all its descendants (Ray's raylet, GCS and
workers, Flower's SuperLink, SuperNodes and app processes).
"""

from __future__ import annotations

import itertools
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

PAGE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096


def median(values: Iterable[float]) -> float:
    values = [float(v) for v in values]
    if not values:
        raise ValueError("median of no measurements")
    return statistics.median(values)


def ratio_check(numerator: Sequence[float], denominator: Sequence[float], target: float) -> dict[str, Any]:
    """median(numerator) / median(denominator), with `pass` = ratio <= target."""
    num, den = median(numerator), median(denominator)
    value = num / den if den > 0 else float("inf")
    return {"numerator": num, "denominator": den, "ratio": value, "target": target,
            "pass": bool(value <= target)}


def steady_state(seconds_per_round: Sequence[float], warmup: int = 1) -> float:
    """Median round time after the first `warmup` rounds (the engine's cold start)."""
    tail = list(seconds_per_round)[warmup:]
    return median(tail or seconds_per_round)


def flatness(values: Sequence[float], after: int = 2, tolerance: float = 0.10) -> dict[str, Any]:
    """Is every value after round `after` within ±tolerance of their median?"""
    tail = [float(v) for v in list(values)[after:]]
    if not tail:
        return {"max_deviation": None, "tolerance": tolerance, "pass": False}
    mid = median(tail)
    worst = max(abs(v - mid) / mid for v in tail) if mid > 0 else float("inf")
    return {"max_deviation": worst, "tolerance": tolerance, "pass": bool(worst <= tolerance)}


# --- memory and CPU time of a process tree, from /proc ------------------------------------

CLOCK_TICKS = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def _read_stat(pid: int, proc: Path) -> tuple[int, int, float] | None:
    """(ppid, resident bytes, CPU seconds) of one process: its own user + system time and
    that of its children it has reaped (a SuperNode's finished ClientApp processes)."""
    try:
        fields = (proc / str(pid) / "stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):  # the process exited while we looked
        return None
    # After "pid (comm)", field k of proc(5) is at index k - 3: ppid 4, utime 14, stime 15,
    # cutime 16, cstime 17, rss (pages) 24.
    ticks = sum(int(fields[i]) for i in (11, 12, 13, 14))
    return int(fields[1]), int(fields[21]) * PAGE, ticks / CLOCK_TICKS


def _tree(root: int | None, proc: Path) -> list[tuple[int, int, float]]:
    """The stat rows of `root` (default: this process) and all its descendants."""
    root = os.getpid() if root is None else root
    table: dict[int, tuple[int, int, float]] = {}
    for entry in proc.iterdir():
        if entry.name.isdigit() and (row := _read_stat(int(entry.name), proc)):
            table[int(entry.name)] = row
    children: dict[int, list[int]] = {}
    for pid, row in table.items():
        children.setdefault(row[0], []).append(pid)
    rows, stack = [], [root]
    while stack:
        pid = stack.pop()
        if pid in table:
            rows.append(table[pid])
        stack.extend(children.get(pid, []))
    return rows


def tree_rss(root: int | None = None, proc: Path = Path("/proc")) -> dict[str, int]:
    """Resident bytes of `root` (default: this process) and of all its descendants."""
    rows = _tree(root, proc)
    return {"rss_bytes": sum(row[1] for row in rows), "processes": len(rows)}


def tree_cpu_seconds(root: int | None = None, proc: Path = Path("/proc")) -> float:
    """CPU seconds (user + system) spent so far by `root` (default: this process) and its
    descendants, those still running and those they reaped. A process that exits without
    being reaped inside the tree is lost from the count (none of Ray's or Flower's do while
    a bench measures)."""
    return sum(row[2] for row in _tree(root, proc))


def per_round(start: float, ends: Sequence[float]) -> list[float]:
    """Per-round amounts from a running total sampled at the start and each round's end."""
    edges = [start, *ends]
    return [b - a for a, b in itertools.pairwise(edges)]


class PeakRss:
    """Samples `tree_rss` in a background thread; `peak` is the largest total seen."""

    def __init__(self, root: int | None = None, interval: float = 0.25) -> None:
        self.root, self.interval = root, interval
        self.peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def _loop(self) -> None:
        while not self._stop.is_set():
            self.sample()
            self._stop.wait(self.interval)

    def sample(self) -> int:
        now = tree_rss(self.root)["rss_bytes"]
        self.peak = max(self.peak, now)
        return now

    def __enter__(self) -> PeakRss:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.sample()


# --- one measurement per fresh interpreter ------------------------------------------------

REPO = Path(__file__).resolve().parents[2]


def child_env() -> dict[str, str]:
    """Offline and quiet; Ray's socket paths need a short temp dir (< 107 bytes)."""
    env = dict(os.environ)
    env.update(FLWR_TELEMETRY_ENABLED="0", FLWR_DISABLE_UPDATE_CHECK="1",
               RAY_USAGE_STATS_ENABLED="0", PYTHONPATH=str(REPO),
               RAY_TMPDIR=tempfile.mkdtemp(prefix="fvperf-", dir="/tmp"))
    env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])
    return env


def run_child(module: str, *args: str, timeout: float = 900) -> dict[str, Any]:
    """`python -m module ARGS OUT.json` in a fresh process (a Ray engine per run, no
    leftovers from the previous one in memory); returns the JSON it wrote."""
    with tempfile.TemporaryDirectory(prefix="fvperf-") as tmp:
        out = Path(tmp) / "result.json"
        proc = subprocess.run([sys.executable, "-m", module, *args, str(out)], cwd=REPO,
                              env=child_env(), capture_output=True, text=True,
                              timeout=timeout, check=False)
        if proc.returncode != 0 or not out.is_file():
            raise RuntimeError(f"{module} {' '.join(args)} exited {proc.returncode}:\n"
                               f"{(proc.stdout + proc.stderr)[-3000:]}")
        return json.loads(out.read_text())


def round_seconds(started: float, ends: Sequence[float]) -> list[float]:
    """Durations of consecutive rounds from their end times (the first from `started`)."""
    return per_round(started, ends)
