"""LIRF on any architecture: the net by name, split at a named module into shallow and deep.

Ye et al., ECCV 2022 (arXiv:2207.08224), §3.1: T_0 = T_0^(n−) ∘ T_0^(−n). The split point
n is `lirf.split-after`, a dotted module name: everything up to and including that module
is the shallow part T^(−n) (what the deposit retrains, what T_r replaces), the rest is
the deep part T^(n−) (frozen). Both become nn.Sequentials of a `SplitNet`, so every net
travels as "shallow.*" and "deep.*" arrays like the protocol's CNN.

A name is a split point when the modules on its path run one after another: a top-level
child of the net, or, inside an nn.Sequential on the path, one of its children. For the
ResNet that is "stem", "layer1", "layer2", "layer2.0" (its first block), … but not
"layer2.0.conv1" (a BasicBlock adds its shortcut, so its children do not run in a row).
Whether a net's forward pass really calls its top-level children in order cannot be read
off the module tree; `check_split` runs both on a probe input before a run starts.

Architectures: "split-cnn" (nets.SplitCNN, the protocol's CNN, already split after
"shallow": used as it is, so its arrays and figures are those of before this option),
"resnet" (methods/common/resnet.py, split after "layer2" by default as in the official
code: shallow = conv1, bn1, layer1, layer2), or a user's builder "package.module:fn"
(methods/common/modules.py; it must name its split point).
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Mapping

import numpy as np
import torch
from torch import nn

from methods.common.modules import build_user_model
from methods.common.resnet import small_resnet
from methods.config import ConfigError
from methods.lirf.nets import SplitCNN, SplitNet

BUILTIN_ARCHS = ("split-cnn", "resnet")
DEFAULT_SPLIT = {"split-cnn": "shallow", "resnet": "layer2"}
Children = list[tuple[str, nn.Module]]


def arch_problem(arch: str, split_after: str) -> str | None:
    """What is wrong with the names alone (None: nothing); imports nothing of the user's."""
    if arch not in BUILTIN_ARCHS:
        module, sep, attr = arch.partition(":")
        if not (sep and module and attr):
            return (f"arch must be one of {', '.join(BUILTIN_ARCHS)} or 'package.module:builder' "
                    f"(got {arch!r})")
        if not split_after:
            return f"split-after must name the split point of the user architecture {arch!r}"
    return None


def build_network(cfg, in_channels: int, num_classes: int) -> nn.Module:
    """The unsplit net of `cfg.arch` (the caller seeds torch)."""
    if cfg.arch == "split-cnn":
        return SplitCNN(in_channels, num_classes, cfg.widths, cfg.norm)
    if cfg.arch == "resnet":
        return small_resnet(in_channels, num_classes, tuple(cfg.widths), cfg.norm)
    return build_user_model(cfg.arch, key="lirf.arch", in_channels=in_channels,
                            num_classes=num_classes)


def split_name(cfg) -> str:
    return cfg.split_after or DEFAULT_SPLIT.get(cfg.arch, "")


def build_split_net(cfg, in_channels: int, num_classes: int) -> SplitNet:
    """The net of `cfg`, split at `cfg.split_after` (a ConfigError lists the valid names)."""
    return split_at(build_network(cfg, in_channels, num_classes), split_name(cfg))


def split_at(model: nn.Module, name: str) -> SplitNet:
    if isinstance(model, SplitNet) and name == "shallow":
        return model  # already split there (SplitCNN): the same arrays as ever
    valid = split_points(model)
    if name not in valid:
        raise ConfigError(f"lirf.split-after = {name!r} is not a split point of "
                          f"{type(model).__name__}; valid names: {', '.join(valid)}")
    shallow, deep = _cut(model, name.split("."))
    return SplitNet(nn.Sequential(OrderedDict(shallow)), nn.Sequential(OrderedDict(deep)))


def split_points(model: nn.Module) -> list[str]:
    """Every name the net may be split after: both parts keep trainable parameters."""
    names: list[str] = []

    def walk(module: nn.Module, prefix: str) -> None:
        for name, child in module.named_children():
            names.append(prefix + name)
            if isinstance(child, nn.Sequential):
                walk(child, f"{prefix}{name}.")

    walk(model, "")
    return [n for n in names if all(_has_parameters(part) for part in _cut(model, n.split(".")))]


def _cut(module: nn.Module, path: list[str]) -> tuple[Children, Children]:
    """(children up to and including path, the rest), descending into Sequentials."""
    children = list(module.named_children())
    index = [name for name, _ in children].index(path[0])
    name, child = children[index]
    head, tail = children[:index], children[index + 1:]
    if len(path) == 1:
        return head + [(name, child)], tail
    inner_head, inner_tail = _cut(child, path[1:])  # keeps the inner names: "layer2.1.…"
    rest = [(name, nn.Sequential(OrderedDict(inner_tail)))] if inner_tail else []
    return head + [(name, nn.Sequential(OrderedDict(inner_head)))], rest + tail


def _has_parameters(children: Children) -> bool:
    return any(p.requires_grad for _, module in children for p in module.parameters())


def template(cfg, in_channels: int = 1, num_classes: int = 10) -> SplitNet:
    """A throw-away split net, built without moving torch's global random state (a node
    seeds it before it builds its real model; a template must not shift that)."""
    with torch.random.fork_rng(devices=[]):
        return build_split_net(cfg, in_channels, num_classes)


def check_split(cfg, input_shape: tuple[int, ...], num_classes: int) -> None:
    """ConfigError unless the split net computes what the unsplit net computes (probe input)."""
    with torch.random.fork_rng(devices=[]), torch.no_grad():
        torch.manual_seed(0)
        model = build_network(cfg, input_shape[0], num_classes).eval()
        split = split_at(model, split_name(cfg)).eval()  # shares the modules: same weights
        x = torch.randn(2, *input_shape)
        try:
            same = torch.allclose(model(x), split(x), rtol=1e-5, atol=1e-6)
        except RuntimeError as exc:  # a shape error: the forward is not its children in a row
            same, why = False, f" ({str(exc).splitlines()[0][:120]})"
        else:
            why = ""
    if not same:
        raise ConfigError(f"lirf.split-after = {split_name(cfg)!r}: {type(model).__name__}'s forward "
                          f"pass does not run its modules in the order they are defined up to "
                          f"that point{why}; name a top-level module or one inside an "
                          f"nn.Sequential that the forward pass calls in sequence")


def output_classes(model: nn.Module) -> int:
    """The class count of a net: its last nn.Linear's outputs."""
    heads = [m for m in model.modules() if isinstance(m, nn.Linear)]
    if not heads:
        raise ValueError(f"{type(model).__name__} has no nn.Linear head to read its classes from")
    return heads[-1].out_features


def shape_of(cfg, arrays: Mapping[str, np.ndarray]) -> tuple[int, int]:
    """(input channels, classes) of a net's arrays, read off a template of the same arch:
    the first conv weight and the last linear weight (no data set is read)."""
    net = template(cfg)
    convs = [k for k, v in net.state_dict().items() if v.ndim == 4]
    heads = [f"{name}.weight" for name, m in net.named_modules() if isinstance(m, nn.Linear)]
    if not convs or not heads:
        raise ValueError(f"lirf.arch = {cfg.arch!r} needs a conv layer and a linear head")
    return int(arrays[convs[0]].shape[1]), int(arrays[heads[-1]].shape[0])
