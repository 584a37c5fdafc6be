"""The two lines the long-lived ClientApp worker (clientapp_worker.py) writes to its node's
log for every task, the timings in them, and how they are read back: by faults.py (kill
a node while it handles its n-th message), `fedvault bench deploy` (per-message figures)
and the tests (which process served which message). Standard library only: readers
need no Flower."""

from __future__ import annotations

import re
import time
from dataclasses import dataclass, field
from datetime import datetime

TASK_STARTED = ("fedvault-worker[{pid}]: task {task_id} started (message {n} of this process, "
                "run {run_id})")
TASK_FINISHED = ("fedvault-worker[{pid}]: task {task_id} finished {status} (message {n} of this "
                 "process, run {run_id}, {type}): delivery {delivery:.3f} s, wait {wait:.3f} s, "
                 "input {input:.3f} s, load {load:.3f} s, app {app:.3f} s, reply {reply:.3f} s, "
                 "output {output:.3f} s")


@dataclass
class Timings:
    """Seconds spent on one task (TASK_FINISHED), measured with time.time() where they
    meet Flower's own timestamps: the server's Message.created_at (delivery: the Fleet
    API and the SuperNode's idle 3 s polls) and the SuperNode's Task.pending_at (wait:
    this worker's AcquireTask polls)."""

    acquired: float = field(default_factory=time.time)
    pending_at: float | None = None
    created_at: float | None = None
    marks: dict[str, float] = field(default_factory=dict)
    message_type: str = "?"

    def mark(self, name: str, since: float) -> float:
        now = time.time()
        self.marks[name] = now - since
        return now

    def figures(self) -> dict[str, float]:
        delivery = (self.pending_at - self.created_at
                    if self.pending_at and self.created_at else float("nan"))
        wait = self.acquired - self.pending_at if self.pending_at else float("nan")
        named = {k: self.marks.get(k, 0.0) for k in ("input", "load", "app", "reply", "output")}
        return {"delivery": delivery, "wait": wait, **named}


def iso_seconds(text: str) -> float | None:
    try:
        return datetime.fromisoformat(text).timestamp() if text else None
    except ValueError:
        return None


# ---- reading them back --------------------------------------------------------------

_STARTED = re.compile(r"fedvault-worker\[(?P<pid>\d+)\]: task (?P<task_id>\d+) started "
                      r"\(message (?P<n>\d+) of this process, run (?P<run_id>\d+)\)")
_FINISHED = re.compile(r"fedvault-worker\[(?P<pid>\d+)\]: task (?P<task_id>\d+) finished "
                       r"(?P<status>\w+) \(message (?P<n>\d+) of this process, run "
                       r"(?P<run_id>\d+), (?P<type>[^)]*)\): (?P<figures>.*)")
_FIGURE = re.compile(r"(\w+) (-?[\d.]+|nan) s")


@dataclass
class TaskRecord:
    """One task as the worker logged it."""

    pid: int
    task_id: int
    n: int  # the n-th message of its process
    run_id: int
    status: str | None = None  # None while it runs
    type: str | None = None
    figures: dict[str, float] = field(default_factory=dict)


def parse_task_lines(text: str) -> list[TaskRecord]:
    """The tasks in a node's log, in the order they started."""
    tasks: dict[tuple[int, int], TaskRecord] = {}
    for line in text.splitlines():
        if m := _STARTED.search(line):
            key = (int(m["pid"]), int(m["task_id"]))
            tasks[key] = TaskRecord(key[0], key[1], int(m["n"]), int(m["run_id"]))
        elif (m := _FINISHED.search(line)) and (key := (int(m["pid"]), int(m["task_id"]))) in tasks:
            record = tasks[key]
            record.status, record.type = m["status"], m["type"]
            record.figures = {k: float(v) for k, v in _FIGURE.findall(m["figures"])}
    return list(tasks.values())


