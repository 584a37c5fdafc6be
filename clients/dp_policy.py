"""A node's own privacy policy: the floor it trains under, whatever the server asks.

The run config arrives from the server in every RoundHeader, so DP that only the
header switches on is DP the server can switch off. A node started with a policy
(`fedvault node --require-dp [--min-noise-multiplier S] [--max-epsilon E]`, i.e. the
node-config keys below) refuses, before touching its data:
- any phase that would train or score its records without sample-level DP-SGD on
  the node (plain "train", client-level DP, where the server sees the raw update,
  and the audit phase's per-example scores unless `allow-audit` is set);
- a DP round whose σ is below its floor, or whose budget is above its cap.
A refusal is an ErrorReply (the server logs it in events.log with node and round)
and a warning in the node's own log.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Mapping

from flwr.common.logger import log
from logging import WARNING

from methods.base import RunSpec
from protos.contract import Phase

# Node-config keys (kebab-case, as Flower's --node-config).
REQUIRE_DP = "require-dp"
MIN_NOISE_MULTIPLIER = "min-noise-multiplier"
MAX_EPSILON = "max-epsilon"
ALLOW_AUDIT = "allow-audit"

PRIVATE_PHASES = (Phase.PRIVATE_TRAIN,)  # sample-level DP-SGD on this node
AUDIT_PHASES = (Phase.AUDIT,)


class PolicyRefusal(ValueError):
    """The request asks for less privacy than this node requires."""


def _flag(value: Any) -> bool:
    return str(value).strip().lower() in ("1", "true", "yes")


def _number(config: Mapping[str, Any], key: str) -> float:
    try:
        value = float(config.get(key, 0.0))
    except (TypeError, ValueError):
        raise PolicyRefusal(f"node config {key}={config.get(key)!r} is not a number") from None
    if not math.isfinite(value) or value < 0:
        raise PolicyRefusal(f"node config {key} must be a finite number >= 0, got {value}")
    return value


@dataclass(frozen=True)
class NodePolicy:
    require_dp: bool = False
    min_noise_multiplier: float = 0.0
    max_epsilon: float = 0.0
    allow_audit: bool = False

    @classmethod
    def of(cls, node_config: Mapping[str, Any]) -> "NodePolicy":
        floor, cap = _number(node_config, MIN_NOISE_MULTIPLIER), _number(node_config, MAX_EPSILON)
        return cls(
            require_dp=_flag(node_config.get(REQUIRE_DP, "")) or floor > 0 or cap > 0,
            min_noise_multiplier=floor,
            max_epsilon=cap,
            allow_audit=_flag(node_config.get(ALLOW_AUDIT, "")),
        )

    def check_phase(self, spec: RunSpec, phase: str, rnd: int) -> None:
        """Refuse a request that would use this node's records with less than its DP."""
        if not self.require_dp:
            return
        if phase in AUDIT_PHASES and self.allow_audit:
            return
        dp = spec.dp
        if phase in PRIVATE_PHASES and dp.enabled and dp.level == "sample":
            if dp.budget > self.max_epsilon > 0:
                self._refuse(rnd, phase, f"the run's budget ε={dp.budget:g} exceeds this "
                             f"node's max-epsilon {self.max_epsilon:g}")
            return
        asked = "no DP" if not dp.enabled else f"DP at level {dp.level!r}"
        self._refuse(rnd, phase, f"phase {phase!r} with {asked}; this node trains and scores "
                     "its records only under sample-level DP-SGD")

    def check_sigma(self, sigma: float, rnd: int) -> None:
        """Refuse a DP round whose noise multiplier is below this node's floor."""
        if sigma < self.min_noise_multiplier:
            self._refuse(rnd, Phase.PRIVATE_TRAIN, f"noise multiplier σ={sigma:.4f} is below this "
                         f"node's min-noise-multiplier {self.min_noise_multiplier:g}")

    @staticmethod
    def _refuse(rnd: int, phase: str, why: str) -> None:
        message = f"node policy refuses round {rnd} ({phase}): {why}"
        log(WARNING, message)
        raise PolicyRefusal(message)
