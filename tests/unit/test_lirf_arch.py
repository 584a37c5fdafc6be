"""Claims about LIRF's split point on any net (methods/lirf/arch.py)."""

import pytest
import torch
from torch import nn

from methods.common.modules import model_builder
from methods.common.resnet import small_resnet
from methods.config import ConfigError
from methods.lirf.arch import build_split_net, check_split, split_at, split_points
from methods.lirf.nets import DepositNet, SplitCNN, deposit_class_mask
from methods.registry import get_method
from methods.resolve import parse_run_spec

pytestmark = pytest.mark.unit
METHOD = get_method("lirf")


def _spec(**over):
    return parse_run_spec({"method": "lirf", **{f"lirf.{k}": v for k, v in over.items()}})


class _Shuffled(nn.Module):
    """A net whose forward does not call its children in definition order."""

    def __init__(self, in_channels: int = 3, num_classes: int = 10) -> None:
        super().__init__()
        self.head = nn.Linear(8, num_classes)
        self.body = nn.Sequential(nn.Conv2d(in_channels, 8, 3), nn.AdaptiveAvgPool2d(1),
                                  nn.Flatten())

    def forward(self, x):
        return self.head(self.body(x))


@model_builder
def shuffled(in_channels: int, num_classes: int) -> nn.Module:
    return _Shuffled(in_channels, num_classes)


def test_the_default_arch_is_the_protocols_cnn_with_the_same_arrays():
    spec = _spec()
    torch.manual_seed(0)
    model = METHOD.net_for(spec, METHOD.shared_state(SplitCNN(1, 10)))
    torch.manual_seed(0)
    reference = SplitCNN(1, 10)
    assert type(model) is SplitCNN and spec.method.arch == "split-cnn"
    assert list(model.state_dict()) == list(reference.state_dict())


def test_the_resnet_split_after_any_stage_computes_what_the_whole_net_computes():
    spec = _spec(arch="resnet", widths="8,16,16")
    check_split(spec.method, (3, 32, 32), 10)  # the default split point, layer2
    torch.manual_seed(0)
    net = small_resnet(3, 10, (8, 16, 16)).eval()
    x = torch.randn(2, 3, 32, 32)
    for name in ("stem", "layer1", "layer2", "layer2.0", "layer3", "pool", "stem.1"):
        split = split_at(net, name).eval()
        with torch.no_grad():
            assert torch.equal(split(x), net(x)), name
    split = split_at(net, "layer2")
    assert [n for n, _ in split.shallow.named_children()] == ["stem", "layer1", "layer2"]
    assert [n for n, _ in split.deep.named_children()] == ["layer3", "pool", "fc"]
    assert split.shallow(x).shape == (2, 16, 16, 16)
    nested = split_at(net, "stem.1")  # inside a Sequential: the rest of the stem goes deep
    assert list(nested.deep.stem) == [net.stem[2]] and "deep.stem.2" not in nested.state_dict()


def test_a_wrong_split_name_is_a_config_error_listing_the_valid_ones():
    with pytest.raises(ConfigError, match=r"split-after = 'layer2.0.conv1' is not a split point "
                                          r"of SmallResNet; valid names: stem, .*layer2, "):
        _spec(arch="resnet", **{"split-after": "layer2.0.conv1"})
    with pytest.raises(ConfigError, match="valid names: shallow, shallow.1, "):
        _spec(**{"split-after": "fc"})
    with pytest.raises(ConfigError, match="arch must be one of split-cnn, resnet"):
        _spec(arch="vgg")
    with pytest.raises(ConfigError, match="must name the split point"):
        _spec(arch=f"{__name__}:shuffled")


def test_split_points_keep_trainable_parameters_on_both_sides():
    names = split_points(SplitCNN(1, 10))
    assert "shallow.0" not in names  # the average pool alone: nothing to retrain
    assert "deep.3" not in names and "deep" not in names  # nothing left for the deep part
    assert {"shallow", "shallow.1", "deep.0"} <= set(names)


def test_a_forward_that_does_not_follow_the_module_order_is_refused_before_a_run():
    cfg = _spec(arch=f"{__name__}:shuffled", **{"split-after": "head"}).method
    with pytest.raises(ConfigError, match="does not run its modules in the order"):
        check_split(cfg, (3, 8, 8), 10)


def test_deposit_trains_only_the_shallow_part_of_a_resnet_split_after_layer1():
    cfg = _spec(arch="resnet", widths="4,8,8", **{"split-after": "layer1"}).method
    torch.manual_seed(0)
    net = DepositNet(build_split_net(cfg, 3, 10), deposit_class_mask((0, 1), 10)).train()
    out = net(torch.randn(4, 3, 32, 32))
    (out["z_target"].sum() + out["z_recovered"].sum()).backward()
    assert all(p.grad is not None for p in net.target.shallow.parameters())
    assert all(p.grad is None for p in net.target.deep.parameters())  # frozen, eval mode
    assert not net.target.deep.training
