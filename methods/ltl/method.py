"""LTL as a federated client-side task: Yang et al., "Training Spiking Neural Networks with
Local Tandem Learning", NeurIPS 2022 (arXiv:2210.04532); the offline LTL loss L = CE(o, y) +
Σ_l c_l·MSE(r_l, clip(a_l / P99.9(a_l), 0, 1)) (losses.py).

Stages (server/stages.py), all FedAvg rounds over the same nodes, one round = one epoch
over the federation's data when local-epochs = 1:
  teacher      the ANN teacher, cross-entropy (FedAvg'ed; design notes §1(e))
  ltl          the SNN student from scratch, the frozen teacher embedded beside it; every
               node computes its own layer targets (losses.py) and only student weights change
  bptt         the same SNN from the same initial weights, end-to-end BPTT, CE only
  recalibrate  (noise-std > 0) the LTL student with W ← W(1+ε), ε ~ N(0, σ²), re-trained
               by LTL for `recalibration-rounds` (the paper's robustness claim)
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from methods.base import Method, RunSpec, Stage, StageResult
from methods.ltl.config import LTLConfig
from methods.ltl.losses import tandem_loss
from methods.ltl.nets import SpikingCNN, TandemPair, TeacherCNN

TEACHER, LTL_STAGE, BPTT, RECALIBRATE = "teacher", "ltl", "bptt", "recalibrate"
WITHIN = 0.03  # the band: SNN accuracy >= teacher accuracy − 3 points
# Accuracies are ratios of counts; this slack is far below one test image (1/360).
_EPS = 1e-9


def weight_noise(arrays: Mapping[str, np.ndarray], std: float, seed: int) -> dict[str, np.ndarray]:
    """W ← W·(1 + ε), ε ~ N(0, std²) per weight of the student (biases and teacher untouched)."""
    rng = np.random.default_rng(seed)
    noisy = dict(arrays)
    for key in sorted(arrays):
        if key.startswith("student.") and key.endswith(".weight"):
            w = arrays[key]
            noisy[key] = (w * (1.0 + std * rng.standard_normal(w.shape))).astype(w.dtype)
    return noisy


def accuracy_by_epoch(result: StageResult, local_epochs: int) -> dict[str, float]:
    """{"epoch": accuracy} of a stage's global model after each round (epoch = round·E)."""
    return {str((i + 1) * local_epochs): float(r["accuracy"]) for i, r in enumerate(result.history)}


class LTL(Method):
    name = "ltl"
    config_cls = LTLConfig
    paper = "Yang et al., Training SNNs with Local Tandem Learning, NeurIPS 2022, arXiv:2210.04532"
    workflow = "stages"

    def build_model(self, spec: RunSpec) -> nn.Module:
        cfg, test = spec.method, self.test_dataset(spec)
        shape = (test.x.shape[1], test.num_classes, tuple(test.x.shape[2:]), cfg.widths, cfg.hidden)
        if cfg.variant == "teacher":
            return TeacherCNN(*shape)
        # The student is built first: for one seed LTL and BPTT start from the same weights.
        student = SpikingCNN(*shape, time_steps=cfg.time_steps, threshold=cfg.threshold,
                             tau=cfg.tau, surrogate_width=cfg.surrogate_width)
        return student if cfg.variant == "bptt" else TandemPair(student, TeacherCNN(*shape))

    def train_step(self, model: nn.Module, batch: tuple, spec: RunSpec) -> torch.Tensor:
        x, y = batch
        cfg = spec.method
        if cfg.variant != "ltl":  # the teacher and the BPTT baseline: CE end to end
            return nn.functional.cross_entropy(model(x), y)
        with torch.no_grad():
            activations, _ = model.teacher.features(x)
        rates, logits = model.student.simulate(x, local=True)
        return tandem_loss(rates, logits, y, activations, p=cfg.target_percentile,
                           local_weight=cfg.local_weight)

    # --- stages ------------------------------------------------------------------
    def stages(self, spec: RunSpec) -> list[Stage]:
        cfg = spec.method
        stages = [
            Stage(TEACHER, {"variant": "teacher", "lr": cfg.teacher_lr}, rounds=cfg.teacher_rounds),
            Stage(LTL_STAGE, {"variant": "ltl"}, rounds=cfg.student_rounds),
            Stage(BPTT, {"variant": "bptt"}, rounds=cfg.bptt_rounds),
        ]
        if cfg.noise_std > 0:
            stages.append(Stage(RECALIBRATE, {"variant": "ltl"}, rounds=cfg.recalibration_rounds,
                                init_from=LTL_STAGE))
        return stages

    def stage_arrays(self, spec: RunSpec, stage: Stage,
                     finished: Mapping[str, StageResult]) -> dict[str, np.ndarray]:
        arrays = super().stage_arrays(spec, stage, finished)
        if stage.name == LTL_STAGE:  # a fresh student beside the federation's trained teacher
            arrays.update({f"teacher.{k}": v for k, v in finished[TEACHER].arrays.items()})
        elif stage.name == RECALIBRATE:
            arrays = weight_noise(arrays, spec.method.noise_std, spec.federation.seed)
        return arrays

    def summarize(self, spec: RunSpec, results: Mapping[str, StageResult],
                  out_dir: Path) -> dict[str, Any]:
        epochs = spec.method.local_epochs
        teacher = float(results[TEACHER].final["accuracy"])
        ltl = accuracy_by_epoch(results[LTL_STAGE], epochs)
        within = [int(e) for e, acc in ltl.items() if acc >= teacher - WITHIN - _EPS]
        student_teacher = {k[len("teacher."):]: v for k, v in results[LTL_STAGE].arrays.items()
                           if k.startswith("teacher.")}
        summary = {
            "teacher_accuracy": teacher,
            "snn_accuracy": float(results[LTL_STAGE].final["accuracy"]),
            "epochs_to_within_3pts": within[0] if within else None,
            "ltl_accuracy_at_epoch": ltl,
            "bptt_accuracy_at_epoch": accuracy_by_epoch(results[BPTT], epochs),
            # FedAvg of identical teachers may move them by float rounding only.
            "teacher_max_drift": max(float(np.abs(v - results[TEACHER].arrays[k]).max())
                                     for k, v in student_teacher.items()),
        }
        if RECALIBRATE in results:
            summary.update(self._robustness(spec, results))
        return summary

    def _robustness(self, spec: RunSpec, results: Mapping[str, StageResult]) -> dict[str, Any]:
        """Accuracy before/after the weight noise and after re-calibration; recovered share."""
        model = self.build_model(replace(spec, method=replace(spec.method, variant="ltl")))
        noisy_arrays = weight_noise(results[LTL_STAGE].arrays, spec.method.noise_std,
                                    spec.federation.seed)
        self.load_shared_state(model, noisy_arrays)
        noisy = self.evaluate(model, self.evaluation_dataset(spec))["accuracy"]
        clean = float(results[LTL_STAGE].final["accuracy"])
        recalibrated = float(results[RECALIBRATE].final["accuracy"])
        drop = clean - noisy
        return {"noisy_accuracy": noisy, "recalibrated_accuracy": recalibrated,
                "noise_recovery": (recalibrated - noisy) / drop if drop > 0 else None}
