"""Claim: the Ray that `fedvault simulate` starts on this machine refuses callers without its
secret token (its GCS and raylets listen on every interface: without Ray's token
authentication anyone on the network who reaches them could run code as the user)."""

from __future__ import annotations

import subprocess
import sys

import pytest

from tests.conftest import REPO, isolated_env

# slow (55 s: a real Ray and three probes); CI checks fedvault's side, that the local Ray
# starts with token authentication and a fresh token (tests/unit/test_local_ray_token.py)
pytestmark = [pytest.mark.integration, pytest.mark.slow]

DRIVER = """
import logging, os, subprocess, sys
from simulations.simulate import private_local_ray
private_local_ray()  # what run_in_process does before Flower starts Ray
import ray
ray.init(include_dashboard=False, logging_level=logging.ERROR, num_cpus=1)

@ray.remote
def answer():
    return 42

print("TASK", ray.get(answer.remote()), flush=True)
address = ray.get_runtime_context().gcs_address
stranger = {k: v for k, v in os.environ.items() if not k.startswith("RAY_AUTH")}
for name, env in (("NO_TOKEN", stranger),
                  ("WRONG_TOKEN", {**stranger, "RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": "0" * 64}),
                  ("OWN_TOKEN", dict(os.environ))):  # the control: the probe itself can join
    probe = subprocess.run(
        [sys.executable, "-c", "import logging, ray; "
         f"ray.init(address={address!r}, logging_level=logging.ERROR); print('JOINED')"],
        env=env, capture_output=True, text=True, timeout=120)
    print(name, "JOINED" in probe.stdout, flush=True)
ray.shutdown()
"""


def test_a_local_ray_refuses_a_caller_without_its_token(tmp_path):
    env = {k: v for k, v in isolated_env(tmp_path).items() if not k.startswith("RAY_AUTH")}
    proc = subprocess.run([sys.executable, "-c", DRIVER], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=400)
    out = proc.stdout
    assert proc.returncode == 0, proc.stdout + proc.stderr[-3000:]
    assert "TASK 42" in out  # the run's own workers have the token
    assert "OWN_TOKEN True" in out, out + proc.stderr[-3000:]  # so a refusal means something
    assert "NO_TOKEN False" in out and "WRONG_TOKEN False" in out, out + proc.stderr[-3000:]
