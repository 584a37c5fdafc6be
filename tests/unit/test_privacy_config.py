"""Claims about the `dp` and `audit` config sections (methods/privacy_config.py, RunSpec)."""

from __future__ import annotations

import pytest

from methods.config import ConfigError
from methods.privacy_config import AuditConfig, DPConfig
from methods.resolve import parse_run_spec, run_spec_from_json, valid_keys

pytestmark = pytest.mark.unit


def test_dp_and_audit_are_off_unless_asked_for():
    spec = parse_run_spec({})
    assert spec.dp == DPConfig() and not spec.dp.enabled
    assert spec.audit == AuditConfig() and not spec.audit.enabled


def test_dp_keys_parse_from_strings_like_set_overrides():
    spec = parse_run_spec(
        {
            "dp.enabled": "true",
            "dp.target-epsilon": "3",
            "dp.delta": "1e-6",
            "dp.accountant": "rdp",
            "audit.enabled": "yes",
            "audit.canaries": "100",
        }
    )
    assert (spec.dp.enabled, spec.dp.target_epsilon, spec.dp.delta, spec.dp.accountant) == (
        True,
        3.0,
        1e-6,
        "rdp",
    )
    assert spec.audit.enabled and spec.audit.canaries == 100


def test_the_resolved_config_round_trips_through_json_with_its_dp_section():
    spec = parse_run_spec({"dp.enabled": True, "dp.noise-multiplier": 1.1, "audit.enabled": True})
    assert run_spec_from_json(spec.to_json()) == spec


def test_a_run_config_written_before_the_dp_section_existed_still_loads():
    flat = {
        k: v for k, v in parse_run_spec({}).to_flat().items() if not k.startswith(("dp.", "audit."))
    }
    assert parse_run_spec(flat).dp == DPConfig()


def test_valid_keys_list_the_dp_and_audit_keys():
    keys = valid_keys("fedavg")
    assert {"dp.target-epsilon", "dp.max-epsilon", "dp.grad-sample-mode", "audit.canaries"} <= set(
        keys
    )


@pytest.mark.parametrize(
    "flat, words",
    [
        ({"dp.level": "record"}, "dp.level"),
        ({"dp.accountant": "gdp"}, "dp.accountant"),
        ({"dp.delta": "1.5"}, "dp.delta"),
        ({"dp.max-grad-norm": "0"}, "dp.max-grad-norm"),
        ({"dp.epsilon": "3"}, "dp.target-epsilon"),  # unknown key: the message lists the valid ones
        ({"audit.holdout-fraction": "0.9"}, "audit.holdout-fraction"),
    ],
)
def test_bad_dp_values_and_unknown_keys_fail_loudly(flat, words):
    with pytest.raises(ConfigError, match=words.replace(".", r"\.")):
        parse_run_spec(flat)


def test_the_budget_defaults_to_the_target_epsilon():
    assert DPConfig(target_epsilon=2.0).budget == 2.0
    assert DPConfig(target_epsilon=2.0, max_epsilon=5.0).budget == 5.0
