"""Claims about the server's own accountant (server/audit/accounting.py, dp-accounting)."""

from __future__ import annotations

import pytest

from clients.privacy import epsilon_of
from server.audit.accounting import (
    SERVER_METHOD,
    epsilon,
    epsilon_at_deltas,
    epsilon_curve,
    noise_for,
)

pytestmark = pytest.mark.unit

HISTORY = [(1.08, 1 / 14, 14)] * 5


@pytest.mark.parametrize("node", ["prv", "rdp"])
def test_the_server_rederives_the_nodes_opacus_epsilon_within_one_percent(node):
    server = epsilon(HISTORY, 1e-5, SERVER_METHOD[node])
    assert server == pytest.approx(epsilon_of(HISTORY, 1e-5, node), rel=0.01)


def test_the_note_reference_values_of_each_accountant():
    # σ=1, q=0.01, 1000 steps, δ=1e-5 (design notes §1, not shipped): RDP 2.101, PRV 1.838.
    assert epsilon([(1.0, 0.01, 1000)], 1e-5, "rdp") == pytest.approx(2.101, abs=2e-3)
    assert epsilon([(1.0, 0.01, 1000)], 1e-5, "pld") == pytest.approx(1.838, rel=0.01)


@pytest.mark.parametrize("method", ["rdp", "pld"])
def test_the_curve_is_each_prefix_and_never_decreases(method):
    curve = epsilon_curve(HISTORY, 1e-5, method)
    assert curve[-1] == pytest.approx(epsilon(HISTORY, 1e-5, method))
    assert curve[1] == pytest.approx(epsilon(HISTORY[:2], 1e-5, method))
    assert all(b > a for a, b in zip(curve, curve[1:]))


def test_a_smaller_delta_costs_more_epsilon():
    eps = epsilon_at_deltas(HISTORY, [1e-3, 1e-5, 1e-7], "pld")
    assert eps[0] < eps[1] < eps[2]


@pytest.mark.parametrize("q, steps", [(1.0, 10), (1 / 16, 320)])
def test_noise_for_a_target_spends_it_and_no_more(q, steps):
    sigma = noise_for(3.0, 1e-5, q, steps, "rdp")
    assert 2.99 <= epsilon([(sigma, q, steps)], 1e-5, "rdp") <= 3.0
