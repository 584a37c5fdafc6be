"""FedSA's local objective on a selected node (official code `fedsa.py`; notes §1.4):

    L_local = MSE(translator_t(F_s(x)), F_t(x)),   x ∈ the node's unlabelled data

F = a named layer's map (`fedsa.student-layer` for F_s, `fedsa.hint-layer` for F_t;
by default each model's last spatial stage, architectures.py), t = the node's
teacher, frozen.
No logit KD and no labels. The student and translator_t train jointly; the
translator stays on the node across rounds, only the student leaves.

`HintDistillation` is the method-like object the shared local loop
(clients/training.train_locally) calls: it supplies `train_step`, the loop
does batching, seeding, the optimizer and (later) DP-SGD.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from methods.common.modules import layer_output
from methods.fedsa.nets import Translator


class StudentWithTranslator(nn.Module):
    """What the local loop optimises: the student and the node's translator, together."""

    def __init__(self, student: nn.Module, translator: Translator) -> None:
        super().__init__()
        self.student = student
        self.translator = translator


class HintDistillation:
    def __init__(self, teacher: nn.Module, teacher_layer: str = "features",
                 student_layer: str = "features") -> None:
        # Held outside the optimised module: the loop's model.train() must not touch
        # the teacher's BatchNorm statistics, and no optimizer may see its weights.
        self.teacher = teacher.eval().requires_grad_(False)
        self.teacher_layer, self.student_layer = teacher_layer, student_layer

    def train_step(self, model: StudentWithTranslator, batch: tuple, spec=None) -> torch.Tensor:
        x = batch[0]  # labels, if any, are unused
        with torch.no_grad():
            target = layer_output(self.teacher, self.teacher_layer, x)  # F_t(x): N×C_t×h×w
        hint = model.translator(layer_output(model.student, self.student_layer, x))
        if hint.shape[-2:] != target.shape[-2:]:  # a teacher of another resolution
            hint = F.adaptive_avg_pool2d(hint, target.shape[-2:])
        return F.mse_loss(hint, target)
