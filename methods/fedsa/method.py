"""FedSA: Xie, Yu, Fang, Song et al., "Federated Selective Aggregation for Knowledge
Amalgamation", arXiv:2207.13309, 2022 (journal version: Chip 2(3):100053, 2023); official code:
zju-vipa/KamalEngine, examples/knowledge_amalgamation/FedSA.

A server owning a student and a few labelled probe images learns a NEW task
from teachers that stay on their nodes: (1) fit the student on the probe set;
(2) saliency-based selection: nodes compare their teacher's Grad-CAM maps with
the student's on the probe images and return one similarity scalar
(saliency.py; sim_i = Σ_n 0.5 + 0.5·cos(S_s[n], S_i[n])); (3) draw teachers
(selection.py: p = softmax(minmax(2 − N_p/sim))); (4) the drawn nodes distil
into a copy of the student with the hint loss L = MSE(translator(F_s), F_t)
(hint.py) and the server averages the copies, 1/k per draw; (5) task
adaptation (student.py). The server workflow is server/fedsa.py, the node
side clients/fedsa_host.py.

This module is the method-interface view: the student, its data, and a
supervised step on its target task (the interface's contract; FedSA's own
fits with a cosine schedule are in student.py, its node step in hint.py).
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from methods.base import Method, RunSpec
from methods.common.datasets import ArrayDataset
from methods.fedsa.architectures import build_network
from methods.fedsa.canvas import CANVAS_SHAPES, NUM_CLASSES, canvas_split
from methods.fedsa.config import FedSAConfig


class FedSAMethod(Method):
    name = "fedsa"
    config_cls = FedSAConfig
    paper = "Xie, Yu, Fang, Song et al., FedSA, arXiv:2207.13309 (Chip 2023)"
    workflow = "fedsa"
    own_validation = ("keeps its own validation canvases, carved from the training digits "
                      "(fedsa.val-per-class); set data.validation-fraction=0")

    def build_model(self, spec: RunSpec) -> nn.Module:
        cfg = spec.method
        return build_network(cfg.student_arch, in_channels=CANVAS_SHAPES[cfg.canvas][0],
                             num_classes=NUM_CLASSES, widths=cfg.student_widths,
                             norm=cfg.student_norm, key="fedsa.student-arch")

    def train_step(self, model: nn.Module, batch: tuple, spec: RunSpec) -> torch.Tensor:
        """Cross-entropy on labelled canvases (the target task)."""
        x, y = batch
        return nn.functional.cross_entropy(model(x), y)

    def train_dataset(self, spec: RunSpec) -> ArrayDataset:
        """Every node's canvases, labelled with the target task (for checks and contracts)."""
        nodes = canvas_split(spec).nodes
        return ArrayDataset(np.concatenate([n.x for n in nodes]),
                            np.concatenate([n.left for n in nodes]), NUM_CLASSES, "fedsa-canvas")

    def test_dataset(self, spec: RunSpec) -> ArrayDataset:
        return canvas_split(spec).test.target()

    def probe_dataset(self, spec: RunSpec) -> ArrayDataset:
        """The server's labelled probe set: `probe-per-class` canvases per class."""
        return canvas_split(spec).probe.target()

    def val_dataset(self, spec: RunSpec) -> ArrayDataset | None:
        """The server's validation canvases (`val-per-class` per class, from training digits);
        None when val-per-class = 0."""
        val = canvas_split(spec).val
        return None if val is None else val.target()
