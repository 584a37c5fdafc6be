"""fedvault's side of the local Ray's token authentication: `run_in_process` hands Flower's
engine an environment with RAY_AUTH_MODE=token and a fresh secret token, before Ray starts,
and only for a Ray it starts itself. That Ray enforces the token is shown by
tests/integration/test_local_ray_auth.py (slow: a real Ray and three probes)."""

from __future__ import annotations

import os
import re

import pytest

import simulations.simulate as simulate

pytestmark = pytest.mark.unit


def _clear_ray_auth(monkeypatch) -> None:
    """Unset both variables now, and restore this process's own values after the test
    (setenv first: monkeypatch restores only what it recorded)."""
    for key in ("RAY_AUTH_MODE", "RAY_AUTH_TOKEN"):
        monkeypatch.setenv(key, "")
        monkeypatch.delenv(key)


@pytest.fixture
def seen_env(monkeypatch):
    """Runs `run_in_process` with Flower's run_simulation replaced: what Ray would inherit."""
    import flwr.simulation

    _clear_ray_auth(monkeypatch)
    seen: list[dict] = []
    monkeypatch.setattr(flwr.simulation, "run_simulation",
                        lambda **kwargs: seen.append({**dict(os.environ), **kwargs}))
    monkeypatch.setattr(simulate, "make_server_app", lambda job: None)

    def run(**kwargs):
        simulate.run_in_process(None, 2, **kwargs)
        return seen[-1]
    return run


def test_a_local_ray_starts_with_token_authentication_and_a_secret_token(seen_env):
    env = seen_env()
    assert env["RAY_AUTH_MODE"] == "token"
    assert re.fullmatch(r"[0-9a-f]{64}", env["RAY_AUTH_TOKEN"])  # 256 bits from the OS
    assert "address" not in env["backend_config"]["init_args"]


def test_each_process_draws_its_own_token(monkeypatch):
    tokens = set()
    for _ in range(3):
        _clear_ray_auth(monkeypatch)
        simulate.private_local_ray()
        tokens.add(os.environ["RAY_AUTH_TOKEN"])
    assert len(tokens) == 3


def test_a_cluster_address_or_the_users_own_mode_is_left_alone(seen_env, monkeypatch):
    env = seen_env(ray_address="10.0.0.1:6379")  # never contacted: run_simulation is replaced
    assert "RAY_AUTH_MODE" not in env and "RAY_AUTH_TOKEN" not in env
    monkeypatch.setenv("RAY_AUTH_MODE", "disabled")
    assert seen_env()["RAY_AUTH_MODE"] == "disabled"
