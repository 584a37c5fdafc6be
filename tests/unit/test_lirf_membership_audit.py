"""Claims about LIRF's membership audit as it crosses the wire: the owner's ROC curve is
bounded and well formed (methods/lirf/metrics.py), and the server rejects any audit reply
that is not (server/lirf.py), whatever the reply holds."""

import numpy as np
import pytest
from flwr.app import ConfigRecord, Message, MetricRecord, RecordDict
from flwr.supercore.task_identity import TaskIdentity
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.metrics import auc, roc_curve

from methods.lirf.metrics import membership_auc, membership_roc, roc_problem
from protos.contract import (CONFIG, DEPOSIT_ACCURACY, DEPOSIT_CLASSES, MAX_ROC_POINTS, METRICS,
                            MIA_AUC, ROC_FPR, ROC_TPR)
from server.lirf_checks import audit_check as _audit_check

pytestmark = pytest.mark.unit


def _losses(n_members: int, n_nonmembers: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    return rng.exponential(1.0, n_members), rng.exponential(1.3, n_nonmembers)


def test_a_long_roc_curve_is_thinned_to_the_bound_keeping_both_ends_and_its_shape():
    members, nonmembers = _losses(2000, 2000)
    fpr, tpr = membership_roc(members, nonmembers, max_points=MAX_ROC_POINTS)
    full_fpr, _, _ = roc_curve(np.r_[np.ones(2000), np.zeros(2000)], -np.r_[members, nonmembers])
    assert len(full_fpr) > MAX_ROC_POINTS == len(fpr) == len(tpr)
    assert (fpr[0], tpr[0], fpr[-1], tpr[-1]) == (0.0, 0.0, 1.0, 1.0)
    assert roc_problem(fpr.tolist(), tpr.tolist(), max_points=MAX_ROC_POINTS) is None
    assert auc(fpr, tpr) == pytest.approx(membership_auc(members, nonmembers), abs=0.01)


def test_a_short_roc_curve_travels_whole():
    members, nonmembers = [0.1, 0.4, 0.2], [0.3, 0.9]
    fpr, tpr = membership_roc(members, nonmembers, max_points=MAX_ROC_POINTS)
    full_fpr, full_tpr, _ = roc_curve([1, 1, 1, 0, 0], -np.asarray(members + nonmembers))
    assert np.array_equal(fpr, full_fpr) and np.array_equal(tpr, full_tpr)


@settings(max_examples=60, deadline=None)
@given(st.integers(1, 300), st.integers(1, 300), st.integers(2, 80), st.integers(0, 2**16))
def test_the_thinned_curve_is_always_a_valid_bounded_roc(n_members, n_nonmembers, bound, seed):
    members, nonmembers = _losses(n_members, n_nonmembers, seed)
    members[: n_members // 2] = 1.0  # ties too
    fpr, tpr = membership_roc(members, nonmembers, max_points=bound)
    assert roc_problem(fpr.tolist(), tpr.tolist(), max_points=bound) is None


@pytest.mark.parametrize("fpr, tpr, why", [
    ([0.0, 1.0], [0.0], "values"),
    ([0.0] + [0.5] * MAX_ROC_POINTS + [1.0], [0.0] + [0.5] * MAX_ROC_POINTS + [1.0], "values"),
    ([0.0, 1.5], [0.0, 1.0], "outside"),
    ([0.0, float("nan")], [0.0, 1.0], "outside"),
    ([0.0, 0.6, 0.4, 1.0], [0.0, 0.5, 0.7, 1.0], "monotone"),
    ([0.1, 1.0], [0.0, 1.0], "(0, 0)"),
    ([0.0, 0.9], [0.0, 1.0], "(1, 1)"),
    ([0.0, True], [0.0, 1.0], "floats"),
    (None, [0.0, 1.0], "floats"),
    ("0,1", "0,1", "floats"),
])
def test_roc_problem_names_what_is_wrong(fpr, tpr, why):
    assert why in roc_problem(fpr, tpr, max_points=MAX_ROC_POINTS)


def _message(content: RecordDict) -> Message:
    TaskIdentity.run_id = TaskIdentity.node_id = TaskIdentity.task_id = 1  # Message() needs one
    return Message(content, dst_node_id=1, message_type="evaluate")


def _reply(**metrics) -> Message:
    good = {MIA_AUC: 0.52, DEPOSIT_ACCURACY: 0.9, ROC_FPR: [0.0, 0.4, 1.0],
            ROC_TPR: [0.0, 0.5, 1.0], "num-examples": 300}
    return _message(RecordDict({METRICS: MetricRecord({**good, **metrics}),
                                CONFIG: ConfigRecord({DEPOSIT_CLASSES: [0, 1, 2]})}))


def test_the_server_accepts_an_honest_audit_reply():
    assert _audit_check(10)(_reply()) is None


@pytest.mark.parametrize("metrics, why", [
    ({MIA_AUC: 1.7}, MIA_AUC),
    ({MIA_AUC: float("nan")}, MIA_AUC),
    ({MIA_AUC: 1}, MIA_AUC),  # an int is not the float the owner sends
    ({DEPOSIT_ACCURACY: -0.1}, DEPOSIT_ACCURACY),
    ({ROC_FPR: np.linspace(0, 1, 500).tolist(), ROC_TPR: np.linspace(0, 1, 500).tolist()}, "pairs"),
    ({ROC_TPR: [0.0, 0.9, 0.5]}, "monotone"),
])
def test_the_server_rejects_an_audit_reply_out_of_range(metrics, why):
    assert why in _audit_check(10)(_reply(**metrics))


def test_the_server_rejects_an_audit_reply_without_figures_or_classes():
    empty = _message(RecordDict({}))
    assert MIA_AUC in _audit_check(10)(empty)
    reply = _reply()
    reply.content[CONFIG] = ConfigRecord({DEPOSIT_CLASSES: [0, 12]})
    assert "deposit classes" in _audit_check(10)(reply)


metric_values = st.one_of(st.floats(allow_nan=True), st.integers(-2**63, 2**63 - 1),
                          st.lists(st.floats(allow_nan=True), max_size=80),
                          st.lists(st.integers(-2**63, 2**63 - 1), max_size=80))


@settings(max_examples=150, deadline=None)
@given(st.dictionaries(st.sampled_from([MIA_AUC, DEPOSIT_ACCURACY, ROC_FPR, ROC_TPR]),
                       metric_values))
def test_the_audit_check_never_raises_on_any_reply(metrics):
    result = _audit_check(10)(_reply(**metrics))
    assert result is None or isinstance(result, str)
