"""The privacy ledger file: ledger.jsonl, one line per node per round, append-only.

Written by the DP hooks of the round loop (server/privacy_hooks.py), read by the
audit (strictly: server/audit/ledger_checks.py). On `--resume` the lines after the
checkpoint's round are dropped, as for metrics.jsonl. A line's figures are the node's
LedgerEntry plus the fields it sends beside it (protos/contract.py LEDGER_EXTRA).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from protos import fedvault_pb2 as pb
from server.run_dir import RunDirectory, atomic_write

LEDGER_FILE = "ledger.jsonl"


def read_ledger(path: str | Path) -> list[dict[str, Any]]:
    path = Path(path)
    if not path.is_file():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


class Ledger:
    """ledger.jsonl, append-only, in memory too."""

    def __init__(self, run: RunDirectory, last_round: int) -> None:
        self.path = run.path / LEDGER_FILE
        lines = read_ledger(self.path)
        self.lines = [line for line in lines if int(line["round"]) <= last_round]
        if len(self.lines) != len(lines):  # a resumed run redoes those rounds
            body = "".join(json.dumps(line, sort_keys=True) + "\n" for line in self.lines)
            atomic_write(self.path, body.encode())

    def append(self, line: dict[str, Any]) -> None:
        self.lines.append(line)
        with open(self.path, "a") as fh:
            fh.write(json.dumps(line, sort_keys=True) + "\n")

    def accounted(self) -> list[dict[str, Any]]:
        """Lines with figures (an unaccounted release has none; the audit FAILs on it)."""
        return [line for line in self.lines if not line.get("unaccounted")]

    def history(self, node: str) -> list[dict[str, Any]]:
        return [line for line in self.accounted() if line["node"] == node]

    def epsilon_by_node(self) -> dict[str, float]:
        return {line["node"]: float(line["epsilon"]) for line in self.accounted()}  # latest wins

    def exhausted(self, budget: float) -> set[str]:
        latest = {line["node"]: line for line in self.accounted()}
        return {k for k, line in latest.items() if float(line["epsilon_next"]) > budget + 1e-9}


def ledger_entry(line: dict[str, Any]) -> pb.LedgerEntry:
    """A line back as the node's LedgerEntry (the history a node gets with each request)."""
    return pb.LedgerEntry(
        round=int(line["round"]),
        noise_multiplier=line["noise_multiplier"],
        sample_rate=line["sample_rate"],
        steps=int(line["steps"]),
        epsilon=line["epsilon"],
        delta=line["delta"],
        clip_fraction=line["clip_fraction"],
        accountant=line["accountant"],
    )
