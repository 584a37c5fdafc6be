"""`fedvault bench scale`: 1,000, 10,000 and 100,000 virtual clients, 10 sampled per
round, 20 rounds, in Flower's Simulation Engine (docs/performance.md).

Each size is a pooled run (`pool-nodes = 10`, server/pool.py): Flower registers 10
virtual SuperNodes and each round's 10 sampled logical clients, drawn from range(N), play
on them. Each size runs `fedvault simulate fedavg`'s in-process path in a fresh process
that records, at the end of every round, its round time and the resident memory of
itself and every descendant (Ray's GCS, raylet and workers), and samples the peak in a
background thread (simulations/bench/perf.py reads /proc).

MNIST-5k has 4,000 training images, fewer than 10,000 clients, so logical client i
trains on shard i mod 1,000 of an IID split into 1,000 shards of 4 images (the ClientApp
below rewrites the client's node config before fedvault's ClientApp sees it): every
sampled client does the same work at every size and only N changes.

Pass: per-round RSS within ±10 % of its median after round 2 (every size), peak RSS
within 10 % across the sizes, and the steady round time at the largest N within 20 % of
that at the smallest.
"""

from __future__ import annotations

import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from simulations.bench.perf import (PeakRss, flatness, per_round, round_seconds, run_child,
                                    steady_state, tree_cpu_seconds, tree_rss)

SIZES = (1_000, 10_000, 100_000)
SAMPLED, ROUNDS, SHARDS = 10, 20, 1_000
POOL = SAMPLED  # one pool node per sampled client
RSS_TOLERANCE, TIME_TOLERANCE, PEAK_TOLERANCE = 0.10, 0.20, 0.10


def scale_spec(num_clients: int, seed: int = 0, rounds: int = ROUNDS):
    from server.scenario import resolve

    return resolve("fedavg", {
        "num-clients": str(num_clients), "fraction-train": str(SAMPLED / num_clients),
        "num-server-rounds": str(rounds), "seed": str(seed), "data.partitioner": "iid",
        "fedavg.local-epochs": "1", "min-nodes": "1", "pool-nodes": str(POOL),
    })


def shard_config(node_config: dict, shards: int = SHARDS) -> dict:
    """Logical client i of N holds shard i mod `shards` (the data has only 4,000 images)."""
    pid = int(node_config["partition-id"]) % shards
    return {**node_config, "partition-id": pid, "num-partitions": shards}


def sharded_client_app():
    """fedvault's ClientApp behind a node-config rewrite (`shard_config`); the simulation
    puts the pool wrapper in front of it, so the rewrite sees the logical client's config."""
    from flwr.app import Context, Message
    from flwr.clientapp import ClientApp

    from clients.app import app as fedvault_app

    wrapper = ClientApp()

    def forward(msg: Message, context: Context) -> Message:
        shard = Context(run_id=context.run_id, node_id=context.node_id,
                        node_config=shard_config(dict(context.node_config)),
                        state=context.state, run_config=context.run_config)
        return fedvault_app(msg, shard)

    for register in (wrapper.train(), wrapper.query(), wrapper.query("info"), wrapper.evaluate()):
        register(forward)
    return wrapper


def measure(num_clients: int, seed: int = 0, rounds: int = ROUNDS) -> dict[str, Any]:
    """One run at `num_clients` in this process: round times, RSS per round, peak RSS."""
    import torch

    from server.runner import Job
    from simulations.simulate import run_in_process

    torch.set_num_threads(1)
    ends, rss, cpu_ends = [], [], []
    cpu_start = tree_cpu_seconds()

    def progress(record: dict[str, Any]) -> None:
        ends.append(time.perf_counter())
        rss.append(tree_rss()["rss_bytes"])
        cpu_ends.append(tree_cpu_seconds())

    spec = scale_spec(num_clients, seed, rounds)
    with tempfile.TemporaryDirectory(prefix="fvscale-") as tmp, PeakRss() as peak:
        started = time.perf_counter()
        job = Job(spec=spec, run_dir=str(Path(tmp) / "run"), scenario="fedavg", progress=progress)
        run_in_process(job, POOL, client=sharded_client_app())
        summary = json.loads((Path(tmp) / "run" / "summary.json").read_text())
    seconds = round_seconds(started, ends)
    cpu = per_round(cpu_start, cpu_ends)
    return {"num_clients": num_clients, "round_seconds": seconds,
            "steady_seconds": steady_state(seconds, warmup=2),
            "round_cpu_seconds": cpu, "steady_cpu_seconds": steady_state(cpu, warmup=2),
            "rss_per_round": rss,
            "peak_rss": peak.peak, "summary_num_clients": summary["num_clients"],
            "accuracy": summary["accuracy"]}


def verdict(by_size: dict[int, dict[str, Any]]) -> dict[str, Any]:
    """The scale checks of docs/performance.md on the per-size measurements."""
    small, large = (by_size[n] for n in (min(by_size), max(by_size)))
    time_ratio = large["steady_seconds"] / small["steady_seconds"]
    peaks = [r["peak_rss"] for r in by_size.values()]
    peak_ratio = max(peaks) / min(peaks)
    checks = {f"rss flat after round 2 (N={n})": flatness(r["rss_per_round"], 2, RSS_TOLERANCE)
              for n, r in by_size.items()}
    checks["round time independent of N"] = {
        "ratio": time_ratio, "tolerance": TIME_TOLERANCE,
        "pass": bool(abs(time_ratio - 1) <= TIME_TOLERANCE)}
    checks["peak rss independent of N"] = {
        "ratio": peak_ratio, "tolerance": PEAK_TOLERANCE,
        "pass": bool(peak_ratio <= 1 + PEAK_TOLERANCE)}
    return {"checks": checks, "peak_rss_ratio": peak_ratio,
            "round_time_ratio": time_ratio, "largest_num_clients": max(by_size),
            # CPU-seconds of the whole process tree per steady round, beside wall time
            "round_cpu_ratio": large["steady_cpu_seconds"] / small["steady_cpu_seconds"],
            "pass": all(c["pass"] for c in checks.values())}


def run(out: Path | None = None, seeds: list[int] | None = None) -> dict[str, Any]:
    seed = (seeds or [0])[0]
    by_size = {n: run_child("simulations.bench.scale", str(n), str(seed)) for n in SIZES}
    return {"bench": "scale", "seed": seed, "sampled_per_round": SAMPLED, "rounds": ROUNDS,
            "shards": SHARDS, "pool_nodes": POOL, "sizes": {str(n): r for n, r in by_size.items()},
            **verdict(by_size)}


if __name__ == "__main__":  # child: NUM_CLIENTS SEED OUT.json
    result = measure(int(sys.argv[1]), int(sys.argv[2]))
    Path(sys.argv[3]).write_text(json.dumps(result))
