"""Claims about the performance benches' plumbing: ratios, verdicts, memory readings,
and that the baselines do the same training as fedvault (no timing is asserted)."""

import os
import subprocess
import sys
import time

import numpy as np
import pytest

from simulations.bench.perf import (flatness, per_round, ratio_check, round_seconds, steady_state,
                                    tree_cpu_seconds, tree_rss)

pytestmark = pytest.mark.unit


def test_a_ratio_is_of_medians_and_passes_only_at_or_below_its_target():
    check = ratio_check([1.0, 9.0, 1.2], [1.0, 1.0, 0.1], target=1.15)
    assert check["ratio"] == pytest.approx(1.2) and check["pass"] is False
    assert ratio_check([1.0], [1.0], target=1.0)["pass"] is True


def test_steady_state_leaves_out_the_engine_start_round():
    assert steady_state([30.0, 2.0, 2.2, 1.9]) == pytest.approx(2.0)
    assert round_seconds(10.0, [40.0, 42.0, 44.5]) == pytest.approx([30.0, 2.0, 2.5])


def test_flatness_fails_a_series_that_grows_more_than_the_tolerance():
    assert flatness([5, 9, 100, 101, 99, 100], after=2)["pass"] is True
    growing = flatness([100, 100, 100, 100, 110, 125], after=2)
    assert growing["pass"] is False and growing["max_deviation"] > 0.10


def test_tree_rss_counts_a_childs_memory():
    before = tree_rss()
    # The child holds 200 MB resident until we read its memory.
    child = subprocess.Popen([sys.executable, "-c", "b = bytearray(200 * 2**20); import time; time.sleep(30)"])
    try:
        deadline = time.monotonic() + 20
        while (now := tree_rss())["rss_bytes"] - before["rss_bytes"] < 150 * 2**20:
            assert time.monotonic() < deadline, "the child's 200 MB never showed up"
            time.sleep(0.1)
        assert now["processes"] >= before["processes"] + 1
        assert tree_rss(child.pid)["rss_bytes"] >= 150 * 2**20
    finally:
        child.kill()
        child.wait()
    assert tree_rss(os.getpid())["processes"] >= 1


def test_tree_cpu_seconds_counts_a_running_child_and_a_reaped_grandchild():
    # the child spins 0.3 CPU-s in a grandchild it waits for (reaped: its parent's cutime),
    # then 0.3 CPU-s itself, and sleeps until it is read
    burn = "import time\nt = time.process_time()\nwhile time.process_time() - t < 0.3: pass\n"
    script = (f"import subprocess, sys, time\nsubprocess.run([sys.executable, '-c', {burn!r}])\n"
              f"{burn}print('done', flush=True)\ntime.sleep(30)\n")
    before = tree_cpu_seconds()
    child = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    try:
        assert child.stdout.readline().strip() == "done"
        assert tree_cpu_seconds(child.pid) >= 0.55  # 0.6 spun, less the clock's rounding
        assert tree_cpu_seconds() - before >= 0.55
    finally:
        child.kill()
        child.wait()
    assert per_round(1.0, [1.5, 2.5]) == [0.5, 1.0]


def test_the_plain_loop_trains_exactly_what_fedvault_trains(tmp_path):
    import torch

    from clients.tasks import train_task
    from server.scenario import resolve
    from simulations.bench.vanilla_flower import Workload, weighted_mean

    torch.set_num_threads(1)
    # the bench's fedavg settings on the small digits set (seconds, not minutes)
    spec = resolve("fedavg", {"data.dataset": "digits", "fedavg.local-epochs": "1",
                              "num-server-rounds": "1"})
    work = Workload(spec)
    start = work.initial()
    ours = [train_task(spec, 1, start, {"partition-id": p, "num-partitions": 10})
            for p in (0, 1)]
    plain = [work.client_update(start, p, 1) for p in (0, 1)]
    for (arrays, _), mine in zip(ours, plain):
        assert all(np.array_equal(arrays[k], mine[k]) for k in arrays)
    # the two updates differ, so the average is not one client's weights in disguise
    mean = weighted_mean([(plain[0], 1), (plain[1], 3)])
    key = next(iter(mean))
    assert np.allclose(mean[key], 0.25 * plain[0][key] + 0.75 * plain[1][key])
    assert not np.allclose(plain[0][key], plain[1][key])


def test_scale_clients_share_shards_beyond_the_data_size():
    from simulations.bench.scale import scale_spec, shard_config, verdict

    assert shard_config({"partition-id": 2345, "num-partitions": 10_000}) == {
        "partition-id": 345, "num-partitions": 1_000}
    spec = scale_spec(10_000)
    assert round(spec.federation.fraction_train * 10_000) == 10
    assert spec.federation.pool_nodes == 10  # 10 Flower nodes whatever N
    flat = {"rss_per_round": [1, 2, 10, 10, 10], "steady_seconds": 1.0, "peak_rss": 10,
            "steady_cpu_seconds": 2.0}
    slow = {**flat, "steady_seconds": 1.5, "steady_cpu_seconds": 3.0}
    fat = {**flat, "peak_rss": 12}
    good = verdict({1000: flat, 10000: slow, 100000: flat})
    assert good["pass"] is True and good["largest_num_clients"] == 100000
    assert verdict({1000: flat, 100000: slow})["round_cpu_ratio"] == 1.5
    assert verdict({1000: flat, 100000: slow})["pass"] is False
    assert verdict({1000: flat, 10000: fat, 100000: flat})["pass"] is False


def test_wire_bytes_count_every_array_of_a_message():
    from flwr.app import ArrayRecord, ConfigRecord, Message, RecordDict

    from protos.records import to_array_record
    from simulations.bench.wire import MeteredGrid, tensor_bytes, wire_bytes

    MeteredGrid(1)  # sets the task identity Flower needs to create a Message
    small = RecordDict({"config": ConfigRecord({"x": 1})})
    big = RecordDict({"arrays": to_array_record({"w": np.zeros(10_000, np.float32)}),
                      "config": ConfigRecord({"x": 1})})
    assert tensor_bytes(big) == 40_000 and tensor_bytes(small) == 0
    assert isinstance(big["arrays"], ArrayRecord)
    sizes = [wire_bytes(Message(c, dst_node_id=1, message_type="train")) for c in (small, big)]
    assert 40_000 <= sizes[1] - sizes[0] <= 40_000 * 1.05
