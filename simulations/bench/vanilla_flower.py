"""The two baselines of `fedvault bench overhead`: a plain PyTorch FedAvg loop in one
process, and a minimal vanilla Flower app (ServerApp + ClientApp, Flower's FedAvg
`start`) doing the same training.

"The same training" means what fedvault's fedavg does (McMahan et al., AISTATS 2017,
Algorithm 1; the w ← Σ_k (n_k/n) w_k average of §2): the same partitions of MNIST-5k
(the method's own partitioner), the same SmallCNN initialised from the run seed, the
same per-(seed, round, partition) batch order and SGD settings, and the same central
evaluation on the 1,000 test images after every round. Only the framework around it
differs, so the time ratios measure framework cost. (The final accuracies match
fedvault's, which the bench reports as the check that the work is the same.)
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader

from clients.tasks import local_seed
from methods.base import RunSpec
from methods.registry import get_method
from protos.contract import partition_key
from simulations.bench.perf import per_round, tree_cpu_seconds

RoundClock = Callable[[int, dict[str, float]], None]


# --- the plain loop: nothing but PyTorch ----------------------------------------------

def plain_train(model: nn.Module, dataset, spec: RunSpec, seed: int) -> float:
    """E epochs of SGD on `dataset` (an ArrayDataset); returns the last batch loss."""
    cfg = spec.method
    torch.manual_seed(seed)
    loader = DataLoader(dataset.to_torch(), batch_size=cfg.batch_size, shuffle=True,
                        generator=torch.Generator().manual_seed(seed))
    optimizer = torch.optim.SGD(model.parameters(), lr=cfg.lr, momentum=cfg.momentum,
                                weight_decay=cfg.weight_decay)
    model.train()
    loss = torch.zeros(())
    for _ in range(cfg.local_epochs):
        for x, y in loader:
            optimizer.zero_grad(set_to_none=True)
            loss = nn.functional.cross_entropy(model(x), y)
            loss.backward()
            optimizer.step()
    return loss.item()


def weighted_mean(updates: list[tuple[dict[str, np.ndarray], int]]) -> dict[str, np.ndarray]:
    total = sum(n for _, n in updates)
    return {k: sum(arrays[k] * (n / total) for arrays, n in updates) for k in updates[0][0]}


class Workload:
    """The data, model and evaluation every baseline shares (built once per process)."""

    def __init__(self, spec: RunSpec) -> None:
        self.spec = spec
        self.method = get_method(spec.method_name)
        self.train = self.method.train_dataset(spec)
        self.test = self.method.test_dataset(spec)
        self.shards = self.method.node_partition(spec, self.train.y, spec.federation.num_clients)
        self.model = self.method.build_model(spec)

    def initial(self) -> dict[str, np.ndarray]:
        torch.manual_seed(self.spec.federation.seed)  # as server.rounds.initial_arrays
        return self.method.shared_state(self.method.build_model(self.spec))

    def client_update(self, arrays: dict[str, np.ndarray], pid: int, rnd: int) -> dict[str, np.ndarray]:
        self.method.load_shared_state(self.model, arrays)
        plain_train(self.model, self.train.subset(self.shards[pid]), self.spec,
                    local_seed(self.spec, rnd, partition_key(pid)))
        # copies: shared_state's arrays are views of the one model reused for every client
        return {k: v.copy() for k, v in self.method.shared_state(self.model).items()}

    def accuracy(self, arrays: dict[str, np.ndarray]) -> float:
        self.method.load_shared_state(self.model, arrays)
        return self.method.evaluate(self.model, self.test)["accuracy"]


def plain_fedavg(spec: RunSpec, clock: RoundClock) -> None:
    """FedAvg over every partition, all in this process; `clock(rnd, figures)` after each round."""
    work = Workload(spec)
    arrays = work.initial()
    for rnd in range(1, spec.federation.num_server_rounds + 1):
        updates = [(work.client_update(arrays, pid, rnd), len(shard))
                   for pid, shard in enumerate(work.shards)]
        arrays = weighted_mean(updates)
        clock(rnd, {"accuracy": work.accuracy(arrays)})


# --- the vanilla Flower app ---------------------------------------------------------------

def vanilla_apps(spec: RunSpec, clock: RoundClock) -> tuple[Any, Any]:
    """(ServerApp, ClientApp): Flower's FedAvg `start` and a train handler, nothing else."""
    from flwr.app import Array, ArrayRecord, Context, Message, MetricRecord, RecordDict
    from flwr.clientapp import ClientApp
    from flwr.serverapp import Grid, ServerApp
    from flwr.serverapp.strategy import FedAvg

    client_app, server_app = ClientApp(), ServerApp()
    cache: dict[str, Workload] = {}  # one per Ray actor process, as fedvault's shard cache

    @client_app.train()
    def train(msg: Message, context: Context) -> Message:
        work = cache.setdefault("work", Workload(spec))
        pid = int(context.node_config["partition-id"])
        arrays = {k: v.numpy() for k, v in msg.content["arrays"].items()}
        rnd = int(msg.content["config"]["server-round"])
        updated = work.client_update(arrays, pid, rnd)
        reply = {"arrays": ArrayRecord({k: Array(np.ascontiguousarray(v)) for k, v in updated.items()}),
                 "metrics": MetricRecord({"num-examples": len(work.shards[pid])})}
        return Message(RecordDict(reply), reply_to=msg)

    @server_app.main()
    def main(grid: Grid, context: Context) -> None:
        torch.set_num_threads(1)
        work = Workload(spec)
        nodes = spec.federation.num_clients
        strategy = FedAvg(fraction_train=1.0, fraction_evaluate=0.0, min_train_nodes=nodes,
                          min_evaluate_nodes=0, min_available_nodes=nodes)

        def evaluate(rnd: int, record: ArrayRecord) -> MetricRecord:
            figures = {"accuracy": work.accuracy({k: v.numpy() for k, v in record.items()})}
            if rnd > 0:
                clock(rnd, figures)
            return MetricRecord(figures)

        initial = ArrayRecord({k: Array(np.ascontiguousarray(v)) for k, v in work.initial().items()})
        strategy.start(grid, initial, num_rounds=spec.federation.num_server_rounds,
                       evaluate_fn=evaluate)

    return server_app, client_app


class Recorder:
    """A round clock: keeps (perf_counter() at the round's end, its figures), and the CPU
    seconds of this process tree at its start and at each round's end."""

    def __init__(self) -> None:
        self.rounds: list[tuple[float, dict[str, float]]] = []
        self.cpu_start = tree_cpu_seconds()
        self.cpu_ends: list[float] = []

    def __call__(self, rnd: int, figures: dict[str, float]) -> None:
        self.rounds.append((time.perf_counter(), dict(figures)))
        self.cpu_ends.append(tree_cpu_seconds())

    def round_cpu_seconds(self) -> list[float]:
        return per_round(self.cpu_start, self.cpu_ends)
