"""The claim figure of one run: its bench's bands, judged on this run's summary alone.

A scenario whose bench judges summaries (`judge(summaries by seed) -> bands`, runs.py)
gets RUN_DIR/plots/claim.png: one panel per band with the figures it compares and its
verdict for this seed. One seed proves no claim (the bench runs several); the picture
shows where this run stands against it. Drawn after the run by the CLI (the bands live
in this layer, above the server that draws the other plots) and by `fedvault plot` and
`fedvault report`; a scenario without such a bench gets none.
"""

from __future__ import annotations

import importlib
import json
import math
import textwrap
from pathlib import Path
from typing import Any

from server.figures import plt, png_bytes
from server.plots import PLOTS_DIR
from server.run_dir import RunDirectory

CLAIM_FILE = "claim.png"
# scenario → its bench's judge (simulations/bench/<bench>.py)
CLAIM_JUDGES = {
    "hscl": "simulations.bench.hscl:judge",
    "ltl": "simulations.bench.ltl:judge",
    "ask-ac": "simulations.bench.askac:judge",
    "attn-div": "simulations.bench.attn_div:judge",
    "avatargen": "simulations.bench.avatargen:judge",
    "style-gnn": "simulations.bench.style_gnn:judge",
    "dynast": "simulations.bench.dynast:judge",
    "pose": "simulations.bench.pose:judge",
    "fedsa": "simulations.bench.fedsa:judge",
    "lirf": "simulations.bench.lirf:judge",
}
VERDICT_COLOUR = {True: "#1a7f37", False: "#c62828"}


def claim_bands(run_dir: Path) -> dict[str, dict[str, Any]] | None:
    """The bench's bands judged on this run's summary (None: no bench, or no summary)."""
    run = RunDirectory.open_existing(run_dir)
    target = CLAIM_JUDGES.get(Path(str(run.config().get("scenario", ""))).stem)
    summary_path = run.path / "summary.json"
    if target is None or not summary_path.is_file():
        return None
    summary = json.loads(summary_path.read_text())
    module, name = target.split(":")
    judge = getattr(importlib.import_module(module), name)
    return judge({int(summary.get("seed", 0)): summary})


def band_numbers(value: Any, prefix: str = "") -> dict[str, float]:
    """A band's per-seed figure as named numbers (a number, or a dict of them, nested once)."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return {prefix or "figure": float(value)} if math.isfinite(value) else {}
    if isinstance(value, dict):
        out: dict[str, float] = {}
        for key, inner in value.items():
            out.update(band_numbers(inner, f"{prefix}.{key}" if prefix else str(key)))
        return out
    return {}


def claim_figure(bands: dict[str, dict[str, Any]], scenario: str) -> Any:
    columns = min(3, len(bands))
    rows = math.ceil(len(bands) / columns)
    fig, axes = plt.subplots(rows, columns, figsize=(4.4 * columns, 3.4 * rows), squeeze=False)
    for ax, (name, band) in zip(axes.flat, bands.items()):
        numbers = {}
        for figure in band.get("per_seed", {}).values():  # one seed: this run's
            numbers = band_numbers(figure)
        colour = VERDICT_COLOUR[bool(band["pass"])]
        ax.bar(range(len(numbers)), list(numbers.values()), color=colour)
        ax.set_xticks(range(len(numbers)), list(numbers), rotation=30, ha="right", fontsize=7)
        verdict = "meets the band" if band["pass"] else "misses the band"
        ax.set_title(f"{name}: {verdict}", fontsize=8, color=VERDICT_COLOUR[bool(band["pass"])])
        ax.set_xlabel(textwrap.fill(str(band.get("rule", "")), 60), fontsize=6)
        ax.tick_params(axis="y", labelsize=7)
        ax.grid(axis="y", alpha=0.3)
    for ax in list(axes.flat)[len(bands):]:
        ax.set_visible(False)
    fig.suptitle(f"{scenario}: the bench's claim on this run (one seed)", fontsize=10)
    fig.tight_layout()
    return fig


def claim_png(run_dir: Path) -> bytes | None:
    """The claim figure as PNG (None: no bench judges this scenario, or the run has not
    finished); raises what reading the summary or judging it raised."""
    bands = claim_bands(run_dir)
    if not bands:
        return None
    scenario = str(RunDirectory.open_existing(run_dir).config().get("scenario", ""))
    try:
        return png_bytes(claim_figure(bands, scenario))
    finally:
        plt.close("all")


def write_claim_figure(run_dir: Path) -> Path | None:
    """RUN_DIR/plots/claim.png, or None; a failure is one line in events.log, never an error."""
    run = RunDirectory(run_dir)
    if not (run.path / "config.json").is_file():  # not a run (nothing was written there)
        return None
    try:
        png = claim_png(run.path)
    except Exception as exc:  # noqa: BLE001 - a run's summary may lack what a band reads
        run.log_event(f"plots: no claim figure ({type(exc).__name__}: {exc})")
        return None
    if png is None:
        return None
    out = run.path / PLOTS_DIR / CLAIM_FILE
    out.parent.mkdir(exist_ok=True)
    out.write_bytes(png)
    return out
