"""Claims about scenario resolution and `--set` parsing."""

import pytest

from methods.config import ConfigError
from methods.resolve import parse_run_spec, run_spec_from_json, valid_keys
from server.scenario import parse_overrides, resolve, scenario_names

pytestmark = pytest.mark.unit


def test_default_scenario_resolves_to_ten_dirichlet_clients():
    spec = resolve("fedavg")
    assert spec.method_name == "fedavg"
    assert spec.federation.num_clients == 10
    assert spec.data.partitioner == "dirichlet" and spec.data.dirichlet_alpha == 0.5


def test_set_overrides_are_typed_by_the_dataclass_fields():
    spec = resolve("fedavg", parse_overrides(["num-server-rounds=3", "fedavg.lr=0.01", "data.partitioner=iid"]))
    assert spec.federation.num_server_rounds == 3
    assert spec.method.lr == pytest.approx(0.01)
    assert spec.data.partitioner == "iid"


def test_unknown_key_names_the_valid_keys():
    with pytest.raises(ConfigError) as err:
        resolve("fedavg", {"num-rounds": "3"})
    assert "num-rounds" in str(err.value) and "num-server-rounds" in str(err.value)


@pytest.mark.parametrize(
    "key,value",
    [("num-server-rounds", "three"), ("num-server-rounds", "2.5"), ("fedavg.lr", "-1"),
     ("fraction-train", "0"), ("min-nodes", "99"), ("round-timeout", "0")],
)
def test_bad_values_are_config_errors(key, value):
    with pytest.raises(ConfigError):
        resolve("fedavg", {key: value})


def test_unknown_scenario_lists_the_available_ones():
    with pytest.raises(ConfigError) as err:
        resolve("no-such-scenario")
    assert "fedavg" in str(err.value)
    assert "fedavg" in scenario_names()


def test_malformed_set_item_is_an_error():
    with pytest.raises(ConfigError):
        parse_overrides(["num-server-rounds"])


def test_spec_survives_a_json_round_trip():
    spec = resolve("fedavg", {"seed": "7", "fedavg.batch-size": "16"})
    again = run_spec_from_json(spec.to_json())
    assert again == spec


def test_unknown_section_is_refused():
    with pytest.raises(ConfigError) as err:
        parse_run_spec({"method": "fedavg", "lirf.tau": 4})
    assert "lirf.tau" in str(err.value)


def test_valid_keys_cover_every_section():
    keys = valid_keys("fedavg")
    assert "num-server-rounds" in keys and "data.dirichlet-alpha" in keys and "fedavg.lr" in keys
