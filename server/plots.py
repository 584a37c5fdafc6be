"""A run's curves as PNG files in RUN_DIR/plots/, drawn from the run directory's own files.

accuracy.png and loss.png (per round; one line per stage or phase), epsilon.png (DP runs:
each node's ε per round from ledger.jsonl, with the budget) and stages.png (multi-stage
methods: each stage's curves side by side). Everything is read back from metrics.jsonl,
ledger.jsonl and config.json, so the end of a run, a resumed run, `fedvault plot` and
`fedvault report` all draw the same pictures. Plotting never fails a run: `plot_run`
logs what went wrong in events.log and the run ends as it would have.
"""

from __future__ import annotations

import json
import math
from collections import defaultdict
from pathlib import Path
from typing import Any, Iterable

from matplotlib.ticker import MaxNLocator

from server.figures import plt, png_bytes
from server.ledger import LEDGER_FILE, read_ledger
from server.run_dir import RunDirectory

PLOTS_DIR = "plots"
# Record fields that count things or time, not how well the model does.
BOOKKEEPING = frozenset({"round", "seconds", "examples", "replies", "sampled", "last_round", "lr"})
PREFERRED = ("accuracy", "auroc", "loss", "train_loss")
MAX_CURVES_PER_STAGE = 3
LABELS = {"loss": "evaluation loss", "train_loss": "training loss (nodes' mean)"}
STAGE_COLUMNS = 4


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def series(records: Iterable[dict[str, Any]], key: str) -> dict[str, tuple[list, list]]:
    """(rounds, values) of `key` per stage (or per phase where a run has no stages)."""
    out: dict[str, tuple[list, list]] = defaultdict(lambda: ([], []))
    for record in records:
        if _is_number(record.get(key)):
            group = str(record.get("stage") or record.get("phase") or "train")
            out[group][0].append(record["round"])
            out[group][1].append(float(record[key]))
    return dict(out)


def rounds_axis(ax) -> None:
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))  # rounds are whole numbers
    ax.grid(alpha=0.3)


def _curve_figure(records: list[dict[str, Any]], keys: tuple[str, ...], ylabel: str) -> Any:
    """One line per (key, stage or phase); None when no record has any of `keys`."""
    lines = [(key, group, xs, ys) for key in keys
             for group, (xs, ys) in series(records, key).items()]
    if not lines:
        return None
    fig, ax = plt.subplots(figsize=(7, 3.8))
    groups = {group for _, group, _, _ in lines}
    for key, group, xs, ys in lines:
        label = " ".join(part for part in (LABELS.get(key, key) if len(keys) > 1 else "",
                                           group if len(groups) > 1 else "") if part)
        ax.plot(xs, ys, marker="o" if len(xs) < 40 else None, ms=3, label=label or key)
    ax.set(xlabel="round", ylabel=ylabel, title=f"{ylabel} per round")
    rounds_axis(ax)
    if len(lines) > 1:
        ax.legend(fontsize=7, ncol=2 if len(lines) > 8 else 1)
    return fig


def _epsilon_figure(lines: list[dict[str, Any]], budget: float | None) -> Any:
    accounted = [line for line in lines
                 if not line.get("unaccounted") and _is_number(line.get("epsilon"))]
    if not accounted:
        return None
    fig, ax = plt.subplots(figsize=(7, 3.8))
    by_node: dict[str, list[tuple[int, float]]] = defaultdict(list)
    for line in accounted:
        by_node[str(line["node"])].append((int(line["round"]), float(line["epsilon"])))
    for node, points in sorted(by_node.items()):
        points.sort()
        ax.plot(*zip(*points), marker="o", ms=3, label=node)
    if budget:
        ax.axhline(budget, color="k", lw=1, ls=":", label=f"budget ε={budget:g}")
    ax.set(xlabel="round", ylabel="ε (node's accountant)", title="privacy spent per node")
    rounds_axis(ax)
    ax.legend(fontsize=7, ncol=2 if len(by_node) > 8 else 1)
    return fig


def stage_curve_keys(records: list[dict[str, Any]]) -> list[str]:
    """The figures worth a curve in one stage: the preferred ones, then any other number
    that changes over the stage (a constant is a setting, not a result)."""
    values: dict[str, list[float]] = defaultdict(list)
    for record in records:
        for key, value in record.items():
            if key not in BOOKKEEPING and _is_number(value):
                values[key].append(float(value))
    ordered = [k for k in PREFERRED if k in values] + sorted(
        k for k, v in values.items() if k not in PREFERRED and len(set(v)) > 1)
    return ordered[:MAX_CURVES_PER_STAGE]


def _stages_figure(records: list[dict[str, Any]]) -> Any:
    stages: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for record in records:
        if record.get("stage"):
            stages[str(record["stage"])].append(record)
    if len(stages) < 2:
        return None
    columns = min(STAGE_COLUMNS, len(stages))
    rows = math.ceil(len(stages) / columns)
    fig, axes = plt.subplots(rows, columns, figsize=(3.6 * columns, 2.9 * rows), squeeze=False)
    for ax, (name, stage_records) in zip(axes.flat, stages.items()):
        for key in stage_curve_keys(stage_records):
            (xs, ys), = series(stage_records, key).values()
            ax.plot(xs, ys, marker="o" if len(xs) < 30 else None, ms=3, label=key)
        ax.set_title(name, fontsize=9)
        ax.set_xlabel("round", fontsize=8)
        ax.tick_params(labelsize=7)
        rounds_axis(ax)
        ax.legend(fontsize=6)
    for ax in list(axes.flat)[len(stages):]:
        ax.set_visible(False)
    fig.suptitle("stages side by side", fontsize=10)
    fig.tight_layout()
    return fig


def metrics_records(run: RunDirectory) -> list[dict[str, Any]]:
    """metrics.jsonl's records with a round; a line a crash cut short is skipped (a resume
    drops it: server/run_dir.py), so a failed run still has its curves so far."""
    path = run.path / "metrics.jsonl"
    records = []
    for line in (path.read_text().splitlines() if path.is_file() else []):
        try:
            record = json.loads(line)
        except ValueError:
            continue
        if isinstance(record, dict) and _is_number(record.get("round")):
            records.append(record)
    return records


def dp_budget(config: dict[str, Any]) -> float | None:
    """The per-node ε budget of a DP run's config.json (None: not a DP run)."""
    run = config.get("run") if isinstance(config.get("run"), dict) else {}
    if not run.get("dp.enabled"):
        return None
    return float(run.get("dp.max-epsilon") or 0.0) or float(run.get("dp.target-epsilon") or 0.0)


def run_figures(run_dir: str | Path) -> dict[str, Any]:
    """The run's figures by file name (matplotlib figures, not yet drawn to PNG)."""
    run = RunDirectory.open_existing(run_dir)
    records = metrics_records(run)
    budget = dp_budget(run.config())
    figures = {
        "accuracy.png": _curve_figure(records, ("accuracy",), "accuracy"),
        "loss.png": _curve_figure(records, ("loss", "train_loss"), "loss"),
        "epsilon.png": _epsilon_figure(read_ledger(run.path / LEDGER_FILE), budget)
        if budget is not None else None,
        "stages.png": _stages_figure(records),
    }
    return {name: fig for name, fig in figures.items() if fig is not None}


def write_plots(run_dir: str | Path) -> dict[str, bytes]:
    """Draw the run's plots into RUN_DIR/plots/; returns {file name: PNG bytes}."""
    out = Path(run_dir) / PLOTS_DIR
    pngs = {name: png_bytes(fig) for name, fig in run_figures(run_dir).items()}
    if pngs:
        out.mkdir(exist_ok=True)
    for name, png in pngs.items():
        (out / name).write_bytes(png)
    return pngs


def plot_run(run: RunDirectory) -> dict[str, bytes]:
    """`write_plots`, but a plotting error is one line in events.log, never a failed run."""
    try:
        return write_plots(run.path)
    except Exception as exc:  # noqa: BLE001 - a missing picture must not cost a finished run
        plt.close("all")
        run.log_event(f"plots: not written ({type(exc).__name__}: {exc})")
        return {}
