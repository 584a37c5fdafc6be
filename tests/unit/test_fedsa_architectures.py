"""Claims about FedSA on any architecture (methods/fedsa/architectures.py): named layers for
Grad-CAM and hints, ResNet and user-built teachers, and names checked before a run."""

import pytest
import torch
from flwr.app import Context, RecordDict
from torch import nn

import clients.fedsa_host as host
from methods.common.modules import model_builder
from methods.common.resnet import small_resnet
from methods.config import ConfigError
from methods.fedsa.architectures import (head_parameters, last_spatial_stage, map_channels,
                                         replace_head, resolve_layer)
from methods.fedsa.hint import HintDistillation, StudentWithTranslator
from methods.fedsa.nets import CanvasCNN, Translator
from methods.fedsa.saliency import grad_cam, saliency_similarity
from methods.fedsa.teacher import load_teacher, save_teacher, teacher_meta
from methods.registry import get_method
from protos import fedvault_pb2 as pb
from protos.codec import decode
from protos.contract import CONFIG, PROBE
from protos.records import round_header, to_array_record
from server.scenario import resolve

pytestmark = pytest.mark.unit


@model_builder
def two_stage_net(in_channels: int, num_classes: int, width: int = 6) -> nn.Module:
    """A user's architecture: no `features`, no `head`, names of its own."""
    return _TwoStage(in_channels, num_classes, width)


class _TwoStage(nn.Module):
    def __init__(self, in_channels: int, num_classes: int, width: int) -> None:
        super().__init__()
        self.body = nn.Sequential(nn.Conv2d(in_channels, width, 3, padding=1), nn.ReLU(),
                                  nn.Conv2d(width, 2 * width, 3, padding=1), nn.ReLU())
        self.classify = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                                      nn.Linear(2 * width, num_classes))

    def forward(self, x):
        return self.classify(self.body(x))


def unmarked_net(in_channels: int, num_classes: int) -> nn.Module:
    return _TwoStage(in_channels, num_classes, 4)


def test_the_default_layer_is_the_last_spatial_stage_of_any_architecture():
    assert last_spatial_stage(CanvasCNN((8, 16, 16), 10), (1, 14, 28)) == "features"
    assert last_spatial_stage(small_resnet(3, 10), (3, 32, 32)) == "layer3"
    assert last_spatial_stage(two_stage_net(3, 4), (3, 32, 32)) == "body"
    with pytest.raises(ConfigError, match=r"needs a layer with an N×C×h×w output, "
                                          r"SmallResNet.pool gives \(2, 64\)"):
        resolve_layer(small_resnet(3, 10), (3, 32, 32), "pool", key="fedsa.hint-layer")


def test_the_default_grad_cam_is_the_one_fedsa_computed_before_layers_had_names():
    torch.manual_seed(0)
    model, x = CanvasCNN((8, 16, 16), 10).eval(), torch.randn(5, 1, 14, 28)
    maps = model.features(x)
    logits = model.head(maps)
    (grads,) = torch.autograd.grad(logits.gather(1, logits.argmax(1, keepdim=True)).sum(), maps)
    cam = torch.relu(1 + (grads.mean((2, 3), keepdim=True) * maps).sum(1, keepdim=True))
    cam = (cam - cam.amin((2, 3), keepdim=True)) / (cam.amax((2, 3), keepdim=True)
                                                    - cam.amin((2, 3), keepdim=True))
    expected = nn.functional.interpolate(cam, size=(14, 28), mode="bilinear").flatten(1)
    assert torch.allclose(grad_cam(model, x), expected.detach(), atol=1e-6)
    assert not torch.allclose(grad_cam(model, x, "features.5"), expected.detach(), atol=1e-3)


def test_bad_layer_and_architecture_names_fail_when_the_config_is_read():
    with pytest.raises(ConfigError, match=r"fedsa.student-layer = 'layer9' is not a module of "
                                          r"CanvasCNN; valid names: features, features.0"):
        resolve("fedsa", {"fedsa.student-layer": "layer9"})
    with pytest.raises(ConfigError, match=r"fedsa.gradcam-layer = 'layer4' is not a module of "
                                          r"SmallResNet; valid names: stem, "):
        resolve("fedsa", {"fedsa.canvas": "color32", "fedsa.teacher-arch": "resnet",
                          "fedsa.gradcam-layer": "layer4"})
    with pytest.raises(ConfigError, match="student-arch must be one of canvas-cnn, resnet or "
                                          "'package.module:builder'"):
        resolve("fedsa", {"fedsa.student-arch": "resnt"})
    with pytest.raises(ConfigError, match="not marked as a model builder"):
        resolve("fedsa", {"fedsa.student-arch": f"{__name__}:unmarked_net"})
    with pytest.raises(ConfigError, match="canvas must be one of mnist5k, color32"):
        resolve("fedsa", {"fedsa.canvas": "cifar"})


def test_a_user_builder_can_be_the_student():
    spec = resolve("fedsa", {"fedsa.student-arch": f"{__name__}:two_stage_net"})
    student = get_method("fedsa").build_model(spec)
    assert isinstance(student, _TwoStage) and student(torch.zeros(2, 1, 14, 28)).shape == (2, 10)
    head = head_parameters(student)
    assert [p.shape for p in head] == [(10, 12), (10,)]  # the last Linear
    torch.manual_seed(1)
    replace_head(student, 3)
    assert student.classify[2].out_features == 3
    assert student(torch.zeros(1, 1, 14, 28)).shape == (1, 3)


def test_resnet_and_user_checkpoints_round_trip(tmp_path):
    torch.manual_seed(0)
    resnet = small_resnet(3, 5, (8, 16, 32)).eval()
    save_teacher(tmp_path / "r.npz", resnet,
                 teacher_meta(resnet, "mine", "batch", (8, 16, 32), arch="resnet", in_channels=3))
    mine = two_stage_net(1, 2, width=5).eval()
    save_teacher(tmp_path / "u.npz", mine,
                 teacher_meta(mine, "mine", arch=f"{__name__}:two_stage_net", kwargs={"width": 5}))
    x3, x1 = torch.randn(2, 3, 32, 32), torch.randn(2, 1, 14, 28)
    loaded, meta = load_teacher(tmp_path / "r.npz")
    assert meta["num_classes"] == 5 and torch.equal(loaded(x3), resnet(x3))
    loaded, meta = load_teacher(tmp_path / "u.npz")
    assert isinstance(loaded, _TwoStage) and torch.equal(loaded(x1), mine(x1))


def test_a_user_checkpoint_names_its_own_grad_cam_layer_when_the_run_does_not(tmp_path):
    torch.manual_seed(2)
    mine = two_stage_net(1, 2).eval()
    meta = teacher_meta(mine, "mine", arch=f"{__name__}:two_stage_net",
                        **{"gradcam-layer": "body.1"})
    save_teacher(tmp_path / "t.npz", mine, meta)
    spec = resolve("fedsa", {})
    method = get_method("fedsa")
    probe = method.probe_dataset(spec).x[:10]
    student_maps = grad_cam(method.build_model(spec), torch.from_numpy(probe))
    request = RecordDict({PROBE: to_array_record({"images": probe,
                                                  "student-cam": student_maps.numpy()})})
    context = Context(run_id=1, node_id=3, state=RecordDict(), run_config={},
                      node_config={"partition-id": 0, "num-partitions": 6,
                                   "teacher": str(tmp_path / "t.npz")})
    reply = host.select_phase(spec, round_header(spec, 1, "select"), request, context)
    reported = decode(pb.SimilarityReport, reply[CONFIG][host.SIMILARITY]).similarity
    images = torch.from_numpy(probe)
    assert reported == pytest.approx(
        saliency_similarity(student_maps, grad_cam(mine, images, "body.1")), rel=1e-5)
    assert reported != pytest.approx(
        saliency_similarity(student_maps, grad_cam(mine, images, "body")), rel=1e-3)


def test_a_translator_bridges_a_resnet_teacher_and_a_canvas_student():
    torch.manual_seed(0)
    teacher = small_resnet(3, 5, (8, 16, 32))
    student = CanvasCNN((8, 16, 16), 10, in_channels=3)
    shape = (3, 32, 32)
    c_s, c_t = map_channels(student, "features", shape), map_channels(teacher, "layer3", shape)
    assert (c_s, c_t) == (16, 32)
    model = StudentWithTranslator(student, Translator(c_s, c_t))
    loss = HintDistillation(teacher, "layer3", "features").train_step(
        model, (torch.randn(4, *shape),))  # student map 16×16, teacher's 8×8: pooled
    loss.backward()
    assert torch.isfinite(loss) and student.features[0].weight.grad.abs().sum() > 0
    assert all(p.grad is None for p in teacher.parameters())


def test_a_checkpoint_for_other_images_is_refused_in_the_teacher_phase(tmp_path):
    resnet = small_resnet(3, 5, (8, 16, 32)).eval()
    save_teacher(tmp_path / "rgb.npz", resnet,
                 teacher_meta(resnet, "cifar", "batch", (8, 16, 32), arch="resnet", in_channels=3))
    spec = resolve("fedsa", {})  # mnist5k canvases: one channel
    context = Context(run_id=1, node_id=3, state=RecordDict(), run_config={},
                      node_config={"partition-id": 0, "num-partitions": 6,
                                   "teacher": str(tmp_path / "rgb.npz")})
    with pytest.raises(ConfigError, match=r"takes 3-channel images; this run's canvases "
                                          r"\(mnist5k\) have 1"):
        host.teacher_phase(spec, round_header(spec, 0, "teacher"), RecordDict(), context)
