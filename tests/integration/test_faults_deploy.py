"""Claims about faults in real gRPC deployments (TLS + node auth, `fedvault node` SuperNodes):
a killed SuperNode that is restarted with its key rejoins, and a killed ServerApp's run is
finished by `--resume` on the model an uninterrupted run ends on."""

from __future__ import annotations

import json
import os
import signal
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from server.run_dir import RunDirectory
from server.scenario import resolve
from simulations.deploy.local_federation import LocalFederation
from simulations.deploy.scenario import APP_DIR, deploy, fedvault_node_command, run_config
from simulations.deploy.faults import cmdline, kill_node_mid_round
from simulations.deploy.processes import all_processes, descendants

# Real deployments that wait out heartbeats (rejoin) and a killed ServerApp: 2-3 min each on
# an idle 2-core box, so CI (`-m "not slow"`) leaves them to `make test-all` / `-m integration`.
pytestmark = [pytest.mark.integration, pytest.mark.slow]

# A live node's ClientApp may take tens of seconds to start on a loaded 2-core machine:
# the timeouts leave room for it (only a killed node should ever miss a round).
SMALL = {"num-clients": "3", "fedavg.local-epochs": "1", "data.dataset": "digits",
         "round-timeout": "60", "node-wait-timeout": "120"}
# Deployed and uninterrupted runs agree to float32 rounding at most: local training is
# seeded by (seed, round, partition) and updates are aggregated in partition order.
MODEL_TOLERANCE = 1e-6


def _metrics(run_dir: Path) -> list[dict]:
    return [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]


def test_a_killed_supernode_restarted_with_its_key_rejoins_a_later_round(tmp_path):
    # Flower 1.39 re-activates a node id only after its heartbeats expired (~60 s after the
    # kill): the rounds must outlast that, plus the node's restart and one rejoin probe. With
    # `fedvault node`'s long-lived ClientApp worker a round of this size takes ~5 s, so 8
    # rounds ended before the node was back: 30 leave it ~2.5 min at that pace.
    overrides = {**SMALL, "num-server-rounds": "30"}
    run_dir, stamp, feds = tmp_path / "run", {}, []

    def kill_then_restart(fed: LocalFederation) -> None:
        kill_node_mid_round(fed, "node-1", stamp)
        if "killed_at" in stamp:
            stamp["restarted_as"] = fed.restart_node(1)  # same key: same node id, once offline

    def on_started(fed):
        feds.append(fed)
        threading.Thread(target=kill_then_restart, args=(fed,), daemon=True).start()

    status = deploy("fedavg", resolve("fedavg", overrides), overrides, nodes=3, run_dir=run_dir,
                    on_started=on_started)
    events = (run_dir / "events.log").read_text()
    assert status == "finished:completed", events
    assert "round 1 train:" in events and "(partition 1) sent no reply within 60 s" in events
    assert "(partition 1) answers again: it rejoins the federation" in events
    replies = [m["replies"] for m in _metrics(run_dir)]
    assert replies[0] <= 2 and replies[-1] == 3, replies  # trained without it, then with it again
    assert not feds[0].group.survivors(), "a Flower process outlived the deployment"


def _kill_serverapp_after_round_1(fed: LocalFederation, run_dir: Path, timeout: float = 300) -> None:
    """SIGKILL the run's flwr-serverapp once round 1's checkpoint exists (the SuperLink lives)."""
    superlink = fed.group.pids()["superlink"]
    deadline = time.monotonic() + timeout
    while not (run_dir / "checkpoint" / "latest.npz").exists():
        assert time.monotonic() < deadline, "round 1 never checkpointed"
        fed.group.track()
        time.sleep(0.1)
    fed.group.track()
    servers = [p.pid for p in descendants(superlink, all_processes()) if "flwr-serverapp" in cmdline(p.pid)]
    assert servers, "no flwr-serverapp found below the SuperLink"
    for pid in servers:
        os.kill(pid, signal.SIGKILL)


def test_a_killed_serverapp_is_resumed_from_its_run_directory_to_the_uninterrupted_model(tmp_path):
    overrides = {**SMALL, "num-server-rounds": "2"}
    full, killed = tmp_path / "full", tmp_path / "killed"
    with LocalFederation(tmp_path / "fed", 3, node_command=fedvault_node_command) as fed:
        assert fed.wait(fed.submit(APP_DIR, run_config("fedavg", overrides, full, True)), 300) \
            == "finished:completed"
        run_id = fed.submit(APP_DIR, run_config("fedavg", overrides, killed, True))
        _kill_serverapp_after_round_1(fed, killed)
        fed.flwr("stop", str(run_id), fed.connection, check=False)
        assert not (killed / "summary.json").exists()
        assert [m["round"] for m in _metrics(killed)] == [1]
        resumed = fed.submit(APP_DIR, run_config("fedavg", {}, killed, True, resume=True))
        assert fed.wait(resumed, 300) == "finished:completed", (killed / "events.log").read_text()
        group = fed.group
    assert not group.survivors()
    expected, _ = RunDirectory(full).load_checkpoint()
    got, state = RunDirectory(killed).load_checkpoint()
    assert state["round"] == 2 and set(got) == set(expected)
    assert max(float(np.max(np.abs(got[k] - expected[k]))) for k in expected) <= MODEL_TOLERANCE
    assert "resumed from the checkpoint of round 1" in (killed / "events.log").read_text()
    assert [m["accuracy"] for m in _metrics(killed)] == pytest.approx(
        [m["accuracy"] for m in _metrics(full)], abs=1e-9)
