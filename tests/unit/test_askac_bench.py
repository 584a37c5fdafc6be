"""The Ask-AC bench's bands (simulations/bench/askac.py) on hand-made summaries."""

import pytest

from simulations.bench.askac import judge

pytestmark = pytest.mark.unit


def _summary(askac_train=(300, 480, 470), askac_greedy=(500, 500, 400), queries=1500,
             vanilla_greedy=(200, 500, 300)):
    return {"return_askac": {"train": list(askac_train), "greedy": list(askac_greedy)},
            "return_continuous_monitoring": {"train": [500, 500, 500], "greedy": [200, 300, 150]},
            "return_vanilla": {"train": [150, 180, 190], "greedy": list(vanilla_greedy)},
            "advisor_queries_askac": queries, "advisor_queries_cm": 10240}


def test_a_run_inside_every_band_passes_all_of_them():
    assert all(b["pass"] for b in judge({0: _summary(), 1: _summary()}).values())


@pytest.mark.parametrize("over, band", [
    ({"askac_train": (500, 449, 500)}, "later-levels"),  # < 90 % of CM on level 2
    ({"queries": 3100}, "queries"),  # > 30 % of CM's 10240
    ({"askac_greedy": (500, 500, 300)}, "greedy-vs-vanilla"),  # ties and a loss: 1 win of 3
])
def test_one_seed_outside_a_band_fails_that_band_only(over, band):
    verdicts = judge({0: _summary(), 1: _summary(**over)})
    assert not verdicts[band]["pass"] and verdicts[band]["seed_pass"] == {0: True, 1: False}
    assert all(v["pass"] for name, v in verdicts.items() if name != band)


def test_level_one_is_not_part_of_the_later_levels_band():
    assert judge({0: _summary(askac_train=(10, 500, 500))})["later-levels"]["pass"]
