"""The console as a reader of the run's metrics stream: one line per round, and a live bar.

Every record prints as one line (simulations/simulate.py `round_line`, never wrapped), so a
CI log or `fedvault simulate | cat` keeps one line per round. On a terminal a rich progress
bar with the elapsed time and an ETA stays below the lines. `fedvault simulate` hands this
sink to the run (server/runner.py Job.sinks); `fedvault deploy`, whose ServerApp is another
process, feeds it the records it reads back from metrics.jsonl.
"""

from __future__ import annotations

from typing import Any, Mapping

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

from methods.base import RunSpec
from methods.registry import get_method
from simulations.simulate import round_line


def round_plan(spec: RunSpec) -> tuple[int, dict[str, int]]:
    """(rounds in the whole run, each stage's last round): stages number their rounds on
    from the previous stage's last (server/stages.py)."""
    method = get_method(spec.method_name)
    if method.workflow != "stages":
        return spec.federation.num_server_rounds, {}
    last, ends = 0, {}
    for stage in method.stages(spec):
        last += stage.rounds or spec.federation.num_server_rounds
        ends[stage.name] = last
    return last, ends


class RoundConsole:
    """A MetricsSink printing each record; use it as a context manager around the run."""

    def __init__(self, console: Console, spec: RunSpec) -> None:
        self.console = console
        self.total, self.stage_ends = round_plan(spec)
        self.rounds = spec.federation.num_server_rounds  # what round_line counts a round of
        self.bar: Progress | None = None
        self.task = None
        self.first = True

    def __enter__(self) -> "RoundConsole":
        if self.console.is_terminal:  # a log file gets the lines only
            self.bar = Progress(TextColumn("{task.description}"), BarColumn(),
                                MofNCompleteColumn(), TextColumn("rounds"), TimeElapsedColumn(),
                                TextColumn("ETA"), TimeRemainingColumn(), console=self.console,
                                transient=True)
            self.task = self.bar.add_task("starting", total=self.total)
            self.bar.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self.bar is not None:
            self.bar.stop()
            self.bar = None

    def write(self, record: Mapping[str, Any]) -> None:
        record = dict(record)
        if record.get("stage") in self.stage_ends:
            record.setdefault("last_round", self.stage_ends[record["stage"]])
        self.console.print(round_line(record, self.rounds), soft_wrap=True)
        if self.bar is not None and isinstance(record.get("round"), int):
            self._advance(record)

    def _advance(self, record: dict[str, Any]) -> None:
        done = record["round"]
        total = max(self.total, done)
        if self.first:  # a resumed run starts part-way: the ETA counts only rounds run now
            self.bar.reset(self.task, total=total, completed=max(done - 1, 0))
            self.first = False
        label = record.get("stage") or record.get("phase") or "round"
        self.bar.update(self.task, total=total, completed=done, description=str(label))

    def close(self) -> None:
        """Nothing to release: the bar stops when the CLI leaves the context."""
