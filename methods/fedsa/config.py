"""FedSA's run configuration (the `[fedsa]` section of a scenario).

Defaults are the small-scale protocol of the design notes §3.1 (not shipped; two-digit
canvases, 6 teacher nodes); the paper-scale defaults of the official code are
in §1.5. The shared local loop reads `local_epochs`, `batch_size`, `lr`,
`weight_decay` and `optimizer` for the node-side distillation step.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from methods.base import LocalTrainingConfig
from methods.config import ConfigError
from methods.fedsa.architectures import BUILTIN_ARCHS, build_network, check_arch_name, resolve_layer
from methods.fedsa.canvas import CANVAS_SHAPES, NUM_CLASSES

SELECTION_MODES = ("sampled", "topk", "random", "all", "fixed")
NORMS = ("batch", "group")


@dataclass(frozen=True)
class FedSAConfig(LocalTrainingConfig):
    """FedSA hyper-parameters; the inherited ones are the node's distillation step."""

    local_epochs: int = 1
    """Hint-distillation epochs over a selected node's unlabelled canvases per round (E)."""
    batch_size: int = 64
    """Mini-batch size of a node's steps (distillation and teacher training)."""
    lr: float = 3e-3
    """Learning rate of the distillation step (student + translator)."""
    optimizer: str = "adam"
    """Optimizer of the node-side steps (shared loop): adam (the protocol's) or sgd."""

    selection: str = "sampled"
    """sampled (official: k i.i.d. draws from softmax of min-max normalised q) | topk |
    random (k without replacement) | all | fixed (the `fixed-teachers`; the oracle)."""
    k: int = 2
    """Teachers drawn per selection (k); a teacher drawn m times weighs m/k."""
    reselect_every: int = 5
    """Rounds between selections (R_sel); the first round always selects."""
    fixed_teachers: tuple[int, ...] = ()
    """Partition ids selected by `selection = "fixed"` (e.g. 0,1,2 = the relevant teachers)."""

    canvas: str = "mnist5k"
    """Canvas images: mnist5k (1×14×28, two MNIST-5k digits) | color32 (3×32×32, two
    generated 3×32×16 coloured patterns: CIFAR-shaped, for ResNets; nothing downloaded)."""
    probe_per_class: int = 5
    """Labelled probe canvases per class held by the server (the student's only labels)."""
    val_per_class: int = 20
    """Labelled validation canvases per class the server carves from the TRAINING digits
    (disjoint from the probe and the nodes); every choice of hyper-parameter reads them,
    never the test canvases. Never trained on. 0: no validation split."""
    probe_epochs: int = 30
    """Epochs of the student's pre-fit on the probe set (CE, Adam, cosine schedule)."""
    probe_lr: float = 1e-2
    """Adam learning rate of the pre-fit and of the task adaptation."""
    probe_batch_size: int = 16
    """Mini-batch size on the probe set."""
    adapt_epochs: int = 60
    """Epochs of task adaptation: fresh head, all weights fine-tuned on the probe set."""
    adapt_backbone_lr: float = 0.0
    """Backbone learning rate during adaptation as a multiple of probe-lr (0: frozen backbone,
    a linear probe of the distilled features; 1: everything fine-tuned alike). 0 was chosen
    on the validation canvases by `fedvault bench fedsa-choose` (README)."""

    student_arch: str = "canvas-cnn"
    """The student's architecture: canvas-cnn | resnet (ResNet-8 layout, methods/common/
    resnet.py) | package.module:builder (a user's @model_builder; importable on every host)."""
    student_layer: str = ""
    """The student's map read by Grad-CAM (S_s) and the hint (F_s), as a dotted module name;
    "" = its last spatial stage (canvas-cnn: features, resnet: layer3)."""
    student_widths: tuple[int, ...] = (8, 16, 16)
    """Channels of the student's three conv blocks / ResNet stages (the last one is C_s)."""
    student_norm: str = "batch"
    """batch (the protocol's BatchNorm) | group (GroupNorm; needed once DP-SGD is on)."""
    teacher_arch: str = "canvas-cnn"
    """Architecture of the teacher a node trains when it has no checkpoint (same choices as
    student-arch); a checkpoint names its own (methods/fedsa/teacher.py)."""
    gradcam_layer: str = ""
    """Every teacher's layer whose activations and gradients feed Grad-CAM (dotted module name);
    "" = the checkpoint's own `gradcam-layer`, else the teacher's last spatial stage."""
    hint_layer: str = ""
    """Every teacher's layer whose map is the hint target F_t (dotted module name); "" = the
    checkpoint's own `hint-layer`, else the teacher's last spatial stage."""
    teacher_widths: tuple[int, ...] = (16, 32, 32)
    """Channels of a node's own teacher when it trains one (the last one is C_t)."""
    teacher_epochs: int = 15
    """Epochs of a node's teacher training on its own labelled canvases (CE, Adam, cosine)."""
    teacher_lr: float = 3e-3
    """Initial Adam learning rate of teacher training (cosine-annealed to 0)."""
    teacher_val_fraction: float = 0.15
    """Share of a node's canvases held out to report its teacher's accuracy."""

    def validate(self) -> None:
        super().validate()
        problems = []
        if self.selection not in SELECTION_MODES:
            problems.append(f"selection must be one of {', '.join(SELECTION_MODES)}")
        if self.optimizer not in ("adam", "sgd"):
            problems.append("optimizer must be adam or sgd")
        if self.student_norm not in NORMS:
            problems.append(f"student-norm must be one of {', '.join(NORMS)}")
        if self.k < 1 or self.reselect_every < 1:
            problems.append("k and reselect-every must be >= 1")
        if self.selection == "fixed" and not self.fixed_teachers:
            problems.append('selection = "fixed" needs fixed-teachers (partition ids)')
        if len(self.student_widths) != 3 or len(self.teacher_widths) != 3:
            problems.append("student-widths and teacher-widths need three channel counts")
        if self.probe_per_class < 1 or min(self.probe_epochs, self.adapt_epochs) < 0:
            problems.append("probe-per-class must be >= 1 and the epochs >= 0")
        if self.adapt_backbone_lr < 0:
            problems.append("adapt-backbone-lr must be >= 0")
        if not 0.0 < self.teacher_val_fraction < 1.0:
            problems.append("teacher-val-fraction must be in (0, 1)")
        if self.canvas not in CANVAS_SHAPES:
            problems.append(f"canvas must be one of {', '.join(CANVAS_SHAPES)}")
        if self.val_per_class < 0:
            problems.append("val-per-class must be >= 0")
        problems += [p for p in (check_arch_name(self.student_arch, "student-arch"),
                                 check_arch_name(self.teacher_arch, "teacher-arch")) if p]
        if problems:
            raise ConfigError("fedsa: " + "; ".join(problems))
        self._check_layers()

    def _check_layers(self) -> None:
        """Layer names checked against the models before a run starts, where they can be
        built here: the student always, the teachers when teacher-arch is built in (a node's
        checkpoint of another architecture is checked on its node, in the teacher phase)."""
        with torch.random.fork_rng(devices=[]):  # building models must not move the run's RNG
            self._check_layers_of_models()

    def _check_layers_of_models(self) -> None:
        shape = CANVAS_SHAPES[self.canvas]
        student = build_network(self.student_arch, in_channels=shape[0], num_classes=NUM_CLASSES,
                                widths=self.student_widths, norm=self.student_norm,
                                key="fedsa.student-arch")
        resolve_layer(student, shape, self.student_layer, key="fedsa.student-layer")
        if self.teacher_arch in BUILTIN_ARCHS and (self.gradcam_layer or self.hint_layer):
            teacher = build_network(self.teacher_arch, in_channels=shape[0], num_classes=2,
                                    widths=self.teacher_widths)
            for key, name in (("fedsa.gradcam-layer", self.gradcam_layer),
                              ("fedsa.hint-layer", self.hint_layer)):
                resolve_layer(teacher, shape, name, key=key)
