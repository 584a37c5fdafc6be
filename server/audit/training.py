"""Did the model learn at all? The report's `training` section and check A18's input.

An audit of a model that diverged, or sits at chance, measures nothing: no attack can
tell members from non-members of a model that learnt nothing, so every empirical ε̂
would be ≈ 0 whatever the privacy (design notes, not shipped: "Positive controls must
converge": a DP scenario's learning rate ran without DP gave accuracy 0.1).
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from server.audit.ledger_checks import UnreadableFileError

CHANCE_MARGIN = 0.02
WARNING = (
    "the model did not train (diverged/at chance): the empirical audits say nothing about privacy"
)
# Class counts of the built-in data sets (methods/common/datasets.py); an image folder's
# count is only known when the config states it.
_BUILTIN_CLASSES = {"mnist5k": 10, "digits": 10, "cifar10": 10, "cifar100": 100}


def read_summary(path: Path) -> dict[str, Any]:
    """summary.json, {} when the run wrote none; an unreadable one is an error."""
    file = path / "summary.json"
    if not file.is_file():
        return {}
    try:
        summary = json.loads(file.read_text())
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise UnreadableFileError(f"{file}: not valid JSON ({exc})") from exc
    if not isinstance(summary, dict):
        raise UnreadableFileError(f"{file}: not a JSON object")
    return summary


def num_classes(config: dict[str, Any]) -> int | None:
    """The class count from the run config: an explicit key, else a built-in data set's."""
    run = config.get("run", {})
    for value in (run.get("data.num-classes"), run.get("num-classes"), config.get("num_classes")):
        if isinstance(value, int) and not isinstance(value, bool) and value > 1:
            return value
    return _BUILTIN_CLASSES.get(str(run.get("data.dataset", "")))


def final_accuracy(metrics: list[dict[str, Any]]) -> float | None:
    """The last accuracy in metrics.jsonl; NaN stays NaN (a diverged model's)."""
    for record in reversed(metrics):
        value = record.get("accuracy")
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
    return None


def training_section(summary: dict[str, Any], config: dict, metrics: list[dict]) -> dict[str, Any]:
    accuracy, classes = final_accuracy(metrics), num_classes(config)
    chance = 1.0 / classes if classes else None
    reasons = []
    if summary.get("diverged") is True:
        reasons.append("summary.json says diverged")
    if accuracy is not None and not math.isfinite(accuracy):
        reasons.append(f"final accuracy {accuracy}")
    elif accuracy is not None and chance is not None and not accuracy > chance + CHANCE_MARGIN:
        reasons.append(
            f"final accuracy {accuracy:.4f} not above chance {chance:.4f} + {CHANCE_MARGIN}"
        )
    return {
        "diverged": summary.get("diverged") is True,
        "final_accuracy": accuracy,
        "num_classes": classes,
        "chance": chance,
        "warning": f"{WARNING} ({'; '.join(reasons)})" if reasons else "",
    }
