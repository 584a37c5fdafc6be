"""Checks a run's config against its data before anything is written or started.

A config file cannot know that `data.root` is missing, that a CIFAR pickle is
truncated, or that `lirf.deposit-classes=42` names a class the data set lacks;
without this check those surface minutes later inside the ServerApp (exit 1,
a half-written run directory). Here they are ConfigErrors: exit 2, one line.
The same goes for combinations the data make impossible: more clients than
training examples, a batch larger than the data set, a split the partitioner
cannot make (it would fail on every node).
"""

from __future__ import annotations

import sys

from methods.base import Method, RunSpec
from methods.common.datasets import ArrayDataset, DatasetError
from methods.config import ConfigError
from methods.registry import get_method, is_builtin
from methods.user_method import describe_exception
from server.evaluation import check_evaluation


def check_runnable(spec: RunSpec) -> None:
    """Load the run's data (both splits) and let the method check its config against it."""
    method = get_method(spec.method_name)
    try:
        test = method.test_dataset(spec)
        train = method.fit_dataset(spec)
        method.validation_dataset(spec)  # a split the data cannot give fails here, not in a node
    except DatasetError as exc:
        raise ConfigError(f"data: {exc}") from exc
    except ValueError as exc:  # stratified_holdout: too few examples for the fraction
        if not spec.data.validation_fraction:
            raise
        raise ConfigError(f"data.validation-fraction={spec.data.validation_fraction}: "
                          f"{exc}") from exc
    if not is_builtin(spec.method_name):
        try_user_method(method, spec, train, test)
    method.check_data(spec, test.num_classes)
    check_sizes(spec, len(train), train.name)
    try:  # what every simulated node computes first: refuse a split it cannot make
        method.node_partition(spec, train.y, spec.federation.num_clients)
    except ValueError as exc:
        raise ConfigError(f"data: {spec.data.partitioner} split into num-clients="
                          f"{spec.federation.num_clients} is impossible: {exc}") from exc
    check_evaluation(spec, method, train, test)  # federated evaluation, test set vs nodes' data


def check_sizes(spec: RunSpec, num_train: int, name: str) -> None:
    """Every node needs at least one example, and no batch can exceed the data set."""
    fed, where = spec.federation, f"the {num_train} training examples of {name!r}"
    if fed.num_clients > num_train:
        raise ConfigError(f"num-clients must be in [1, {num_train}] ({where}; "
                          f"got {fed.num_clients})")
    batch_size = getattr(spec.method, "batch_size", None)
    if isinstance(batch_size, int) and batch_size > num_train:
        raise ConfigError(f"{spec.section}.batch-size must be in [1, {num_train}] ({where}; "
                          f"got {batch_size})")


def try_user_method(method: Method, spec: RunSpec, train: ArrayDataset, test: ArrayDataset) -> None:
    """One train_step and one evaluation of a user's method on 2 examples of each split.

    A model that does not fit the images, or a train_step that returns something the loop
    cannot step on, would otherwise fail inside every client, minutes later, as a
    traceback through fedvault; here it is one line naming the user's file (exit 2).
    Built-in methods are covered by their tests (tests/unit/test_method_contract.py)."""
    import torch

    from server.workflows import WORKFLOWS

    where = f"method {spec.method_name!r} ({sys.modules[type(method).__module__].__file__})"
    if method.workflow not in WORKFLOWS:
        raise ConfigError(f"{where}: workflow must be one of {', '.join(WORKFLOWS)} "
                          f"(got {method.workflow!r})")
    two = f"2 examples of {train.name!r} (x {tuple(train.x[:2].shape)}, {test.num_classes} classes)"
    try:
        torch.manual_seed(spec.federation.seed)
        model = method.build_model(spec)
        if not isinstance(model, torch.nn.Module):
            raise ConfigError(f"{where}: build_model returned a {type(model).__name__}, "
                              "not a torch.nn.Module")
        model.train()
        loss = method.train_step(model, (torch.tensor(train.x[:2]), torch.tensor(train.y[:2])), spec)
        _check_loss(loss, where)
        loss.backward()
        method.load_shared_state(model, method.shared_state(model))  # what travels, and back
        held_out = test.subset(range(min(2, len(test.y))))
        if type(method).evaluate is Method.evaluate:
            _check_logits(model, held_out, where, two)
        method.evaluate(model, held_out)
    except ConfigError:
        raise
    except Exception as exc:
        raise ConfigError(f"{where} fails on {two}: {describe_exception(exc)}") from None


def _check_loss(loss: object, where: str) -> None:
    import torch

    if not isinstance(loss, torch.Tensor) or loss.numel() != 1:
        got = f"a tensor of shape {tuple(loss.shape)}" if isinstance(loss, torch.Tensor) \
            else f"a {type(loss).__name__}"
        raise ConfigError(f"{where}: train_step must return the batch's loss as a scalar "
                          f"tensor (e.g. cross_entropy(model(x), y)), got {got}")
    if not loss.requires_grad:
        raise ConfigError(f"{where}: train_step returned a loss without a gradient (computed "
                          "under torch.no_grad(), .detach()ed or .item()ed?): the loop cannot "
                          "step on it")


def _check_logits(model, data: ArrayDataset, where: str, two: str) -> None:
    # The default evaluate reads the model's output as one logit per class.
    import torch

    with torch.no_grad():
        out = model.eval()(torch.tensor(data.x))
    if not isinstance(out, torch.Tensor) or tuple(out.shape) != (len(data.y), data.num_classes):
        shape = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
        raise ConfigError(f"{where}: build_model's model gives {shape} on {two}; the default "
                          f"evaluate needs ({len(data.y)}, {data.num_classes}) logits, one per "
                          "class (or override evaluate)")
