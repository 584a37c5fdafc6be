"""Bottom-up pose with dual anatomical centers as a fedvault method.

Cheng, Ai, Wang, Wang, Tan, "Bottom-up 2D pose estimation via dual anatomical
centers for small-scale persons", arXiv:2208.11975 (Pattern Recognition 2023): poses
regressed from a body center and a head center with human-scale normalised offsets
(losses.py Eq. 1–3, targets.py), multi-scale training so a single-scale test copes
with small persons, no multi-scale test.

Federated mapping (design notes §3(e), not shipped): every node is a camera whose people
have heights in its own band of [train-height-min, train-height-max] (far-field
cameras see small people, near-field ones large); nodes train locally with the
shared loop and FedAvg averages all parameters. The server's pooled test set holds
people of 6–40 px; small = under 16 px. The claims are compared federated as stages
(server/stages.py): dual + multi-scale (the method), body-only + multi-scale, and
dual + single-scale training, whose final model is also tested at 3 scales.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from methods.base import Method, RunSpec, Stage, StageResult
from methods.common.datasets import ArrayDataset
from methods.pose.config import PoseConfig
from methods.pose.decode import Decoding, predict
from methods.pose.figures import make_images, unpack
from methods.pose.losses import center_loss
from methods.pose.metrics import average_precision, coco_ap
from methods.pose.nets import DualCenterNet
from methods.pose.targets import People, center_targets, random_rescale

TEST_SEED = 2208  # one pooled test set for every run: seeds differ in training only
STAGES = {"dual_multiscale": {}, "body_multiscale": {"centers": "body"},
          "dual_single_scale": {"multiscale_train": False}}


def camera_heights(hmin: float, hmax: float, camera: int, cameras: int) -> tuple[float, float]:
    """Camera `camera`'s person heights: a window of half the log-range, far to near."""
    lo, hi = np.log(hmin), np.log(hmax)
    if cameras == 1:
        return hmin, hmax
    width = (hi - lo) / 2
    start = lo + (hi - lo - width) * camera / (cameras - 1)
    return float(np.exp(start)), float(np.exp(start + width))


@functools.lru_cache(maxsize=2)
def _camera_images(cameras: int, count: int, hmin: float, hmax: float, seed: int,
                   min_width: float) -> ArrayDataset:
    parts = [make_images(count, camera_heights(hmin, hmax, c, cameras), seed * 1009 + c, min_width)
             for c in range(cameras)]
    x = np.concatenate(parts)
    x.flags.writeable = False  # shared by every caller in this process
    y = np.repeat(np.arange(cameras, dtype=np.int64), count)  # the label is the camera
    return ArrayDataset(x, y, max(cameras, 1), "pose-cameras")


@functools.lru_cache(maxsize=2)
def _test_images(count: int, hmin: float, hmax: float, min_width: float) -> ArrayDataset:
    x = make_images(count, (hmin, hmax), TEST_SEED, min_width)
    x.flags.writeable = False
    return ArrayDataset(x, np.zeros(count, np.int64), 1, "pose-test")


def steps_per_round(cfg: PoseConfig) -> int:
    """Local steps a camera takes per round (the shared loop keeps the last short batch)."""
    return cfg.local_epochs * math.ceil(cfg.images_per_camera / cfg.batch_size)


def batch_people(planes: torch.Tensor) -> People:
    present, height, keypoints, visible = unpack(planes)
    return People(present, height, keypoints, visible)


def truths_of(dataset: ArrayDataset) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    present, height, keypoints, visible = unpack(dataset.x[:, 3])
    return [(keypoints[i][present[i]], visible[i][present[i]], height[i][present[i]])
            for i in range(len(dataset))]


def pose_figures(model: nn.Module, dataset: ArrayDataset, decoding: Decoding,
                 small_height: float, scales: tuple[float, ...] = (1.0,)) -> dict[str, float]:
    """AP50 / recall / COCO AP of small persons and AP50 of all, at the given test scales."""
    images = torch.tensor(dataset.x[:, :3])
    detections = []
    for start in range(0, len(images), 100):
        detections += predict(model, images[start:start + 100], decoding, scales)
    dets = [(d.joints, d.heights, d.scores) for d in detections]
    truths = truths_of(dataset)
    ap_small, recall_small = average_precision(dets, truths, 0.5, small_height)
    ap_all, recall_all = average_precision(dets, truths, 0.5)
    return {"ap_small": ap_small, "recall_small": recall_small, "ap": ap_all, "recall": recall_all,
            "ap_small_coco": coco_ap(dets, truths, small_height)}


def conv_macs(model: nn.Module, size: int) -> int:
    """Multiply-accumulates of the model's convolutions on one size×size image."""
    total = 0

    def count(module, inputs, output):
        nonlocal total
        total += output.numel() * module.in_channels // module.groups * int(np.prod(module.kernel_size))

    hooks = [m.register_forward_hook(count) for m in model.modules() if isinstance(m, nn.Conv2d)]
    with torch.no_grad():
        model(torch.zeros(1, 3, size, size))
    for hook in hooks:
        hook.remove()
    return total


class PoseMethod(Method):
    name = "pose"
    config_cls = PoseConfig
    paper = "Cheng et al., Bottom-up 2D pose estimation via dual anatomical centers, arXiv:2208.11975"
    workflow = "stages"
    cpu_only = True  # its heat-map targets (targets.py) are built on the CPU (docs/gpu.md)

    def build_model(self, spec: RunSpec) -> nn.Module:
        cfg = spec.method
        model = DualCenterNet()
        # How this model's poses are read out travels with it to `evaluate`.
        model.decoding = Decoding(cfg.centers, cfg.peak_threshold, cfg.nms_oks, cfg.fuse_distance)
        model.small_height = cfg.small_height
        return model

    def train_dataset(self, spec: RunSpec) -> ArrayDataset:
        cfg = spec.method
        return _camera_images(spec.federation.num_clients, cfg.images_per_camera,
                              cfg.train_height_min, cfg.train_height_max, spec.federation.seed,
                              cfg.min_limb_width)

    def node_partition(self, spec: RunSpec, labels: np.ndarray,
                       num_partitions: int) -> list[np.ndarray]:
        # A node is a camera: it holds exactly its own images (cameras cycle over nodes).
        return [np.flatnonzero(labels % num_partitions == k) for k in range(num_partitions)]

    def test_dataset(self, spec: RunSpec) -> ArrayDataset:
        cfg = spec.method
        return _test_images(cfg.test_images, cfg.test_height_min, cfg.test_height_max,
                            cfg.min_limb_width)

    def local_lr(self, model: nn.Module, spec: RunSpec) -> float:
        """The cosine schedule at this round's middle step (the shared loop keeps one lr
        per round); the round's start is the clients' averaged step count."""
        cfg = spec.method
        if cfg.schedule_steps == 0:
            return cfg.lr
        middle = float(model.local_steps) + steps_per_round(cfg) / 2
        progress = min(middle / cfg.schedule_steps, 1.0)
        return cfg.lr * max(0.5 * (1 + math.cos(math.pi * progress)), 1e-3)  # Adam needs lr > 0

    def train_step(self, model: nn.Module, batch: tuple, spec: RunSpec) -> torch.Tensor:
        cfg = spec.method
        x, _ = batch
        model.local_steps += 1
        image, people = x[:, :3], batch_people(x[:, 3])
        if cfg.multiscale_train:
            image, people = random_rescale(image, people, cfg.scale_min, cfg.scale_max)
        outputs = model(image)
        kinds = ("body",) if cfg.centers == "body" else ("body", "head")
        return sum(center_loss(outputs[k], center_targets(people, k), cfg.heatmap_weight,
                               cfg.offset_weight) for k in kinds)

    @torch.no_grad()
    def evaluate(self, model: nn.Module, dataset: ArrayDataset) -> dict[str, float]:
        model.eval()
        return pose_figures(model, dataset, model.decoding, model.small_height)

    # --- the claims' comparison, federated (workflow "stages") -------------------
    def stages(self, spec: RunSpec) -> list[Stage]:
        cfg = spec.method
        horizon = cfg.schedule_steps or spec.federation.num_server_rounds * steps_per_round(cfg)
        return [Stage(name, {**overrides, "schedule_steps": horizon})
                for name, overrides in STAGES.items()]

    def summarize(self, spec: RunSpec, results: Mapping[str, StageResult],
                  out_dir: Path) -> dict[str, Any]:
        dual, body, single = (results[name].final for name in STAGES)
        model = self.stage_model(spec, "dual_single_scale", results)
        measured = self.evaluation_dataset(spec)
        with torch.no_grad():
            multi = pose_figures(model, measured, model.decoding,
                                 spec.method.small_height, spec.method.test_scales)
        size = int(measured.x.shape[-1])
        single_cost = conv_macs(model, size)
        multi_cost = sum(conv_macs(model, round(size * s)) for s in spec.method.test_scales)
        return {
            "ap_small": {"body_center": body["ap_small"], "dual_center": dual["ap_small"]},
            "recall_small": {"single_scale_train": single["recall_small"],
                             "multiscale_train": dual["recall_small"],
                             "single_scale_train_multi_test": multi["recall_small"],
                             "body_center": body["recall_small"]},
            "ap_small_multiscale_train_single_test": dual["ap_small"],
            "ap_small_single_train_single_test": single["ap_small"],
            "ap_small_single_train_multi_test": multi["ap_small"],
            "ap_small_coco": {"body_center": body["ap_small_coco"],
                              "dual_center": dual["ap_small_coco"],
                              "single_scale_train": single["ap_small_coco"],
                              "single_scale_train_multi_test": multi["ap_small_coco"]},
            "ap_all": {"body_center": body["ap"], "dual_center": dual["ap"],
                       "single_scale_train": single["ap"]},
            "inference_cost_ratio": single_cost / multi_cost,
            "test_scales": list(spec.method.test_scales),
        }
