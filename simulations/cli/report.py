"""`fedvault report RUN_DIR [RUN_DIR ...] --out FILE.html`: runs side by side, one HTML page.

The page holds what differs between the runs' configurations, their accuracy and loss
curves on shared axes, each run's own plots (server/plots.py, redrawn from its files, and
its bench's claim figure), the summaries side by side, each run's events, and the privacy
audit's verdict with a link to its report.html where `fedvault audit` wrote one. Like the
audit report it is self-contained: PNGs inline (server/figures.py), no script, no URL but
the relative links to the audit reports, every text escaped.
"""

from __future__ import annotations

import html
import json
import os
from pathlib import Path
from typing import Any

from server.figures import embedded_figure, plt, png_bytes
from server.plots import PLOTS_DIR, metrics_records, rounds_axis, run_figures, series, write_plots
from server.run_dir import RunDirectory, RunDirError
from simulations.bench.claim_figure import CLAIM_FILE, claim_png, write_claim_figure

MAX_EVENTS = 40  # per run: the last ones (events.log keeps them all)
STYLE = (
    "body{font-family:sans-serif;max-width:1200px;margin:2em auto;color:#222}"
    "table{border-collapse:collapse;margin:.5em 0}td,th{border:1px solid #ccc;padding:3px 7px;"
    "font-size:13px;text-align:left;vertical-align:top}"
    "img.figure{max-width:100%;border:1px solid #ddd}"
    "figure{display:inline-block;margin:.4em;max-width:48%}pre{font-size:12px;background:#f6f6f6;"
    "padding:.5em;white-space:pre-wrap}.badge{color:#fff;padding:1px 8px;border-radius:4px}"
    ".pass{background:#1a7f37}.fail{background:#c62828}.warn{background:#b26b00}"
    ".na{background:#666}"
)
VERDICT_CLASS = {"PASS": "pass", "FAIL": "fail", "WARN": "warn"}


class ReportInputError(ValueError):
    """A RUN_DIR that is not a run directory, or an --out that cannot be written (exit 2)."""


class Run:
    """One run directory as the report reads it."""

    def __init__(self, path: Path, label: str) -> None:
        self.dir = RunDirectory.open_existing(path)
        self.path, self.label = self.dir.path, label
        self.config = self.dir.config()
        self.records = metrics_records(self.dir)
        summary = self.path / "summary.json"
        self.summary: dict[str, Any] = json.loads(summary.read_text()) if summary.is_file() else {}

    def flat_config(self) -> dict[str, Any]:
        run = self.config.get("run") if isinstance(self.config.get("run"), dict) else {}
        return {"scenario": self.config.get("scenario", ""), **run}


def open_runs(run_dirs: list[Path], out: Path) -> list[Run]:
    """The runs, refused (ReportInputError, one line) before anything is written."""
    if out.suffix.lower() not in (".html", ".htm"):
        raise ReportInputError(f"--out {out}: the report is one HTML file; name it FILE.html")
    if out.is_dir():
        raise ReportInputError(f"--out {out} is a directory; name the report file, "
                               f"e.g. {out}/report.html")
    runs = []
    for path in run_dirs:
        try:
            run = RunDirectory.open_existing(path)
            run.config()
        except RunDirError as exc:
            raise ReportInputError(f"{exc} (a run directory holds config.json and metrics.jsonl, "
                                   "as fedvault simulate --out writes it)") from exc
        names = [p.name for p in run_dirs]
        label = path.name if names.count(path.name) == 1 else str(path)
        runs.append(Run(path, label))
    return runs


# --- sections ---------------------------------------------------------------------------
def _table(header: list[str], rows: list[list[Any]]) -> str:
    head = "".join(f"<th>{html.escape(str(h))}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(_text(c))}</td>" for c in row) + "</tr>"
                   for row in rows)
    return f"<table><tr>{head}</tr>{body}</table>"


def _text(value: Any) -> str:
    if value is None:
        return "—"
    if isinstance(value, float):
        return f"{value:.4g}"
    return value if isinstance(value, str) else json.dumps(value, sort_keys=True)[:200]


def config_section(runs: list[Run]) -> str:
    configs = [r.flat_config() for r in runs]
    keys = sorted(set().union(*configs))
    if len(runs) == 1:
        rows = [[k, configs[0].get(k)] for k in keys]
        return "<h2>Configuration</h2>" + _table(["key", runs[0].label], rows)
    differ = [k for k in keys if len({json.dumps(c.get(k), sort_keys=True) for c in configs}) > 1]
    same = len(keys) - len(differ)
    rows = [[k, *(c.get(k) for c in configs)] for k in differ]
    counted = f"{len(differ)} key differs" if len(differ) == 1 else f"{len(differ)} keys differ"
    rest = f"the other {same} {'is' if same == 1 else 'are'} the same in every run"
    text = (f"<p>{counted}; {rest}.</p>"
            if differ else f"<p>The {same} keys are the same in every run.</p>")
    return "<h2>Configuration differences</h2>" + text + (
        _table(["key", *(r.label for r in runs)], rows) if rows else "")


def comparison_figure(runs: list[Run], key: str, ylabel: str) -> bytes | None:
    """`key` per round, every run (and stage) on shared axes; None when no run has it."""
    lines = [(run.label, group, xs, ys) for run in runs
             for group, (xs, ys) in series(run.records, key).items()]
    if not lines:
        return None
    fig, ax = plt.subplots(figsize=(7, 3.8))
    for label, group, xs, ys in lines:
        several = len({g for r, g, _, _ in lines if r == label}) > 1
        ax.plot(xs, ys, marker="o" if len(xs) < 40 else None, ms=3,
                label=f"{label} {group}" if several else label)
    ax.set(xlabel="round", ylabel=ylabel, title=f"{ylabel} per round, runs side by side")
    rounds_axis(ax)
    ax.legend(fontsize=7)
    return png_bytes(fig)


def curves_section(runs: list[Run]) -> str:
    parts = ["<h2>Curves</h2>"]
    if len(runs) > 1:
        for key, label in (("accuracy", "accuracy"), ("loss", "evaluation loss")):
            png = comparison_figure(runs, key, label)
            if png:
                parts.append(embedded_figure(f"{key} (all runs)", png))
    for run in runs:  # drawn afresh from the run's files; the run directory is only read
        parts.append(f"<h3>{html.escape(run.label)}</h3>")
        pngs = {name: png_bytes(fig) for name, fig in run_figures(run.path).items()}
        try:
            claim = claim_png(run.path)
        except Exception as exc:  # noqa: BLE001 - a summary may lack what a band reads
            parts.append(f"<p>No claim figure: {html.escape(f'{type(exc).__name__}: {exc}')}</p>")
            claim = None
        if claim is not None:
            pngs[CLAIM_FILE] = claim
        parts += [embedded_figure(name, png, f"{run.label}: {PLOTS_DIR}/{name}")
                  for name, png in pngs.items()] or ["<p>No round has finished yet: no curves.</p>"]
    return "".join(parts)


def summary_section(runs: list[Run]) -> str:
    keys = sorted(set().union(*(r.summary for r in runs)))
    rows = [[k, *(r.summary.get(k) for r in runs)] for k in keys]
    unfinished = [r.label for r in runs if not r.summary]
    note = (f"<p>Not finished (no summary.json): {html.escape(', '.join(unfinished))}.</p>"
            if unfinished else "")
    table = _table(["key", *(r.label for r in runs)], rows) if rows else ""
    return "<h2>Summary</h2>" + note + table


def events_section(runs: list[Run]) -> str:
    parts = ["<h2>Events</h2>"]
    for run in runs:
        log = run.path / "events.log"
        lines = log.read_text(errors="replace").splitlines() if log.is_file() else []
        shown = lines[-MAX_EVENTS:]
        more = f" (the last {len(shown)} of {len(lines)})" if len(lines) > len(shown) else ""
        parts.append(f"<h3>{html.escape(run.label)}{html.escape(more)}</h3>")
        parts.append(f"<pre>{html.escape(chr(10).join(shown))}</pre>" if shown
                     else "<p>No events: nothing went wrong.</p>")
    return "".join(parts)


def audit_section(runs: list[Run], out: Path) -> str:
    rows = []
    for run in runs:
        report = run.path / "audit" / "report.json"
        if not report.is_file():
            rows.append(f"<tr><td>{html.escape(run.label)}</td><td>not audited "
                        f"(fedvault audit {html.escape(str(run.path))})</td></tr>")
            continue
        verdict = str(json.loads(report.read_text()).get("verdict", "?"))
        link = os.path.relpath(report.with_name("report.html"), out.resolve().parent)
        colour = VERDICT_CLASS.get(verdict, "na")
        badge = f'<span class="badge {colour}">{html.escape(verdict)}</span>'
        rows.append(f"<tr><td>{html.escape(run.label)}</td><td>{badge} "
                    f'<a href="{html.escape(Path(link).as_posix(), quote=True)}">audit report</a>'
                    "</td></tr>")
    head = "<h2>Privacy audit</h2><table><tr><th>run</th><th>verdict</th></tr>"
    return head + "".join(rows) + "</table>"


def render_report(runs: list[Run], out: Path) -> str:
    title = f"fedvault report: {', '.join(r.label for r in runs)}"
    overview = _table(["run", "scenario", "method", "seed", "rounds", "accuracy", "directory"], [
        [r.label, r.config.get("scenario"), r.summary.get("method"), r.config.get("seed"),
         r.summary.get("rounds", len({m.get("round") for m in r.records})),
         r.summary.get("accuracy"), str(r.path)] for r in runs])
    body = [f"<h1>{html.escape(title)}</h1>", overview, config_section(runs), curves_section(runs),
            summary_section(runs), audit_section(runs, out), events_section(runs)]
    return (f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
            f"<style>{STYLE}</style></head><body>{''.join(body)}</body></html>")


def write_run_report(run_dirs: list[Path], out: Path) -> Path:
    """Check the inputs, then write the page; returns its path."""
    runs = open_runs(run_dirs, out)
    page = render_report(runs, out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(page, encoding="utf-8")
    return out


def plot_run_dir(run_dir: Path) -> list[str]:
    """`fedvault plot`: redraw RUN_DIR/plots/ (the server's plots and the claim figure)."""
    try:
        RunDirectory.open_existing(run_dir).config()
    except RunDirError as exc:
        raise ReportInputError(str(exc)) from exc
    written = list(write_plots(run_dir))
    claim = write_claim_figure(run_dir)
    return written + ([claim.name] if claim else [])


def plot_summary(run_dir: Path) -> str:
    """The console's last line after a run: its plots (with the claim figure drawn now, in
    this layer) and how to see them all on one page."""
    write_claim_figure(run_dir)
    names = sorted(p.name for p in (run_dir / PLOTS_DIR).glob("*.png"))
    shown = ", ".join(names) if names else "none"
    return (f"plots: {run_dir / PLOTS_DIR}/ ({shown})\n"
            f"one page for this run and others: fedvault report {run_dir} ... --out report.html")
