"""Ask-AC's summary figures from the stages' per-round records (server side).

Each record holds the server's evaluation of the global model after the round: greedy
returns per level (`return_level{k}`), and the FedAvg means of the clients' counters
(`env_steps`, `advisor_queries` per client, cumulative; `train_return` of the round).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from methods.askac.config import AskACConfig

# Summary key suffix of each variant (the names in methods/askac/README.md).
KEY = {"askac": "askac", "cm": "continuous_monitoring", "vanilla": "vanilla",
       "no-selector": "no_selector"}
QUERY_KEY = {"askac": "askac", "cm": "cm", "vanilla": "vanilla", "no-selector": "no_selector"}


def federation_total(history: Sequence[dict[str, Any]], counter: str) -> float:
    """Σ over rounds of (per-client mean increment × clients that replied): the total."""
    total, previous = 0.0, 0.0
    for record in history:
        total += (record[counter] - previous) * record["replies"]
        previous = record[counter]
    return total


def level_returns(history: Sequence[dict[str, Any]], cfg: AskACConfig) -> dict[str, list[float]]:
    """Per level: training return over its last `train-window-steps`, greedy at its end."""
    window = max(1, math.ceil(cfg.train_window_steps / cfg.steps_per_round))
    train, greedy = [], []
    for level in range(len(cfg.pole_lengths)):
        rounds = list(history[level * cfg.rounds_per_level:(level + 1) * cfg.rounds_per_level])
        if not rounds:
            break
        last = rounds[-min(window, len(rounds)):]
        train.append(sum(r["train_return"] for r in last) / len(last))
        greedy.append(rounds[-1][f"return_level{level + 1}"])
    return {"train": train, "greedy": greedy}


def summarize_stages(histories: dict[str, Sequence[dict[str, Any]]],
                     cfg: AskACConfig) -> dict[str, Any]:
    summary: dict[str, Any] = {"pole_lengths": list(cfg.pole_lengths),
                               "steps_per_level_per_client": cfg.steps_per_level}
    for variant, history in histories.items():
        summary[f"return_{KEY[variant]}"] = level_returns(history, cfg)
        queries = federation_total(history, "advisor_queries")
        steps = federation_total(history, "env_steps")
        summary[f"advisor_queries_{QUERY_KEY[variant]}"] = round(queries)
        summary[f"env_steps_{QUERY_KEY[variant]}"] = round(steps)
        summary[f"ask_rate_{QUERY_KEY[variant]}"] = queries / steps if steps else 0.0
    return summary
