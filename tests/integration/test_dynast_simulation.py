"""Claims about DynaST on Flower's Simulation Engine (Ray), through `fedvault simulate dynast`.

One short run (1 round per stage, 8 pairs per family, 12 test pairs): it checks the
federated multi-stage flow, the summary keys and the example images, not the
bands (tests/slow/test_dynast_bands.py).
"""

from __future__ import annotations

import json

import pytest

pytestmark = pytest.mark.integration

SHORT = ["--set", "num-server-rounds=1", "--set", "dynast.pairs-per-family=8",
         "--set", "dynast.test-pairs=12"]
VARIANTS = {"cascade", "coarse_only", "dense"}


def test_simulate_dynast_trains_every_variant_federated_and_reports_the_issue_summary(fedvault_cli, tmp_path):
    out = tmp_path / "run"
    fedvault_cli("simulate", "dynast", "--out", str(out), "--seed", "1", *SHORT, timeout=300, check=True)
    summary = json.loads((out / "summary.json").read_text())
    for key in ("warp_l1", "recon_l1"):
        assert set(summary[key]) == VARIANTS
        assert all(0.0 < v < 1.0 for v in summary[key].values()), key
    # Counted entries: the cascade's sparse layers compute a few % of the all-scale dense ones.
    assert 0.0 < summary["attention_fraction"] < 0.2
    assert summary["keys_per_query_std"] > 0.0
    records = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [r["stage"] for r in records if "stage" in r] == ["cascade", "coarse_only", "dense"]
    assert all(r["replies"] == 3 for r in records if "stage" in r)  # every node trained every stage
    assert {p.name for p in (out / "examples").glob("*.png")} == {f"{v}.png" for v in VARIANTS}
