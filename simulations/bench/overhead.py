"""`fedvault bench overhead`: what fedvault costs per round over plain PyTorch and
over a minimal vanilla Flower app doing the same training (docs/performance.md).

Three runs per repeat, side by side, each in a fresh process: the fedavg scenario
(10 clients, Dirichlet 0.5, MNIST-5k) as
- `plain`: simulations.bench.vanilla_flower.plain_fedavg, one process, no Flower;
- `vanilla`: a minimal ServerApp/ClientApp (Flower's FedAvg `start`) in Flower's
  Simulation Engine;
- `fedvault`: `fedvault simulate fedavg`'s in-process path (simulations.simulate).
Both simulations get a Ray with one CPU, so all three use one core, as the plain
loop does; every round also evaluates on the 1,000 test images (fedvault does).
A round's time runs from the end of the previous round to the end of this one;
steady state is the median over rounds 2..R, and the first round's excess over it
is reported as the engine's one-time start. Ratios are of medians over repeats.
Targets: fedvault ≤ 1.15× plain, ≤ 1.05× vanilla Flower.
"""

from __future__ import annotations

import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from simulations.bench.perf import median, ratio_check, round_seconds, run_child, steady_state

TARGETS = {"fedvault/plain": 1.15, "fedvault/vanilla": 1.05}
KINDS = ("plain", "vanilla", "fedvault")
ROUNDS = 4
NUM_CPUS = 1


def bench_spec(seed: int, rounds: int = ROUNDS):
    from server.scenario import resolve

    return resolve("fedavg", {"num-server-rounds": str(rounds), "fedavg.local-epochs": "1",
                              "seed": str(seed)})


def measure(kind: str, seed: int, rounds: int = ROUNDS) -> dict[str, Any]:
    """One run of `kind` in this process: per-round seconds and final accuracy."""
    import torch

    from simulations.bench.vanilla_flower import Recorder, plain_fedavg

    torch.set_num_threads(1)
    spec, clock = bench_spec(seed, rounds), Recorder()
    started = time.perf_counter()
    if kind == "plain":
        plain_fedavg(spec, clock)
    elif kind == "vanilla":
        _vanilla(spec, clock)
    elif kind == "fedvault":
        _fedvault(spec, clock)
    else:
        raise ValueError(f"unknown kind {kind!r}; one of {KINDS}")
    seconds = round_seconds(started, [t for t, _ in clock.rounds])
    steady = steady_state(seconds)
    cpu = clock.round_cpu_seconds()
    return {"kind": kind, "seed": seed, "round_seconds": seconds, "steady_seconds": steady,
            "round_cpu_seconds": cpu, "steady_cpu_seconds": steady_state(cpu),
            "engine_start_seconds": seconds[0] - steady,
            "accuracy": clock.rounds[-1][1]["accuracy"]}


def _vanilla(spec, clock) -> None:
    from flwr.simulation import run_simulation

    from simulations.simulate import backend_config, private_local_ray, simulation_env
    from simulations.bench.vanilla_flower import vanilla_apps

    simulation_env()
    private_local_ray()  # the same token authentication as fedvault's own local Ray
    server_app, client_app = vanilla_apps(spec, clock)
    run_simulation(server_app=server_app, client_app=client_app,
                   num_supernodes=spec.federation.num_clients,
                   backend_config=backend_config(None, 1.0, NUM_CPUS))


def _fedvault(spec, clock) -> None:
    from server.runner import Job
    from simulations.simulate import run_in_process

    with tempfile.TemporaryDirectory(prefix="fvbench-") as tmp:
        job = Job(spec=spec, run_dir=str(Path(tmp) / "run"), scenario="fedavg",
                  progress=lambda record: clock(record["round"], {"accuracy": record["accuracy"]}))
        run_in_process(job, spec.federation.num_clients, num_cpus=NUM_CPUS)


def run(out: Path | None = None, seeds: list[int] | None = None) -> dict[str, Any]:
    seeds = list(seeds or [0, 1, 2])  # one repeat per seed
    runs: dict[str, list[dict[str, Any]]] = {kind: [] for kind in KINDS}
    for seed in seeds:
        for kind in KINDS:  # interleaved: drifting load hits all three alike
            runs[kind].append(run_child("simulations.bench.overhead", kind, str(seed)))
    steady = {kind: [r["steady_seconds"] for r in rs] for kind, rs in runs.items()}
    cpu = {kind: [r["steady_cpu_seconds"] for r in rs] for kind, rs in runs.items()}
    checks = {
        "fedvault/plain": ratio_check(steady["fedvault"], steady["plain"], TARGETS["fedvault/plain"]),
        "fedvault/vanilla": ratio_check(steady["fedvault"], steady["vanilla"],
                                        TARGETS["fedvault/vanilla"]),
        "vanilla/plain": ratio_check(steady["vanilla"], steady["plain"], float("inf")),
    }
    return {
        "bench": "overhead", "seeds": seeds, "rounds": ROUNDS, "ray_cpus": NUM_CPUS,
        "steady_seconds_per_round": {k: median(v) for k, v in steady.items()},
        # the same rounds in CPU-seconds of each run's whole process tree: what a loaded
        # machine does not stretch (reported beside the wall-time ratios, not judged)
        "steady_cpu_seconds_per_round": {k: median(v) for k, v in cpu.items()},
        "cpu_ratios": {"fedvault/plain": median(cpu["fedvault"]) / median(cpu["plain"]),
                       "fedvault/vanilla": median(cpu["fedvault"]) / median(cpu["vanilla"])},
        "engine_start_seconds": {k: median(r["engine_start_seconds"] for r in rs)
                                 for k, rs in runs.items()},
        "final_accuracy": {k: [r["accuracy"] for r in rs] for k, rs in runs.items()},
        "ratios": checks, "targets": TARGETS, "runs": runs,
        "pass": checks["fedvault/plain"]["pass"] and checks["fedvault/vanilla"]["pass"],
    }


if __name__ == "__main__":  # child: KIND SEED OUT.json
    result = measure(sys.argv[1], int(sys.argv[2]))
    Path(sys.argv[3]).write_text(json.dumps(result))
