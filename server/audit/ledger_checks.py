"""The report's own, strict reading of ledger.jsonl, and the checks on its integrity.

server/ledger.py's `read_ledger` serves the running server; the report must fail
closed instead (design notes, not shipped: "Checks fail closed"):
- a line that is not JSON, or not an object, is an error naming the file and line
  (`UnreadableFileError`; the report turns it into its ReportError, exit 2);
- a line with a missing, mistyped, out-of-range or non-finite required value is kept
  out of the ε re-derivation (NaN would poison every max and comparison) and FAILs A15;
- optional fields, absent from older ledgers: `accepted` / `rejected_reason` (a rejected
  update still counts: the server saw it), `unaccounted` (a DP reply with no decodable
  ledger entry: FAILs A16), `steps_planned` (E·⌈n/B⌉: other steps FAIL A16) and `rng`
  ("run-seed" = the test-only deterministic noise the server can replay: FAILs A17).
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from protos.contract import RNG_RUN_SEED, RNG_SECRET
from server.audit.checks import FAIL, NA, PASS, WARN, _check

REQUIRED = (
    "round",
    "node",
    "noise_multiplier",
    "sample_rate",
    "steps",
    "epsilon",
    "delta",
    "accountant",
)
ACCOUNTANTS = ("prv", "rdp", "pld")  # node accountants, and the server's for client-level lines
_SHOWN = 6  # problems named in a check's detail; the report lists them all


class UnreadableFileError(ValueError):
    """A run file (or one line of it) the report cannot read: the message names both."""


def read_strict(path: str | Path) -> list[tuple[int, dict[str, Any]]]:
    """(line number, object) for every non-blank line of a JSON-lines file (the ledger,
    metrics.jsonl); raises UnreadableFileError on anything else."""
    path = Path(path)
    if not path.is_file():
        return []
    entries = []
    for number, raw in enumerate(path.read_bytes().split(b"\n"), start=1):
        try:
            text = raw.decode("utf-8")
            if not text.strip():
                continue
            obj = json.loads(text)  # NaN/Infinity parse: they are reported, not raised
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise UnreadableFileError(f"{path}:{number}: not a valid JSON line ({_reason(exc)})")
        if not isinstance(obj, dict):
            raise UnreadableFileError(f"{path}:{number}: not a JSON object")
        entries.append((number, obj))
    return entries


def _reason(exc: Exception) -> str:
    return exc.msg if isinstance(exc, json.JSONDecodeError) else "not UTF-8 text"


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _range_problem(line: dict[str, Any]) -> str | None:
    """Values the accountants cannot take (they would raise or return nonsense)."""
    if not 0.0 <= line["sample_rate"] <= 1.0:
        return f"sample_rate={line['sample_rate']} outside [0, 1]"
    if line["noise_multiplier"] < 0 or line["epsilon"] < 0 or not 0 < line["delta"] < 1:
        return "negative σ or ε, or δ outside (0, 1)"
    if line["steps"] < 0 or line["steps"] != int(line["steps"]):
        return f"steps={line['steps']} is not a count"
    if line["accountant"] not in ACCOUNTANTS:
        return f"unknown accountant {line['accountant']!r}"
    return None


def line_problem(line: dict[str, Any]) -> str | None:
    """Why a line cannot be accounted (None = usable). Unaccounted lines are A16's."""
    missing = [k for k in REQUIRED if line.get(k) is None]
    if missing:
        return f"missing {', '.join(missing)}"
    numeric = [k for k in REQUIRED if k not in ("node", "accountant")]
    bad = [k for k in numeric if not _number(line[k]) or not math.isfinite(line[k])]
    if bad:
        return "not a finite number: " + ", ".join(f"{k}={line[k]!r}" for k in bad)
    if not isinstance(line["node"], str) or not isinstance(line["accountant"], str):
        return "node and accountant must be strings"
    return _range_problem(line)


def _where(number: int, line: dict[str, Any]) -> dict[str, Any]:
    node, rnd = line.get("node"), line.get("round")
    return {"line": number, "node": str(node) if node is not None else "?", "round": rnd}


def _steps_problem(line: dict[str, Any]) -> str | None:
    planned = line.get("steps_planned")
    if planned is None:
        return None
    if not _number(planned) or not math.isfinite(planned) or planned != line.get("steps"):
        return f"steps do not match the plan: {line.get('steps')!r} steps, planned {planned!r}"
    return None


def inspect(entries: list[tuple[int, dict[str, Any]]]) -> tuple[list[dict], dict[str, Any]]:
    """The lines the accounting may use, and the report's `ledger` section."""
    usable, incomplete, unaccounted, steps, rng, rejected = [], [], [], [], {}, []
    for number, line in entries:
        where = _where(number, line)
        if line.get("unaccounted") is True:
            unaccounted.append(where)
            continue
        problem = line_problem(line)
        if problem:
            incomplete.append({**where, "problem": problem})
            continue
        usable.append(line)
        if (text := _steps_problem(line)) is not None:
            steps.append({**where, "problem": text})
        if "rng" in line:
            rng.setdefault(str(line["rng"]), set()).add(where["node"])
        if line.get("accepted") is False:
            rejected.append({**where, "reason": str(line.get("rejected_reason") or "")})
    section = {
        "lines": len(entries),
        "used": len(usable),
        "incomplete": incomplete,
        "unaccounted": unaccounted,
        "steps_off_plan": steps,
        "rng": {k: sorted(v) for k, v in sorted(rng.items())},
        "rng_unrecorded": sum("rng" not in x for x in usable),
        "steps_planned_recorded": sum(x.get("steps_planned") is not None for x in usable),
        "rejected_but_counted": rejected,
    }
    return usable, section


# --- checks (same signature as server/audit/checks.py's) --------------------------------------
def _listing(items: list[dict]) -> str:
    shown = "; ".join(
        f"{x['node']} round {x['round']} (line {x['line']})"
        + (f": {x['problem']}" if "problem" in x else "")
        for x in items[:_SHOWN]
    )
    return shown + (f"; … {len(items) - _SHOWN} more" if len(items) > _SHOWN else "")


def a15_complete(report: dict, spec, scores: dict) -> dict[str, str]:
    name = "ledger complete and finite"
    ledger = report["ledger"]
    if not ledger["lines"]:
        if report["accounting"].get("private"):
            return _check("A15", name, WARN, "DP run with an empty ledger: nothing is accounted")
        return _check("A15", name, NA, "no ledger (the run is not private)")
    bad = ledger["incomplete"]
    if bad:
        return _check(
            "A15",
            name,
            FAIL,
            f"{len(bad)} of {ledger['lines']} lines left out of the ε re-derivation: "
            + _listing(bad),
        )
    return _check("A15", name, PASS, f"all {ledger['lines']} lines complete and finite")


def a16_releases(report: dict, spec, scores: dict) -> dict[str, str]:
    name = "every release accounted, steps as planned"
    ledger = report["ledger"]
    if not ledger["lines"]:
        return _check("A16", name, NA, "no ledger")
    problems = []
    if ledger["unaccounted"]:
        problems.append("a release the ledger cannot account: " + _listing(ledger["unaccounted"]))
    if ledger["steps_off_plan"]:
        problems.append(_listing(ledger["steps_off_plan"]))
    detail = " | ".join(problems) or "every reply carried its ledger entry; steps as planned"
    if not problems and not ledger["steps_planned_recorded"]:
        detail += " (steps_planned not recorded: older ledger)"
    return _check("A16", name, FAIL if problems else PASS, detail)


def a17_secret_noise(report: dict, spec, scores: dict) -> dict[str, str]:
    name = "DP noise secret from the server (node OS CSPRNG)"
    rng = report["ledger"]["rng"]
    if not rng:
        return _check("A17", name, NA, "no rng source in the ledger (older ledger)")
    if RNG_RUN_SEED in rng:
        return _check(
            "A17",
            name,
            FAIL,
            f"rng=run-seed on {rng[RNG_RUN_SEED]}: the test-only deterministic-noise switch; "
            "the server can replay the noise, so the run is NOT private against the server",
        )
    unknown = {k: v for k, v in rng.items() if k != RNG_SECRET}
    unrecorded = report["ledger"]["rng_unrecorded"]
    detail = f"rng sources: {rng}" + (f"; {unrecorded} lines without one" if unrecorded else "")
    return _check("A17", name, WARN if unknown or unrecorded else PASS, detail)


LEDGER_CHECKS = [a15_complete, a16_releases, a17_secret_noise]
