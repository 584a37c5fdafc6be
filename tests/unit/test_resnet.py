"""Claims about the small ResNet (methods/common/resnet.py) and naming layers by dotted path
(methods/common/modules.py)."""

import pytest
import torch
from torch import nn

from methods.common.modules import (build_user_model, layer_output, model_builder, module_names,
                                    named_module)
from methods.common.resnet import STAGE_NAMES, small_resnet
from methods.config import ConfigError

pytestmark = pytest.mark.unit


def test_stages_have_fixed_names_and_the_cifar_resolutions():
    torch.manual_seed(0)
    model = small_resnet(3, 10)  # ResNet-8: (16, 32, 64)
    assert [name for name, _ in model.named_children()] == list(STAGE_NAMES)
    x = torch.randn(2, 3, 32, 32)
    shapes = {name: tuple(layer_output(model, name, x).shape) for name in STAGE_NAMES}
    assert shapes == {"stem": (2, 16, 32, 32), "layer1": (2, 16, 32, 32),
                      "layer2": (2, 32, 16, 16), "layer3": (2, 64, 8, 8),
                      "pool": (2, 64), "fc": (2, 10)}
    assert torch.equal(layer_output(model.eval(), "fc", x), model(x))
    # 8 weighted layers: the stem, two convs per block, fc (shortcut projections aside).
    weighted = [n for n, m in model.named_modules()
                if isinstance(m, (nn.Conv2d, nn.Linear)) and "shortcut" not in n]
    assert len(weighted) == 8
    assert "layer3.0.conv2" in module_names(model) and "layer2.0.shortcut.0" in module_names(model)


def test_group_norm_option_has_no_batch_statistics_and_trains():
    torch.manual_seed(0)
    model = small_resnet(3, 4, widths=(8, 16, 16), norm="group", blocks_per_stage=2)
    assert not any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in model.modules())
    assert "layer1.1.conv1" in module_names(model)  # a second block per stage
    x, y = torch.randn(16, 3, 32, 32), torch.randint(0, 4, (16,))
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    first = None
    for _ in range(15):
        optimizer.zero_grad()
        loss = nn.functional.cross_entropy(model(x), y)
        loss.backward()
        optimizer.step()
        first = first if first is not None else loss.item()
    assert loss.item() < 0.5 * first  # it can fit a batch


def test_a_wrong_layer_name_is_a_config_error_listing_the_valid_names():
    model = small_resnet(3, 10)
    assert named_module(model, "layer3.0.conv2") is model.layer3[0].conv2
    with pytest.raises(ConfigError, match=r"fedsa.gradcam-layer = 'layer4' is not a module of "
                                          r"SmallResNet; valid names: stem, stem.0, .*layer3, "):
        named_module(model, "layer4", key="fedsa.gradcam-layer")


def test_layer_output_stops_at_the_layer_and_keeps_its_gradient():
    torch.manual_seed(0)
    model = small_resnet(3, 10)
    reached = []
    model.fc.register_forward_hook(lambda *a: reached.append("fc"))
    out = layer_output(model, "layer2", torch.randn(2, 3, 32, 32))
    assert reached == []  # nothing after layer2 ran
    out.sum().backward()
    assert model.layer2[0].conv1.weight.grad is not None and model.fc.weight.grad is None


@model_builder
def marked(in_channels: int, num_classes: int) -> nn.Module:
    return nn.Sequential(nn.Conv2d(in_channels, 4, 3), nn.Flatten(), nn.LazyLinear(num_classes))


def unmarked(in_channels: int, num_classes: int) -> nn.Module:
    return marked(in_channels, num_classes)


def test_only_a_marked_builder_can_be_named_in_config():
    here = __name__
    model = build_user_model(f"{here}:marked", in_channels=3, num_classes=5)
    assert isinstance(model, nn.Sequential)
    with pytest.raises(ConfigError, match="not marked as a model builder"):
        build_user_model(f"{here}:unmarked", in_channels=3, num_classes=5)
    with pytest.raises(ConfigError, match="cannot be imported here"):
        build_user_model("no_such_package.nets:net", in_channels=3, num_classes=5)
    with pytest.raises(ConfigError, match="is written 'package.module:builder'"):
        build_user_model("resnet", in_channels=3, num_classes=5)
