"""HSCL as a federated client-side task: Wang et al., "Hierarchical Semi-Supervised
Contrastive Learning for Contamination-Resistant Anomaly Detection", ECCV 2022,
arXiv:2207.11789; loss L = L_sim + L_shift + L_HSCL (§3.4, methods/hscl/losses.py).

Each client holds a few labeled normals, a few labeled anomalies and unlabeled data
contaminated at its own rate; it trains encoder, heads and the prototype p with the
shared local loop, and FedAvg aggregates all of them (the prototype travels with the
encoder). The scenario is multi-stage: for every normal class it trains HSCL and the
CSI-lite contrastive baseline at each contamination ρ, and the supervised BCE baseline
at the claim's ρ, each federated over the same nodes (server/stages.py).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from statistics import fmean
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from methods.base import Method, RunSpec, Stage, StageResult
from methods.common.datasets import ArrayDataset
from methods.common.partition import stratified_holdout
from methods.hscl.config import HSCLConfig
from methods.hscl.data import (
    DIGIT_CLASSES,
    client_rates,
    client_shards,
    one_class_test,
    pooled_mnist,
    training_pool,
)
from methods.hscl.losses import hscl_loss, nt_xent, supervised_bce
from methods.hscl.nets import HSCLNet, augment, contrastive_views
from methods.hscl.scoring import auroc, normality_scores

BASELINE_KEYS = {"contrastive": "auroc_baseline_contrastive", "supervised": "auroc_baseline_supervised"}


def stage_name(variant: str, normal_class: int, contamination: float) -> str:
    return f"{variant}-c{normal_class}-rho{contamination:g}"


class HSCL(Method):
    name = "hscl"
    config_cls = HSCLConfig
    paper = "Wang et al., ECCV 2022, arXiv:2207.11789"
    workflow = "stages"
    cpu_only = True  # its augmentations (nets.py) draw on the CPU (docs/gpu.md)

    def build_model(self, spec: RunSpec) -> nn.Module:
        cfg = spec.method
        return HSCLNet(cfg.widths, cfg.projection_dim, cfg.variant, cfg.prototype_scale)

    # ---- data --------------------------------------------------------------------
    def train_dataset(self, spec: RunSpec) -> ArrayDataset:
        cfg = spec.method
        return training_pool(cfg.normal_class, spec.federation.seed, cfg.image_size,
                             cfg.labeled_normal_fraction, cfg.labeled_anomaly_fraction,
                             cfg.labeled_anomaly_classes)

    def node_partition(self, spec: RunSpec, labels: np.ndarray, num_partitions: int) -> list[np.ndarray]:
        cfg = spec.method
        digits = pooled_mnist("train", cfg.image_size)[1]  # the scenario's ground truth, not a client's
        if spec.data.validation_fraction:  # `labels` are the roles of the rows left to train on
            digits = digits[_digit_split(spec)[0]]
        return client_shards(digits, labels, normal_class=cfg.normal_class,
                             contamination=cfg.contamination, spread=cfg.contamination_spread,
                             num_clients=num_partitions, seed=spec.federation.seed,
                             labeled_only=cfg.variant == "supervised")

    def test_dataset(self, spec: RunSpec) -> ArrayDataset:
        return one_class_test(spec.method.normal_class, spec.method.image_size)

    def validation_split(self, spec: RunSpec, full: ArrayDataset) -> tuple[np.ndarray, np.ndarray]:
        """By the true digit, not by the pool's roles (`_digit_split`)."""
        return _digit_split(spec)

    def validation_dataset(self, spec: RunSpec) -> ArrayDataset | None:
        """The held-out training images labelled as the test set is (1 = the normal digit,
        0 = an anomaly): the labels come from the server's ground truth, as the test's do."""
        if not spec.data.validation_fraction:
            return None
        cfg = spec.method
        x, digits = pooled_mnist("train", cfg.image_size)
        held = _digit_split(spec)[1]
        return ArrayDataset(x[held], (digits[held] == cfg.normal_class).astype(np.int64), 2,
                            f"mnist5k-oneclass-{cfg.normal_class}-validation")

    def check_data(self, spec: RunSpec, num_classes: int) -> None:
        # The test set is binary (normal vs anomaly); normal-classes name MNIST's 10 digits.
        super().check_data(spec, DIGIT_CLASSES)

    # ---- training ----------------------------------------------------------------
    def train_step(self, model: nn.Module, batch: tuple, spec: RunSpec) -> torch.Tensor:
        x, roles = batch
        cfg = spec.method
        if cfg.variant == "supervised":
            return supervised_bce(model(augment(x))["binary"], roles)
        views, rotation = contrastive_views(x)
        out = model(views)
        z = F.normalize(out["z"], dim=1)
        loss = nt_xent(z, cfg.temperature) + F.cross_entropy(out["shift"], rotation)
        if cfg.variant == "hscl":
            # every view of an image keeps its role (the code repeats labels over all 8 views)
            loss = loss + hscl_loss(z, model.prototype, roles.repeat(len(z) // len(x)),
                                    k=cfg.mix_k, scale=cfg.logit_scale,
                                    threshold=cfg.weight_threshold)
        model.track_statistics(out["z"], out["shift"], cfg.stats_momentum)
        return loss

    @torch.no_grad()
    def evaluate(self, model: nn.Module, dataset: ArrayDataset) -> dict[str, float]:
        scores = normality_scores(model, torch.tensor(dataset.x))
        return {"auroc": auroc(dataset.y, scores.numpy())}

    # ---- stages and summary --------------------------------------------------------
    def stages(self, spec: RunSpec) -> list[Stage]:
        cfg = spec.method
        rhos = sorted(set(cfg.contaminations) | {cfg.contamination})
        stages = []
        for c in cfg.normal_classes:
            for variant in ("hscl", "contrastive"):
                stages += [Stage(stage_name(variant, c, rho),
                                 {"variant": variant, "normal_class": c, "contamination": rho})
                           for rho in rhos]
            stages.append(Stage(stage_name("supervised", c, cfg.contamination),
                                {"variant": "supervised", "normal_class": c,
                                 "contamination": cfg.contamination,
                                 "local_epochs": cfg.supervised_epochs}))
        return stages

    def summarize(self, spec: RunSpec, results: Mapping[str, StageResult],
                  out_dir: Path) -> dict[str, Any]:
        cfg = spec.method
        per_stage = {stage.name: self._final_auroc(spec.for_stage(stage), results[stage.name])
                     for stage in self.stages(spec)}

        def mean(variant: str, rho: float) -> float:
            return fmean(per_stage[stage_name(variant, c, rho)] for c in cfg.normal_classes)

        rhos = sorted(set(cfg.contaminations) | {cfg.contamination})
        by_rho = {v: {f"{rho:g}": mean(v, rho) for rho in rhos} for v in ("hscl", "contrastive")}
        lo, hi = f"{min(rhos):g}", f"{max(rhos):g}"
        return {
            "auroc": mean("hscl", cfg.contamination),
            **{key: mean(v, cfg.contamination) for v, key in BASELINE_KEYS.items()},
            "auroc_by_contamination": by_rho["hscl"],
            "auroc_baseline_contrastive_by_contamination": by_rho["contrastive"],
            "contamination_drop": {v: by_rho[v][lo] - by_rho[v][hi] for v in by_rho},
            "auroc_per_stage": per_stage,
            "auroc_last_round_clean_view": {n: r.final.get("auroc") for n, r in results.items()},
            "normal_classes": list(cfg.normal_classes),
            "contamination": cfg.contamination,
            "client_contamination_rates": {f"{rho:g}": client_rates(
                rho, cfg.contamination_spread, spec.federation.num_clients) for rho in rhos},
            "score_views": cfg.score_views,
        }

    def _final_auroc(self, spec: RunSpec, result: StageResult) -> float:
        """AUROC of a stage's final global model, scored with `score_views` augmentations."""
        torch.set_num_threads(1)
        model = self.build_model(spec)
        self.load_shared_state(model, result.arrays)
        test = self.evaluation_dataset(spec)
        scores = normality_scores(model, torch.tensor(test.x), views=spec.method.score_views,
                                  seed=spec.federation.seed)
        return auroc(test.y, scores.numpy())


def _digit_split(spec: RunSpec) -> tuple[np.ndarray, np.ndarray]:
    """(kept, held-out) rows of the training pool, stratified by the true digit (the
    server's ground truth), not by the pool's roles, so every digit, normal or anomaly,
    keeps its share on both sides."""
    digits = pooled_mnist("train", spec.method.image_size)[1]
    return stratified_holdout(digits, spec.data.validation_fraction, spec.federation.seed)
