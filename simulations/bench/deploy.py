"""`fedvault bench deploy`: a round over real gRPC (SuperLink + 3 SuperNodes, TLS and
node authentication, simulations/deploy/local_federation.py LocalFederation via `fedvault deploy`'s
path) against the same compute in Flower's Simulation Engine (docs/performance.md).

Both runs are the fedavg scenario on 3 nodes (one partition each), one local epoch,
`ROUNDS` rounds, each in a fresh process, alternated per repeat. A round's time is
what the server records for it in metrics.jsonl (`seconds`: sample, send, wait,
aggregate, evaluate), identical code on both transports; warm = median over rounds
2..R. The one-time start (processes, registration, Ray) is reported apart.
Target (issue #21): deployed ÷ simulated ≤ 1.3 once warm. The deployment's nodes are
`fedvault node`s with their long-lived ClientApp worker ("grpc"); the same deployment
with Flower's one `flwr-clientapp` process per message ("grpc-subprocess", `fedvault
node --isolation subprocess`) runs beside them for comparison, outside the verdict.

Per message (`per_message`, from the workers' task lines in the node logs, each node's
first message left out: it loads the app): `delivery` is Flower's, from the server
creating a message to the SuperNode storing it (the Fleet API and an idle SuperNode's
hard-coded 3 s sleep between empty pulls: 1.5 s on average, no setting); `overhead` is
the worker's (AcquireTask poll, pulling the input, pushing the reply and the task output
over the Runtime API); `app` is the ClientApp's own compute. The SuperNode's own 0.5 s
poll for the reply and the reply's way back are in neither. `gap_per_message` is
(deployed − simulated warm round) ÷ messages a node handles per round.

What was ours and is gone: the ServerApp's grid in a deployment (Flower's HttpGrid)
sleeps 3 s between pulls of replies, so every exchange cost at least 3 s; the
federation now pushes and pulls itself from 50 ms up (server/federation.py); and a
fresh `flwr-clientapp` process per message, importing torch, Flower and fedvault each
time (simulations/deploy/clientapp_worker.py serves them all from one process).
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from simulations.bench.perf import (median, per_round, ratio_check, run_child, steady_state,
                                    tree_cpu_seconds)

NODES, ROUNDS, TARGET = 3, 5, 1.3
TRANSPORTS = {"grpc": (), "grpc-subprocess": ("--isolation", "subprocess"), "simulation": None}
OVERRIDES = {"num-clients": str(NODES), "num-server-rounds": str(ROUNDS),
             "fedavg.local-epochs": "1"}


def measure(transport: str, seed: int) -> dict[str, Any]:
    """One run over `transport` (a key of TRANSPORTS) in this process."""
    from server.run_dir import RunDirectory
    from server.scenario import resolve

    overrides = {**OVERRIDES, "seed": str(seed)}
    spec = resolve("fedavg", overrides)
    cpu_ends: list[float] = []  # this process tree's CPU seconds as each round is recorded

    def on_record(record: dict[str, Any]) -> None:
        cpu_ends.append(tree_cpu_seconds())

    tasks: list = []  # the workers' task records (a "grpc" deployment)
    with tempfile.TemporaryDirectory(prefix="fvdeploy-bench-") as tmp:
        run_dir = Path(tmp) / "run"
        started, cpu_start = time.perf_counter(), tree_cpu_seconds()
        if TRANSPORTS[transport] is not None:
            tasks = _deploy(spec, overrides, run_dir, on_record, TRANSPORTS[transport])
        else:
            from server.runner import Job
            from simulations.simulate import run_in_process

            run_in_process(Job(spec=spec, run_dir=str(run_dir), scenario="fedavg",
                               progress=on_record), NODES)
        total = time.perf_counter() - started
        records = RunDirectory(run_dir).metrics()
    seconds = [r["seconds"] for r in records]
    cpu = per_round(cpu_start, cpu_ends)
    return {"transport": transport, "seed": seed, "round_seconds": seconds,
            "warm_seconds": steady_state(seconds), "total_seconds": total,
            # CPU-seconds of every process of the federation, between recorded rounds (a
            # deployment's first also holds its processes' start)
            "round_cpu_seconds": cpu, "warm_cpu_seconds": steady_state(cpu),
            "start_seconds": total - sum(seconds), "accuracy": records[-1]["accuracy"],
            "per_message": per_message(tasks) if any(tasks) else None,
            "load_average": _load_average()}  # 1, 5, 15 min, as the run ends


def _deploy(spec, overrides: dict[str, str], run_dir: Path, on_record, node_flags) -> list:
    """A TLS + auth deployment; returns its workers' task records (parsed from the node
    logs before the federation's directory is removed)."""
    from simulations.deploy.worker_log import parse_task_lines
    from simulations.deploy.scenario import deploy

    feds: list = []
    try:
        status = deploy("fedavg", spec, overrides, nodes=NODES, run_dir=run_dir, secure=True,
                        on_record=on_record, on_started=feds.append, keep_temp=True,
                        node_flags=tuple(node_flags))
        if status != "finished:completed":
            raise RuntimeError(f"the deployment ended {status}")
        logs = [feds[0].group.log_path(f"node-{i}").read_text() for i in range(NODES)]
        return [[vars(task) for task in parse_task_lines(log)] for log in logs]
    finally:
        for fed in feds:
            shutil.rmtree(fed.workdir, ignore_errors=True)


def per_message(nodes: list[list[dict[str, Any]]]) -> dict[str, Any]:
    """Medians over the nodes' messages after each one's first (see the module's doc)."""
    warm = [t for tasks in nodes for t in tasks[1:] if t["status"] == "COMPLETED"]

    def figure(*keys: str) -> float:
        return median(sum(t["figures"][k] for k in keys) for t in warm)

    served_by = [len({t["pid"] for t in tasks}) for tasks in nodes]
    return {"messages": sum(len(tasks) for tasks in nodes), "processes_per_node": served_by,
            "messages_per_node_per_round": len(warm) / NODES / ROUNDS if warm else 0.0,
            "delivery_seconds": figure("delivery"), "app_seconds": figure("app"),
            "overhead_seconds": figure("wait", "input", "reply", "output"),
            "wait_seconds": figure("wait"), "input_seconds": figure("input"),
            "reply_seconds": figure("reply"), "output_seconds": figure("output"),
            "first_message_load_seconds": median(tasks[0]["figures"].get("load", 0.0)
                                                 for tasks in nodes if tasks)}


def run(out: Path | None = None, seeds: list[int] | None = None) -> dict[str, Any]:
    seeds = list(seeds or [0])
    runs: dict[str, list[dict[str, Any]]] = {t: [] for t in TRANSPORTS}
    for seed in seeds:
        for transport in runs:
            runs[transport].append(run_child("simulations.bench.deploy", transport, str(seed),
                                             timeout=1200))
    warm = {t: [r["warm_seconds"] for r in rs] for t, rs in runs.items()}
    check = ratio_check(warm["grpc"], warm["simulation"], TARGET)
    subprocess_ratio = ratio_check(warm["grpc-subprocess"], warm["simulation"], TARGET)
    messages = [r["per_message"] for r in runs["grpc"]]
    per_round = median(m["messages_per_node_per_round"] for m in messages) or 1.0
    return {"bench": "deploy", "nodes": NODES, "rounds": ROUNDS, "seeds": seeds,
            "load_average": _load_average(),
            "warm_seconds_per_round": {t: median(v) for t, v in warm.items()},
            "ratio_with_flwr_clientapp_per_message": subprocess_ratio["ratio"],
            "per_message": {k: median(m[k] for m in messages) for k in messages[0]
                            if k != "processes_per_node"},
            "processes_per_node": [m["processes_per_node"] for m in messages],
            "gap_per_message_seconds":
                (median(warm["grpc"]) - median(warm["simulation"])) / per_round,
            "warm_cpu_seconds_per_round": {t: median(r["warm_cpu_seconds"] for r in rs)
                                           for t, rs in runs.items()},
            "start_seconds": {t: median(r["start_seconds"] for r in rs) for t, rs in runs.items()},
            "accuracy": {t: [r["accuracy"] for r in rs] for t, rs in runs.items()},
            "ratio": check, "runs": runs, "pass": check["pass"]}


def _load_average() -> list[float] | None:
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except OSError:
        return None


if __name__ == "__main__":  # child: TRANSPORT SEED OUT.json
    result = measure(sys.argv[1], int(sys.argv[2]))
    Path(sys.argv[3]).write_text(json.dumps(result))
