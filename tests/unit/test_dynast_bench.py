"""Claims about `fedvault bench dynast`'s verdicts (simulations/bench/dynast.py), on made-up summaries."""

import pytest

from simulations.bench.dynast import judge

pytestmark = pytest.mark.unit


def _summary(warp, recon, fraction_32=0.02, std=3.0):
    variants = ("cascade", "coarse_only", "dense")
    return {"warp_l1": dict(zip(variants, warp)), "recon_l1": dict(zip(variants, recon)),
            "attention_fraction": fraction_32, "attention_fraction_32": fraction_32,
            "keys_per_query_std": std}


def test_every_band_passes_when_the_cascade_matches_dense_and_beats_coarse_only():
    bands = judge({0: _summary((0.030, 0.040, 0.030), (0.08, 0.11, 0.079)),
                   1: _summary((0.032, 0.040, 0.031), (0.08, 0.10, 0.078))})
    assert all(b["pass"] for b in bands.values()), bands


def test_an_unchanged_reconstruction_fails_the_coarse_only_band():
    bands = judge({0: _summary((0.030, 0.040, 0.030), (0.11, 0.11, 0.11))})
    assert not bands["cascade_beats_coarse_only"]["pass"]


def test_a_cascade_more_than_5_percent_worse_than_dense_fails():
    bands = judge({0: _summary((0.030, 0.040, 0.028), (0.08, 0.11, 0.08))})
    assert not bands["cascade_near_dense"]["pass"]


def test_too_many_entries_or_static_key_counts_fail_in_any_seed():
    bands = judge({0: _summary((0.03, 0.04, 0.03), (0.08, 0.1, 0.08)),
                   1: _summary((0.03, 0.04, 0.03), (0.08, 0.1, 0.08), fraction_32=0.25, std=0.0)})
    assert not bands["sparse_attention_fraction"]["pass"]
    assert not bands["dynamic_keys_per_query"]["pass"]
