"""The LIRF bench's band checks (simulations/bench/lirf.py) on hand-made summaries."""

import pytest

from simulations.bench.lirf import bands, row

pytestmark = pytest.mark.unit


def _summary(**over):
    summary = {
        "original": {"pre_acc": 0.96, "dep_acc": 0.93, "avg_acc": 0.95},
        "target": {"pre_acc": 0.955, "dep_acc": 0.20, "F": 0.73, "H": 0.83},
        "recovered": {"pre_acc": 0.94, "dep_acc": 0.94, "avg_acc": 0.95},
        "retrain": {"pre_acc": 0.97, "dep_acc": 0.0},
        "mia_auc": {"original": 0.53, "target": 0.52, "retrain": 0.52},
        "deposit_seconds": 3.0, "retrain_seconds": 18.0, "phase0_seconds": 25.0,
        "deposit_module_on_server": False,
    }
    for key, value in over.items():
        model, _, field = key.partition("__")
        if field:
            summary[model] = {**summary[model], field: value}
        else:
            summary[key] = value
    return summary


def test_a_run_inside_every_band_passes_all_of_them():
    assert all(b["pass"] for b in bands(_summary()).values())
    assert row(_summary())["target.H"] == 0.83


@pytest.mark.parametrize("over, band", [
    ({"target__dep_acc": 0.31}, "target_dep_acc"),
    ({"target__pre_acc": 0.93}, "target_pre_drop"),
    ({"target__H": 0.77}, "target_H"),
    ({"recovered__dep_acc": 0.90}, "recovered_dep_diff"),
    ({"recovered__pre_acc": 0.92}, "recovered_pre_diff"),
    ({"retrain_seconds": 8.9}, "retrain_over_deposit_seconds"),
    ({"deposit_module_on_server": True}, "deposit_module_on_server"),
])
def test_each_band_fails_on_its_own_violation(over, band):
    verdicts = bands(_summary(**over))
    assert not verdicts[band]["pass"]
    assert all(v["pass"] for name, v in verdicts.items() if name != band)


def test_recovered_must_stay_within_the_band_both_ways_as_the_issue_says():
    verdicts = bands(_summary(recovered__dep_acc=0.945, recovered__pre_acc=0.985))
    assert verdicts["recovered_dep_diff"]["pass"] and verdicts["recovered_pre_diff"]["pass"]
    verdicts = bands(_summary(recovered__dep_acc=0.99))  # T̃ beats T_0 by 0.06 on D_r's classes
    assert not verdicts["recovered_dep_diff"]["pass"]
    assert verdicts["recovered_dep_diff"]["value"] == pytest.approx(0.06)


def test_a_difference_of_exactly_the_band_counts_as_within():
    # 196/200 vs 192/200: four test images, exactly 0.02, not 0.020000000000000018
    verdicts = bands(_summary(original__dep_acc=192 / 200, recovered__dep_acc=196 / 200))
    assert verdicts["recovered_dep_diff"]["pass"]
    assert not bands(_summary(original__dep_acc=192 / 200,
                              recovered__dep_acc=197 / 200))["recovered_dep_diff"]["pass"]
