"""Claims about FedSA's Grad-CAM saliency and teacher similarity (methods/fedsa/saliency.py)."""

import numpy as np
import pytest
import torch

from methods.fedsa.canvas import canvas_split
from methods.fedsa.nets import CanvasCNN
from methods.fedsa.saliency import grad_cam, saliency_similarity
from methods.fedsa.student import fit_supervised
from server.scenario import resolve

pytestmark = pytest.mark.unit


@pytest.fixture(scope="module")
def split():
    torch.set_num_threads(1)
    return canvas_split(resolve("fedsa", {"seed": "0"}))


def _trained(split, task: str, seed: int) -> CanvasCNN:
    data = split.nodes[seed % 6].task(task)
    torch.manual_seed(seed)
    model = CanvasCNN((8, 16, 16), data.num_classes)
    fit_supervised(model, data, epochs=3, lr=3e-3, batch_size=64, seed=seed)
    return model


@pytest.fixture(scope="module")
def models(split):
    tasks = ["L:0-4", "R:0-4", "L:parity", "R:parity"]
    return {task: _trained(split, task, i) for i, task in enumerate(tasks)}


def test_maps_are_per_sample_min_max_normalised_at_input_size(split):
    torch.manual_seed(0)
    maps = grad_cam(CanvasCNN((8, 16, 16), 10), torch.from_numpy(split.probe.x[:7]))
    assert maps.shape == (7, 14 * 28)
    assert maps.min() >= 0 and maps.max() <= 1
    # Each map spans most of [0, 1] (bilinear resizing shaves the extremes a little).
    assert (maps.amax(dim=1) - maps.amin(dim=1)).min() > 0.5


def test_grad_cam_does_not_use_or_change_the_weights(split, models):
    model = models["L:0-4"]
    model.zero_grad(set_to_none=True)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    grad_cam(model, torch.from_numpy(split.probe.x))
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    assert all(p.grad is None for p in model.parameters())


def test_saliency_follows_the_half_a_model_was_trained_on(split, models):
    x = torch.from_numpy(split.probe.x)
    for task, model in models.items():
        maps = grad_cam(model, x).reshape(-1, 14, 28)
        left, right = maps[:, :, :14].sum().item(), maps[:, :, 14:].sum().item()
        assert (left > 1.1 * right) if task.startswith("L") else (right > 1.1 * left), task


def test_a_left_digit_model_is_more_similar_to_left_digit_teachers(split, models):
    # The selection signal of FedSA at unit scale: label spaces differ (5-way, 2-way),
    # only where the evidence lies matters.
    x = torch.from_numpy(split.probe.x)
    maps = {task: grad_cam(model, x) for task, model in models.items()}
    student = maps["L:parity"]
    relevant = saliency_similarity(student, maps["L:0-4"])
    assert relevant > saliency_similarity(student, maps["R:0-4"])
    assert relevant > saliency_similarity(student, maps["R:parity"])


def test_similarity_is_the_sum_of_half_shifted_cosines():
    a = torch.tensor([[1.0, 0.0], [1.0, 1.0], [0.0, 2.0]])
    b = torch.tensor([[2.0, 0.0], [0.0, 1.0], [1.0, 0.0]])
    # cosines 1, 1/√2, 0 → 1 + (0.5 + 0.5/√2) + 0.5
    assert saliency_similarity(a, b) == pytest.approx(2.0 + 0.5 / np.sqrt(2))
    assert saliency_similarity(a, a) == pytest.approx(3.0)
    with pytest.raises(ValueError, match="differ in shape"):
        saliency_similarity(a, b[:2])


@pytest.mark.parametrize("backbone_lr", [0.0, 0.1])
def test_adaptation_backbone_lr_freezes_or_slows_the_backbone_but_trains_the_head(split, backbone_lr):
    data = split.probe.target()
    torch.manual_seed(0)
    model = CanvasCNN((8, 16, 16), data.num_classes)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    fit_supervised(model, data, epochs=2, lr=1e-2, batch_size=16, seed=0, backbone_lr=backbone_lr)
    after = model.state_dict()
    head = [k for k in after if k.startswith("head.") and k.endswith("weight")]
    conv = [k for k in after if k.startswith("features.") and k.endswith("weight")]
    assert head and conv
    assert all(not torch.equal(before[k], after[k]) for k in head)
    moved = max(float((after[k] - before[k]).abs().max()) for k in conv)
    if backbone_lr == 0.0:
        assert moved == 0.0
    else:
        assert moved > 0.0
