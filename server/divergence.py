"""Notice a global model that has stopped learning: divergence, reported, never silent.

A configuration can be valid key by key and still unable to train: the dp-fedavg
scenario with DP switched off keeps DP-SGD's learning rate of 0.5, its model
collapses to a uniform guess (loss ln 10, accuracy 0.1) and stays there for 20 rounds.
The round loop shows each round's evaluation of the global model here. The run has
diverged when
- the loss is not finite; or
- for WINDOW rounds in a row the accuracy sat at chance (within CHANCE_TOLERANCE of
  1/num_classes) while the loss rose every round, or while it stayed at a uniform
  guess's (ln num_classes, less UNIFORM_TOLERANCE) or above and ended no better than
  its best before those rounds.
A model that is only slow to start keeps improving on its best loss and is left alone.
It is reported once: events.log, the console (a "warning" in that round's record) and
`diverged: true` in summary.json.
"""

from __future__ import annotations

import math
from typing import Any

from methods.base import RunSpec

WINDOW = 3  # rounds
CHANCE_TOLERANCE = 0.02
UNIFORM_TOLERANCE = 0.05  # a collapsed model's loss hovers around ln C, a few hundredths below
STATE_KEY = "divergence"  # in the run state (the checkpoint): a resumed run keeps its history


def diverged_because(losses: list[float], accuracies: list[float | None], best_before: float | None,
                     num_classes: int) -> str | None:
    """Why the global model has diverged, else None.

    `losses`: the last WINDOW + 1 losses (oldest first); `accuracies`: the last WINDOW;
    `best_before`: the lowest loss of the rounds before the last WINDOW."""
    if losses and not math.isfinite(losses[-1]):
        return f"the global loss is {losses[-1]}"
    if num_classes < 2 or len(accuracies) < WINDOW or len(losses) < WINDOW:
        return None
    chance = 1.0 / num_classes
    if not all(a is not None and abs(a - chance) <= CHANCE_TOLERANCE for a in accuracies[-WINDOW:]):
        return None
    at_chance = f"accuracy {accuracies[-1]:.3f} sits at chance (1/{num_classes})"
    recent = losses[-(WINDOW + 1):]
    if len(recent) == WINDOW + 1 and all(a < b for a, b in zip(recent, recent[1:])):
        return f"the global loss rose for {WINDOW} rounds in a row to {losses[-1]:.4g} while {at_chance}"
    uniform = math.log(num_classes)
    window = losses[-WINDOW:]
    stuck = all(x >= uniform - UNIFORM_TOLERANCE for x in window)
    if stuck and best_before is not None and window[-1] > best_before:
        return (f"for {WINDOW} rounds the global loss stayed near or above a uniform guess's "
                f"(ln {num_classes} = {uniform:.4g}) and ended at {window[-1]:.4g}, above its "
                f"earlier best ({best_before:.4g}), while {at_chance}")
    return None


class DivergenceWatch:
    """Follows one round loop's evaluations; `observe` returns the warning, once."""

    def __init__(self, state: dict[str, Any], spec: RunSpec, num_classes: int) -> None:
        self.seen = state.setdefault(STATE_KEY, {"losses": [], "accuracies": [], "best_before": None,
                                                 "round": None})
        self.spec, self.num_classes = spec, num_classes

    @property
    def diverged(self) -> bool:
        return self.seen["round"] is not None

    def observe(self, rnd: int, figures: dict[str, Any]) -> str | None:
        loss, accuracy = figures.get("loss"), figures.get("accuracy")
        if self.diverged or not isinstance(loss, (int, float)):
            return None
        seen = self.seen
        if len(seen["losses"]) >= WINDOW:  # the loss leaving the window joins "before"
            leaving = seen["losses"][-WINDOW]
            if math.isfinite(leaving):
                best = seen["best_before"]
                seen["best_before"] = leaving if best is None else min(best, leaving)
        losses = [*seen["losses"], float(loss)][-(WINDOW + 1):]
        seen["accuracies"] = [*seen["accuracies"], accuracy if isinstance(accuracy, (int, float)) else None][-WINDOW:]
        why = diverged_because(losses, seen["accuracies"], seen["best_before"], self.num_classes)
        seen["losses"] = [x if math.isfinite(x) else math.nan for x in losses]  # JSON has no inf
        if why is None:
            return None
        seen["round"] = rnd
        lr = getattr(self.spec.method, "lr", None)
        example = f"{self.spec.section}.lr={lr:g}" if isinstance(lr, float) else "the method's lr"
        return (f"round {rnd}: training diverged: {why}; likely cause: learning rate too high "
                f"for this configuration (e.g. {example})")
