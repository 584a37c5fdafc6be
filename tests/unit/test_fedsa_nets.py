"""Claims about FedSA's networks, hint loss and teacher checkpoints."""

import dataclasses

import numpy as np
import pytest
import torch
from torch import nn

from clients.training import train_locally
from methods.common.datasets import ArrayDataset
from methods.fedsa.hint import HintDistillation, StudentWithTranslator
from methods.fedsa.nets import CanvasCNN, Translator
from methods.fedsa.teacher import load_teacher, save_teacher, teacher_meta
from server.scenario import resolve

pytestmark = pytest.mark.unit


def _canvases(n=96, seed=0) -> ArrayDataset:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 1, 14, 28)).astype(np.float32)
    return ArrayDataset(x, np.zeros(n, dtype=np.int64), 1, "unlabelled")


def test_student_and_teacher_shapes():
    torch.set_num_threads(1)
    x = torch.zeros(5, 1, 14, 28)
    student, teacher = CanvasCNN((8, 16, 16), 10), CanvasCNN((16, 32, 48), 5)
    assert student(x).shape == (5, 10) and teacher(x).shape == (5, 5)
    assert student.features(x).shape == (5, 16, 7, 14)  # A: the map Grad-CAM and the hint read
    assert teacher.features(x).shape == (5, 48, 7, 14)
    # A translator bridges any pair of architectures: C_s → C_t.
    assert Translator(16, 48)(student.features(x)).shape == (5, 48, 7, 14)


def test_group_norm_student_has_no_batch_statistics():
    # DP-SGD needs per-sample gradients; BatchNorm mixes samples, GroupNorm does not.
    student = CanvasCNN((8, 16, 16), 10, norm="group")
    assert not any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in student.modules())
    assert not any(isinstance(m, nn.modules.batchnorm._BatchNorm)
                   for m in Translator(16, 32, norm="group").modules())


def test_new_head_is_fresh_and_sized_for_the_task():
    model = CanvasCNN((8, 16, 16), 10)
    old = model.head[-1].weight.detach().clone()
    torch.manual_seed(123)
    model.head = model.new_head(3)
    assert model(torch.zeros(2, 1, 14, 28)).shape == (2, 3)
    assert model.head[-1].weight.shape == (3, 32) and old.shape == (10, 32)


def test_hint_distillation_lowers_the_hint_loss_and_leaves_the_teacher_untouched():
    torch.set_num_threads(1)
    torch.manual_seed(0)
    teacher, student = CanvasCNN((16, 32, 32), 5), CanvasCNN((8, 16, 16), 10)
    teacher.eval()
    frozen = {k: v.clone() for k, v in teacher.state_dict().items()}
    model = StudentWithTranslator(student, Translator(16, 32))
    step = HintDistillation(teacher)
    data = _canvases()
    spec = resolve("fedsa", {"fedsa.local-epochs": "1", "fedsa.batch-size": "32"})

    def hint_loss() -> float:
        model.train()  # batch statistics: the running ones lag behind a few steps
        with torch.no_grad():
            return step.train_step(model, (torch.from_numpy(data.x),)).item()

    before = hint_loss()
    spec = dataclasses.replace(spec, method=dataclasses.replace(spec.method, local_epochs=8))
    metrics = train_locally(step, model, data, spec, seed=0)
    assert metrics["steps"] == 8 * 3 and metrics["num-examples"] == 96
    assert hint_loss() < 0.7 * before
    assert all(torch.equal(frozen[k], v) for k, v in teacher.state_dict().items())
    assert not teacher.training and not any(p.requires_grad for p in teacher.parameters())


def test_a_teacher_checkpoint_round_trips(tmp_path):
    torch.manual_seed(0)
    teacher = CanvasCNN((16, 32, 48), 5).eval()
    meta = teacher_meta(teacher, "L:0-4", "batch", (16, 32, 48))
    save_teacher(tmp_path / "t.npz", teacher, meta)
    loaded, loaded_meta = load_teacher(tmp_path / "t.npz")
    assert loaded_meta == meta and meta["num_classes"] == 5
    x = torch.randn(4, 1, 14, 28)
    assert torch.equal(loaded(x), teacher(x))


def test_a_corrupt_teacher_checkpoint_is_refused(tmp_path):
    (tmp_path / "bad.npz").write_bytes(b"not a checkpoint")
    with pytest.raises(ValueError, match="unreadable"):
        load_teacher(tmp_path / "bad.npz")
    with pytest.raises(ValueError, match="unreadable"):
        load_teacher(tmp_path / "missing.npz")
