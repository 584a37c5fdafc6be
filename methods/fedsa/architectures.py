"""FedSA on any architecture: building a student or teacher by name, and naming its layers.

An architecture is "canvas-cnn" (nets.py, the protocol's CNN a-b-c), "resnet"
(methods/common/resnet.py, ResNet-8 for 32×32 inputs) or a user's own builder
"package.module:fn" marked with `methods.common.modules.model_builder`.

FedSA reads two maps of a model (notes §1.2, §1.4): the one Grad-CAM weighs by its
gradients, and the one the hint loss matches. Both are named by dotted module path
(`fedsa.gradcam-layer`, `fedsa.hint-layer` for teachers, `fedsa.student-layer` for the
student). Unnamed, it is the model's LAST SPATIAL STAGE: the last top-level child,
in the order the forward pass calls them, whose output is an N×C×h×w map. That is
`features` of the canvas CNN and `layer3` of the ResNet (what FedSA read before these
keys existed), and it is defined for a user's model without knowing it.

Task adaptation replaces the model's classifier: `head` of the canvas CNN, else the
last nn.Linear of the model.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from methods.common.modules import build_user_model, named_module
from methods.common.resnet import small_resnet
from methods.config import ConfigError
from methods.fedsa.nets import CanvasCNN

BUILTIN_ARCHS = ("canvas-cnn", "resnet")


def check_arch_name(arch: str, key: str) -> str | None:
    """A problem with an architecture's name (None: fine); nothing is imported."""
    if arch in BUILTIN_ARCHS:
        return None
    module, sep, attr = arch.partition(":")
    if sep and module and attr:
        return None
    return (f"{key} must be one of {', '.join(BUILTIN_ARCHS)} or 'package.module:builder' "
            f"(got {arch!r})")


def build_network(arch: str, *, in_channels: int, num_classes: int, widths: tuple[int, ...] = (),
                  norm: str = "batch", kwargs: dict[str, Any] | None = None,
                  key: str = "arch") -> nn.Module:
    """A fresh model (the caller seeds torch). widths and norm apply to the built-in ones;
    a user builder gets in_channels, num_classes and `kwargs`."""
    if arch == "canvas-cnn":
        return CanvasCNN(tuple(widths), num_classes, norm, in_channels=in_channels)
    if arch == "resnet":
        return small_resnet(in_channels, num_classes, tuple(widths), norm)
    problem = check_arch_name(arch, key)
    if problem:
        raise ConfigError(problem)
    return build_user_model(arch, key=key, in_channels=in_channels, num_classes=num_classes,
                            **(kwargs or {}))


def device_of(model: nn.Module) -> torch.device:
    """Where `model` computes: its first parameter's (or buffer's) device; else the CPU."""
    tensor = next(model.parameters(), None)
    if tensor is None:
        tensor = next(model.buffers(), None)
    return torch.device("cpu") if tensor is None else tensor.device


def _dry_run(model: nn.Module, input_shape: tuple[int, ...], hooks: dict[str, nn.Module]):
    """Outputs of `hooks` (name → module) on one zero input, in call order; weights untouched."""
    seen: list[tuple[str, torch.Tensor]] = []
    handles = [module.register_forward_hook(lambda m, i, o, name=name: seen.append((name, o)))
               for name, module in hooks.items()]
    was_training = model.training
    try:
        with torch.no_grad():  # eval: BatchNorm running statistics must not move
            model.eval()(torch.zeros(2, *input_shape, device=device_of(model)))
    finally:
        model.train(was_training)
        for handle in handles:
            handle.remove()
    return seen


def last_spatial_stage(model: nn.Module, input_shape: tuple[int, ...]) -> str:
    """The last top-level child (in call order) whose output is an N×C×h×w map."""
    spatial = [name for name, out in _dry_run(model, input_shape, dict(model.named_children()))
               if isinstance(out, torch.Tensor) and out.ndim == 4]
    if not spatial:
        raise ConfigError(f"{type(model).__name__} has no top-level layer with an N×C×h×w "
                          "output; name the layer (fedsa.gradcam-layer / hint-layer / "
                          "student-layer)")
    return spatial[-1]


def resolve_layer(model: nn.Module, input_shape: tuple[int, ...], *names: str,
                  key: str = "layer") -> str:
    """The first non-empty of `names`, else the last spatial stage; it must exist in `model`
    and output an N×C×h×w map. Returns the name."""
    name = next((n for n in names if n), "") or last_spatial_stage(model, input_shape)
    module = named_module(model, name, key=key)
    outputs = _dry_run(model, input_shape, {name: module})
    if not outputs or not isinstance(outputs[0][1], torch.Tensor) or outputs[0][1].ndim != 4:
        shape = tuple(outputs[0][1].shape) if outputs and isinstance(outputs[0][1], torch.Tensor) \
            else "nothing"
        raise ConfigError(f"{key} = {name!r}: FedSA needs a layer with an N×C×h×w output, "
                          f"{type(model).__name__}.{name} gives {shape}")
    return name


def map_channels(model: nn.Module, layer: str, input_shape: tuple[int, ...]) -> int:
    """C of the map at `layer` (what a translator adapts from or to)."""
    outputs = _dry_run(model, input_shape, {layer: named_module(model, layer)})
    return int(outputs[0][1].shape[1])


def head_name(model: nn.Module) -> str:
    """The classifier task adaptation replaces: `head` of the canvas CNN, else the last Linear."""
    if isinstance(model, CanvasCNN):
        return "head"
    linear = [name for name, m in model.named_modules() if isinstance(m, nn.Linear)]
    if not linear:
        raise ConfigError(f"{type(model).__name__} has no nn.Linear classifier for task adaptation")
    return linear[-1]


def head_parameters(model: nn.Module) -> list[nn.Parameter]:
    return list(named_module(model, head_name(model)).parameters())


def num_outputs(model: nn.Module) -> int:
    """Classes of the model's classifier."""
    head = named_module(model, head_name(model))
    return int(head[-1].out_features if isinstance(head, nn.Sequential) else head.out_features)


def replace_head(model: nn.Module, num_classes: int) -> None:
    """A freshly initialised classifier for `num_classes` (the caller seeds torch)."""
    if isinstance(model, CanvasCNN):
        model.head = model.new_head(num_classes)
        return
    name = head_name(model)
    parent_name, _, child = name.rpartition(".")
    parent = named_module(model, parent_name) if parent_name else model
    old = getattr(parent, child)
    setattr(parent, child, nn.Linear(old.in_features, num_classes, bias=old.bias is not None))
