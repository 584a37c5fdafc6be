"""What a cross-cutting concern may do around the standard round loop (server/rounds.py).

The base class is a no-op; the DP ledger and the privacy audit (server/privacy_hooks.py)
override what they need.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from flwr.app import Message

from protos.contract import Phase


class RoundHooks:
    """Cross-cutting concerns around the loop (DP ledger, privacy audit); no-ops here.

    A concern wraps the strategy, admits or holds back sampled nodes, adds to each
    request, vets and reads each reply (per-client, before aggregation), and adds
    figures to the summary at the end. It keeps what `--resume` needs in `state`.
    """

    train_phase = Phase.TRAIN

    def wrap_strategy(self, strategy):
        return strategy

    def admit(self, rnd: int, node_ids: list[int]) -> list[int]:
        return node_ids

    def prepare(self, rnd: int, messages: list[Message]) -> list[Message]:
        return messages

    def check(self, reply: Message) -> str | None:
        return None

    def observe(self, rnd: int, replies: list[Message], arrays: dict[str, np.ndarray]) -> None:
        pass

    def reject(self, rnd: int, reply: Message, reason: str) -> None:
        """A reply received but not aggregated (what it released still counts)."""

    def finish(self, arrays: dict[str, np.ndarray]) -> dict[str, Any]:
        return {}
