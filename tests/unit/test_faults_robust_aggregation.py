"""Claims about optional robust aggregation (`aggregation = krum | median | trimmed-mean`)."""

import pytest

from methods.config import ConfigError
from protos.contract import ARRAYS
from protos.records import from_array_record, to_array_record
from server.runner import Job, run_job
from server.scenario import resolve
from tests.inprocess_grid import InProcessGrid, partition_nodes

pytestmark = pytest.mark.unit

FAST = {"num-clients": "5", "num-server-rounds": "2", "fedavg.local-epochs": "2",
        "data.partitioner": "iid", "data.dataset": "digits", "node-wait-timeout": "2"}
POISONER = 1003  # partition 3


def _poison(node_id, reply):
    """A model-poisoning node: finite, well-formed, far from everyone else's update."""
    if node_id != POISONER or ARRAYS not in reply.content:
        return reply
    arrays = from_array_record(reply.content[ARRAYS])
    reply.content[ARRAYS] = to_array_record({k: (-50.0 * v).astype(v.dtype) if v.dtype.kind == "f" else v
                                             for k, v in arrays.items()})
    return reply


def _accuracy(tmp_path, aggregation, tamper=None):
    spec = resolve("fedavg", {**FAST, "aggregation": aggregation})
    job = Job(spec=spec, run_dir=str(tmp_path / f"{aggregation}-{tamper is not None}"), scenario="fedavg")
    return run_job(InProcessGrid(partition_nodes(5), tamper=tamper), job)["accuracy"]


@pytest.fixture(scope="module")
def clean(tmp_path_factory):
    return _accuracy(tmp_path_factory.mktemp("clean"), "fedavg")


def test_one_poisoned_update_ruins_plain_fedavg(tmp_path, clean):
    assert clean > 0.6  # the honest federation learns (digits, 10 classes)
    assert _accuracy(tmp_path, "fedavg", _poison) < 0.2  # chance is 0.1


@pytest.mark.parametrize("aggregation", ["median", "trimmed-mean", "krum"])
def test_robust_aggregation_resists_one_poisoned_update(tmp_path, clean, aggregation):
    # The four honest updates carry the model: far above what FedAvg keeps (< 0.2).
    assert _accuracy(tmp_path, aggregation, _poison) > 0.5


@pytest.mark.parametrize(
    "over,needle",
    [({"aggregation": "mean"}, "aggregation must be one of"),
     ({"aggregation": "krum", "num-clients": "4"}, r"2f\+3"),
     ({"aggregation": "trimmed-mean", "num-clients": "2"}, "trimmed-mean needs")],
)
def test_an_unknown_or_unsatisfiable_aggregation_is_a_config_error(over, needle):
    with pytest.raises(ConfigError, match=needle):
        resolve("fedavg", {**FAST, **over})


def test_fedsa_refuses_a_robust_rule_rather_than_ignore_it(tmp_path):
    spec = resolve("fedsa", {"aggregation": "median", "node-wait-timeout": "2"})
    with pytest.raises(ConfigError, match="not supported by fedsa"):
        run_job(InProcessGrid(partition_nodes(6)), Job(spec=spec, run_dir=str(tmp_path / "r"), scenario="fedsa"))
