"""`fedvault bench deploy`: a round over real gRPC (SuperLink + 3 SuperNodes, TLS and
node authentication, simulations/deploy/local_federation.py LocalFederation via `fedvault deploy`'s
path) against the same compute in Flower's Simulation Engine (docs/performance.md).

Both runs are the fedavg scenario on 3 nodes (one partition each), one local epoch,
`ROUNDS` rounds, each in a fresh process, alternated per repeat. A round's time is
what the server records for it in metrics.jsonl (`seconds`: sample, send, wait,
aggregate, evaluate), identical code on both transports; warm = median over rounds
2..R. The one-time start (processes, registration, Ray) is reported apart.
Target: deployed ÷ simulated ≤ 2 once warm.

What was ours and is gone: the ServerApp's grid in a deployment (Flower's HttpGrid)
sleeps 3 s between pulls of replies, so every exchange cost at least 3 s; the
federation now pushes and pulls itself from 50 ms up (server/federation.py). What is
Flower's and stays: an idle SuperNode polls the SuperLink every 3 s (hard-coded in
flwr 1.39's supernode loop, no setting), so a request waits 1.5 s on average before a
node sees it.
"""

from __future__ import annotations

import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from simulations.bench.perf import median, ratio_check, run_child, steady_state

NODES, ROUNDS, TARGET = 3, 5, 2.0
OVERRIDES = {"num-clients": str(NODES), "num-server-rounds": str(ROUNDS),
             "fedavg.local-epochs": "1"}


def measure(transport: str, seed: int) -> dict[str, Any]:
    """One run over `transport` ("grpc" or "simulation") in this process."""
    from server.run_dir import RunDirectory
    from server.scenario import resolve

    overrides = {**OVERRIDES, "seed": str(seed)}
    spec = resolve("fedavg", overrides)
    with tempfile.TemporaryDirectory(prefix="fvdeploy-bench-") as tmp:
        run_dir = Path(tmp) / "run"
        started = time.perf_counter()
        if transport == "grpc":
            from simulations.deploy.scenario import deploy

            status = deploy("fedavg", spec, overrides, nodes=NODES, run_dir=run_dir, secure=True)
            if status != "finished:completed":
                raise RuntimeError(f"the deployment ended {status}")
        else:
            from server.runner import Job
            from simulations.simulate import run_in_process

            run_in_process(Job(spec=spec, run_dir=str(run_dir), scenario="fedavg"), NODES)
        total = time.perf_counter() - started
        records = RunDirectory(run_dir).metrics()
    seconds = [r["seconds"] for r in records]
    return {"transport": transport, "seed": seed, "round_seconds": seconds,
            "warm_seconds": steady_state(seconds), "total_seconds": total,
            "start_seconds": total - sum(seconds), "accuracy": records[-1]["accuracy"]}


def run(out: Path | None = None, seeds: list[int] | None = None) -> dict[str, Any]:
    seeds = list(seeds or [0])
    runs: dict[str, list[dict[str, Any]]] = {"grpc": [], "simulation": []}
    for seed in seeds:
        for transport in runs:
            runs[transport].append(run_child("simulations.bench.deploy", transport, str(seed),
                                             timeout=1200))
    warm = {t: [r["warm_seconds"] for r in rs] for t, rs in runs.items()}
    check = ratio_check(warm["grpc"], warm["simulation"], TARGET)
    return {"bench": "deploy", "nodes": NODES, "rounds": ROUNDS, "seeds": seeds,
            "warm_seconds_per_round": {t: median(v) for t, v in warm.items()},
            "start_seconds": {t: median(r["start_seconds"] for r in rs) for t, rs in runs.items()},
            "accuracy": {t: [r["accuracy"] for r in rs] for t, rs in runs.items()},
            "ratio": check, "runs": runs, "pass": check["pass"]}


if __name__ == "__main__":  # child: TRANSPORT SEED OUT.json
    result = measure(sys.argv[1], int(sys.argv[2]))
    Path(sys.argv[3]).write_text(json.dumps(result))
