"""Naming a model's layers by dotted path, reading a layer's output, and user model builders.

A method that reads an intermediate map (FedSA's Grad-CAM and hints, LIRF's split
point) names the layer in config as a dotted path of `model.named_modules()`:
"layer3", "layer3.0.conv2", "features". A wrong name is a ConfigError that lists
the valid ones, so a typo fails before anything runs (or, on a node, in the node's
error reply).

A user's own architecture is named "package.module:builder". Importing a module
runs its code, and a run's config reaches every node, so only a builder its author
marked with `@model_builder` is accepted: a config cannot make a node call an
arbitrary importable function.
"""

from __future__ import annotations

import importlib
from typing import Any, Callable

import torch
from torch import nn

from methods.common.user_code import check_allowed_on_node
from methods.config import ConfigError

MAX_LISTED_NAMES = 80  # a ConfigError lists at most this many valid names
_BUILDER_MARK = "__fedvault_model_builder__"


def module_names(model: nn.Module) -> list[str]:
    """Every dotted name `named_module` accepts, in definition order."""
    return [name for name, _ in model.named_modules() if name]


def _listed(names: list[str]) -> str:
    shown = ", ".join(names[:MAX_LISTED_NAMES])
    more = len(names) - MAX_LISTED_NAMES
    return shown + (f", … ({more} more)" if more > 0 else "")


def named_module(model: nn.Module, name: str, *, key: str = "layer") -> nn.Module:
    """The sub-module at dotted path `name`; a ConfigError naming `key` and the valid names."""
    modules = dict(model.named_modules())
    if not name or name not in modules:
        raise ConfigError(f"{key} = {name!r} is not a module of {type(model).__name__}; "
                          f"valid names: {_listed(module_names(model))}")
    return modules[name]


class _Reached(Exception):
    """Raised by a forward hook to stop a forward pass once the wanted layer has run."""


def layer_output(model: nn.Module, name: str, x: torch.Tensor, *,
                 key: str = "layer") -> torch.Tensor:
    """The output of layer `name` on input x, without running the layers after it.

    Autograd keeps the graph up to that layer, so the result can be trained through.
    """
    captured: list[torch.Tensor] = []

    def stop(_module, _inputs, output):
        captured.append(output)
        raise _Reached

    handle = named_module(model, name, key=key).register_forward_hook(stop)
    try:
        model(x)
    except _Reached:
        pass
    finally:
        handle.remove()
    if not captured or not isinstance(captured[0], torch.Tensor):
        raise ConfigError(f"{key} = {name!r} of {type(model).__name__} did not output one tensor "
                          "in the forward pass (name a layer the forward pass calls)")
    return captured[0]


def model_builder(fn: Callable[..., nn.Module]) -> Callable[..., nn.Module]:
    """Mark a function as a builder a config may name ("package.module:fn").

    The builder is called with keyword arguments `in_channels` and `num_classes`
    (plus any a checkpoint's description adds) and must return an nn.Module.
    """
    setattr(fn, _BUILDER_MARK, True)
    return fn


def import_builder(path: str, *, key: str = "arch") -> Callable[..., nn.Module]:
    """The builder at "package.module:fn", which must be marked with @model_builder."""
    module_name, sep, attr = path.partition(":")
    if not sep or not module_name or not attr:
        raise ConfigError(f"{key} = {path!r}: a user architecture is written "
                          "'package.module:builder'")
    check_allowed_on_node(module_name, f"{key} = {path!r}")
    try:
        builder = getattr(importlib.import_module(module_name), attr)
    except (ImportError, AttributeError) as exc:
        raise ConfigError(f"{key} = {path!r} cannot be imported here ({exc})") from exc
    if not getattr(builder, _BUILDER_MARK, False):
        raise ConfigError(f"{key} = {path!r} is not marked as a model builder; decorate it with "
                          "methods.common.modules.model_builder")
    return builder


def build_user_model(path: str, *, key: str = "arch", **kwargs: Any) -> nn.Module:
    """Call the marked builder at `path`; anything but an nn.Module is a ConfigError."""
    try:
        model = import_builder(path, key=key)(**kwargs)
    except TypeError as exc:  # a builder that does not take the documented keywords
        raise ConfigError(f"{key} = {path!r} failed with arguments {sorted(kwargs)}: "
                          f"{exc}") from exc
    if not isinstance(model, nn.Module):
        raise ConfigError(f"{key} = {path!r} returned {type(model).__name__}, "
                          "not a torch nn.Module")
    return model
