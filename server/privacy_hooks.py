"""The privacy hooks of the round loop: the DP ledger (ε max over nodes, budgets) and the audit.

Sample-level DP (DP-SGD on the nodes, clients/privacy.py): each reply carries the
node's LedgerEntry (σ, q, steps, its cumulative ε from its own accountant, δ, clip
fraction) and the ε its next round would reach. The server
- appends one line per node per round to ledger.jsonl (on `--resume` the lines after
  the checkpoint's round are dropped, as for metrics.jsonl);
- states the run's ε as the max over nodes: node k's records are (ε_k, δ)-DP and the
  nodes' data are disjoint. Never Flower's metric mean, which weights by examples;
- sends each node its own history with every request, so a node that lost its
  state (a restart, a simulated node re-created after a server restart) re-creates
  its accountant and ε keeps composing;
- holds back a node whose next round would exceed dp.max-epsilon (events.log); the
  run goes on with the others and stops cleanly when none is left.

Client-level DP (dp.level=client, McMahan et al., "Learning Differentially Private
Recurrent Language Models", ICLR 2018): Flower's DifferentialPrivacyServerSideFixedClipping
clips each update to C and adds N(0, (σC/m)²) to the mean; each release is accounted
here without amplification (Flower's selection is no secret Poisson sample), in the
same ledger format.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from flwr.app import ConfigRecord, Message, RecordDict

from methods.base import Method, RunSpec
from protos.codec import PayloadError, encode
from protos.contract import (ARRAYS, LEDGER_ENTRY, LEDGER_EXTRA, LEDGER_HISTORY, METRICS,
                            NUM_EXAMPLES, PRIVACY, RNG_SECRET, Phase)
from protos.records import from_array_record, ledger_entries
from server.federation import Federation, NodeRecord
from server.ledger import Ledger, ledger_entry
from server.round_hooks import RoundHooks
from server.run_dir import RunDirectory


class PrivacyHooks(RoundHooks):
    """The DP ledger and the privacy audit around the standard round loop."""

    train_phase = Phase.PRIVATE_TRAIN

    def __init__(
        self,
        fed: Federation,
        method: Method,
        spec: RunSpec,
        run: RunDirectory,
        state: dict[str, Any],
    ) -> None:
        self.fed, self.method, self.spec, self.run, self.state = fed, method, spec, run, state
        self.dp = spec.dp if spec.dp.enabled else None
        self.ledger = Ledger(run, int(state["round"]))
        self.client_sigma = 0.0
        self.whitebox = None
        # white-box canaries ride on each node's own update: without DP too (the audit's
        # positive case), but not under client-level DP (the server noises only the mean)
        if spec.audit.enabled and (self.dp is None or self.dp.level == "sample"):
            from server.audit.phase import WhiteboxReader

            saved = state.get("privacy", {}).get("whitebox", {})
            self.whitebox = WhiteboxReader(spec, state["arrays"], saved)

    # --- strategy (client-level DP) ---------------------------------------------------------
    def wrap_strategy(self, strategy):
        if self.dp is None or self.dp.level != "client":
            return strategy
        from flwr.serverapp.strategy import DifferentialPrivacyServerSideFixedClipping

        from server.audit import accounting  # dp-accounting: only DP runs need it

        fed = self.spec.federation
        expected = fed.sampled_per_round  # nodes per release
        self.client_sigma = self.dp.noise_multiplier or accounting.noise_for(
            self.dp.target_epsilon, self.dp.delta, 1.0, fed.num_server_rounds, self._server_method()
        )
        return DifferentialPrivacyServerSideFixedClipping(
            strategy,
            noise_multiplier=self.client_sigma,
            clipping_norm=self.dp.max_grad_norm,
            num_sampled_clients=expected,
        )

    def _server_method(self) -> str:
        from server.audit.accounting import SERVER_METHOD

        return SERVER_METHOD[self.dp.accountant]

    # --- before the round ------------------------------------------------------------------
    def admit(self, rnd: int, node_ids: list[int]) -> list[int]:
        if self.dp is None:
            return node_ids
        spent = self.ledger.exhausted(self.dp.budget)
        return [n for n in node_ids if self._key(n) not in spent]

    def prepare(self, rnd: int, messages: list[Message]) -> list[Message]:
        """Give each node its own ledger history (sample-level DP)."""
        if self.dp is None or self.dp.level != "sample":
            return messages
        out = []
        for msg in messages:
            history = [
                ledger_entry(line) for line in self.ledger.history(self._key(msg.metadata.dst_node_id))
            ]
            content = RecordDict(dict(msg.content.items()))  # messages share one RecordDict
            if history:
                content[PRIVACY] = ConfigRecord({LEDGER_HISTORY: [encode(e) for e in history]})
            out.append(
                Message(
                    content,
                    dst_node_id=msg.metadata.dst_node_id,
                    message_type=msg.metadata.message_type,
                )
            )
        return out

    # --- after the round -------------------------------------------------------------------
    def check(self, reply: Message) -> str | None:
        if self.dp is None or self.dp.level != "sample":
            return None
        try:
            entries = ledger_entries(reply.content, LEDGER_ENTRY)
        except PayloadError as exc:
            return f"invalid ledger entry: {exc}"
        if len(entries) != 1:
            return "a DP-SGD reply must carry exactly one ledger entry"
        entry = entries[0]
        if entry.accountant != self.dp.accountant or entry.noise_multiplier <= 0:
            return (
                f"ledger entry with accountant {entry.accountant!r} and σ={entry.noise_multiplier}"
            )
        return None

    def observe(self, rnd: int, replies: list[Message], arrays: dict[str, np.ndarray]) -> None:
        if self.dp is not None:
            lines = self._sample_line if self.dp.level == "sample" else self._client_line
            for reply in replies:
                line = lines(rnd, reply, arrays)
                self.ledger.append(line)
                last = rnd == self.spec.federation.num_server_rounds
                if float(line["epsilon_next"]) > self.dp.budget + 1e-9 and not last:
                    self.run.log_event(
                        f"round {rnd}: {line['node']} stops training: its next round would reach "
                        f"ε={line['epsilon_next']:.4f} > budget {self.dp.budget:g} "
                        f"(spent ε={line['epsilon']:.4f} at δ={self.dp.delta:g})"
                    )
        if self.whitebox is not None:
            self.whitebox.observe(replies, arrays, self._node_record)
            self.state["privacy"] = {"whitebox": self.whitebox.saved()}

    def reject(self, rnd: int, reply: Message, reason: str) -> None:
        """A DP node's reply received but not aggregated is still a release: its line says
        accepted=false, and without a readable entry it is an unaccounted release."""
        if self.dp is None or self.dp.level != "sample":
            return  # client-level DP: only the noised aggregate is released
        try:
            entries = ledger_entries(reply.content, LEDGER_ENTRY)
        except PayloadError:
            entries = []
        if len(entries) == 1:
            line = self._sample_line(rnd, reply, None)
        else:
            node_id = reply.metadata.src_node_id
            line = {"round": rnd, "node": self._key(node_id), "node_id": node_id,
                    "level": "sample", "unaccounted": True}
            self.run.log_event(f"round {rnd}: {line['node']}'s rejected reply carries no "
                               "readable ledger entry: a release the ledger cannot account")
        self.ledger.append({**line, "accepted": False, "rejected_reason": reason})

    def _sample_line(self, rnd: int, reply: Message, arrays) -> dict[str, Any]:
        entry = ledger_entries(reply.content, LEDGER_ENTRY)[0]
        figures = reply.content[PRIVACY]
        node_id = reply.metadata.src_node_id
        line = {
            "accepted": True,
            "round": rnd,
            "node": self._key(node_id),
            "node_id": node_id,
            "level": "sample",
            "accountant": entry.accountant,
            "noise_multiplier": entry.noise_multiplier,
            "sample_rate": entry.sample_rate,
            "steps": int(entry.steps),
            "epsilon": entry.epsilon,
            "delta": entry.delta,
            "clip_fraction": entry.clip_fraction,
            "epochs": self.spec.method.local_epochs,
            "batch_size": self.spec.method.batch_size,
        }
        line.update({k.replace("-", "_"): figures[k] for k in LEDGER_EXTRA if k in figures})
        if self.spec.secagg.enabled:  # what the server saw of this release: a masked vector
            line["secure_aggregation"] = True
        line["steps_planned"] = self._planned_steps(line.get("num_examples"))
        if line["steps_planned"] is not None and line["steps"] != line["steps_planned"]:
            self.run.log_event(
                f"round {rnd}: {line['node']} reports {line['steps']} DP steps, the plan is "
                f"{line['steps_planned']} (E·⌈n/B⌉): the audit fails this run"
            )
        return line

    def _planned_steps(self, num_examples: Any) -> int | None:
        """E·⌈n/B⌉: every Poisson batch of every local epoch is a step, empty ones too."""
        try:
            n = int(num_examples)
        except (TypeError, ValueError):
            return None
        method = self.spec.method
        return method.local_epochs * math.ceil(n / method.batch_size) if n > 0 else None

    def _client_line(self, rnd: int, reply: Message, arrays) -> dict[str, Any]:
        """One accounted release of the noisy mean for each node in it (q = 1, one step)."""
        from server.audit import accounting

        node_id = reply.metadata.src_node_id
        key, method = self._key(node_id), self._server_method()
        releases = len(self.ledger.history(key)) + 1
        update = from_array_record(reply.content[ARRAYS])
        norm = math.sqrt(sum(float(np.sum((update[k] - arrays[k]) ** 2)) for k in arrays))
        step = (self.client_sigma, 1.0, 1)
        return {
            "accepted": True,
            "round": rnd,
            "node": key,
            "node_id": node_id,
            "level": "client",
            "accountant": method,
            "noise_multiplier": self.client_sigma,
            "sample_rate": 1.0,
            "steps": 1,
            "delta": self.dp.delta,
            "epsilon": accounting.epsilon([step[:2] + (releases,)], self.dp.delta, method),
            "epsilon_next": accounting.epsilon([step[:2] + (releases + 1,)], self.dp.delta, method),
            "clip_fraction": float(norm > self.dp.max_grad_norm),
            "update_norm": norm,
            "max_grad_norm": self.dp.max_grad_norm,
            "num_examples": int(reply.content[METRICS][NUM_EXAMPLES]),
            "clients_per_round": self.spec.federation.sampled_per_round,
        }

    # --- the end ---------------------------------------------------------------------------
    def finish(self, arrays: dict[str, np.ndarray]) -> dict[str, Any]:
        figures: dict[str, Any] = {"private": False}  # an audited run without DP
        if self.dp is not None:
            by_node = self.ledger.epsilon_by_node()
            figures.update(
                epsilon=max(by_node.values(), default=0.0),
                delta=self.dp.delta,
                dp_level=self.dp.level,
                accountant=self.dp.accountant,
                epsilon_by_node=by_node,
                stopped_nodes=self._stopped(),
                **self._against_server(),
            )
        if self.spec.audit.enabled:
            from server.audit.phase import run_audit_phase

            figures.update(
                run_audit_phase(
                    self.fed,
                    self.spec,
                    self.run,
                    arrays,
                    int(self.state["round"]) + 1,
                    self.prepare,
                    self.whitebox,
                )
            )
        return figures

    def _against_server(self) -> dict[str, Any]:
        """Does the guarantee hold against the server, as far as the ledger shows?"""
        lines = self.ledger.lines
        sources = sorted({str(x.get("rng", "unreported")) for x in lines if "epsilon" in x})
        unaccounted = sorted({x["node"] for x in lines if x.get("unaccounted")})
        private = (
            self.dp.level == "sample" and bool(lines)
            and sources == [RNG_SECRET] and not unaccounted
        )
        return {"private": private, "dp_randomness": sources, "unaccounted_nodes": unaccounted}

    def _stopped(self) -> list[str]:
        """Nodes the budget kept out of at least the last planned round."""
        planned = self.spec.federation.num_server_rounds
        last = {line["node"]: int(line["round"]) for line in self.ledger.accounted()}
        return sorted(k for k in self.ledger.exhausted(self.dp.budget) if last[k] < planned)

    def _key(self, node_id: int) -> str:
        return self.fed.node_key(node_id)

    def _node_record(self, node_id: int) -> NodeRecord | None:
        return self.fed.nodes.get(node_id)


def privacy_hooks(
    fed: Federation, method: Method, spec: RunSpec, run: RunDirectory, state: dict[str, Any]
) -> PrivacyHooks | None:
    """The hooks of a run with DP or an audit; None for a plain run."""
    if not spec.dp.enabled and not spec.audit.enabled:
        return None
    return PrivacyHooks(fed, method, spec, run, state)
