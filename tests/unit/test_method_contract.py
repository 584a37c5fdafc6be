"""Every registered method honours the Method interface on tiny data."""

import dataclasses

import numpy as np
import pytest
import torch

from methods.registry import get_method, method_names
from methods.resolve import parse_run_spec

pytestmark = pytest.mark.unit


@pytest.fixture(params=method_names())
def method_and_spec(request):
    method = get_method(request.param)
    return method, parse_run_spec({"method": method.name})


def test_one_local_step_lowers_nothing_to_nan_and_shared_state_round_trips(method_and_spec):
    method, spec = method_and_spec
    torch.manual_seed(0)
    model = method.build_model(spec)
    data = method.train_dataset(spec).subset(np.arange(8))
    batch = (torch.tensor(data.x), torch.tensor(data.y))
    before = {k: v.copy() for k, v in method.shared_state(model).items()}
    model.train()
    loss = method.train_step(model, batch, spec)
    assert loss.ndim == 0 and torch.isfinite(loss)
    loss.backward()
    torch.optim.SGD(model.parameters(), lr=0.1).step()
    after = method.shared_state(model)
    assert set(after) == set(before)
    assert any(not np.array_equal(before[k], after[k]) for k in before), "a step changed nothing"
    fresh = method.build_model(spec)
    method.load_shared_state(fresh, after)
    for key, value in method.shared_state(fresh).items():
        np.testing.assert_array_equal(value, after[key])


def test_evaluate_reports_finite_figures_and_accuracies_in_range(method_and_spec):
    method, spec = method_and_spec
    torch.manual_seed(0)
    model = method.build_model(spec)
    figures = method.evaluate(model, method.test_dataset(spec).subset(np.arange(16)))
    assert figures and all(np.isfinite(float(v)) for v in figures.values())
    for key in ("accuracy", "auroc"):  # the figures that are fractions wherever they appear
        if key in figures:
            assert 0.0 <= figures[key] <= 1.0


def test_config_dataclass_is_frozen_and_documented(method_and_spec):
    method, spec = method_and_spec
    first = dataclasses.fields(spec.method)[0].name
    with pytest.raises(dataclasses.FrozenInstanceError):
        setattr(spec.method, first, None)
    assert method.config_cls.__doc__
