"""GNN style transfer as a federated client-side task: Jing et al., "Learning Graph Neural
Networks for Image Style Transfer", ECCV 2022, arXiv:2207.11681 (design notes §6, not shipped).

Each node holds private content crops and its own style families (non-IID); it trains the
patch-graph attention (W_c, W_s, a) and the decoder on L_c + λ_s·L_s (losses.py) with the
shared local loop, and FedAvg aggregates them. The encoder/loss net is frozen and rebuilt
identically on every node from its seed, so it never travels. Two federated stages over the
same nodes: the GNN model and the AdaIN baseline (same encoder and decoder, global
statistics only); the summary compares them on the server's held-out pairs and measures
how much the GNN's outputs change with the number of edges k.
"""

from __future__ import annotations

from collections.abc import Mapping
from itertools import combinations
from pathlib import Path
from statistics import fmean
from typing import Any

import numpy as np
import torch
from torch import nn

from methods.base import Method, RunSpec, Stage, StageResult
from methods.common.datasets import ArrayDataset
from methods.style_gnn.config import StyleGNNConfig
from methods.style_gnn.data import FAMILIES, family_shards, style_pairs
from methods.style_gnn.figures import write_examples
from methods.style_gnn.losses import (
    content_loss,
    mean_pixel_l2,
    patch_nn_distance,
    structure_loss,
    style_loss,
)
from methods.style_gnn.nets import StyleTransferNet

EXAMPLE_ROWS = 6  # one held-out pair per style family


def split_pair(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """A packed batch N×6×S×S → (content N×3×S×S, style N×3×S×S)."""
    return x[:, :3], x[:, 3:]


class StyleGNN(Method):
    name = "style-gnn"
    config_cls = StyleGNNConfig
    paper = "Jing et al., ECCV 2022, arXiv:2207.11681"
    workflow = "stages"
    cpu_only = True  # its losses (losses.py) build CPU tensors (docs/gpu.md)

    def build_model(self, spec: RunSpec) -> nn.Module:
        cfg = spec.method
        return StyleTransferNet(variant=cfg.variant, widths=cfg.encoder_widths,
                                encoder_seed=cfg.encoder_seed, hidden=cfg.hidden, heads=cfg.heads,
                                k=cfg.k, style_scales=cfg.style_scales)

    # ---- data --------------------------------------------------------------------
    def train_dataset(self, spec: RunSpec) -> ArrayDataset:
        cfg = spec.method
        x, y = style_pairs("train", cfg.pairs_per_family, cfg.image_size, spec.federation.seed)
        return ArrayDataset(x, y, len(FAMILIES), "style-pairs", FAMILIES)

    def node_partition(self, spec: RunSpec, labels: np.ndarray, num_partitions: int) -> list[np.ndarray]:
        return family_shards(labels, num_partitions)

    def test_dataset(self, spec: RunSpec) -> ArrayDataset:
        cfg = spec.method
        x, y = style_pairs("test", cfg.test_pairs, cfg.image_size, spec.federation.seed)
        return ArrayDataset(x, y, len(FAMILIES), "style-pairs-test", FAMILIES)

    # ---- training ----------------------------------------------------------------
    def train_step(self, model: nn.Module, batch: tuple, spec: RunSpec) -> torch.Tensor:
        content, style = split_pair(batch[0])
        ks = spec.method.train_ks
        if ks:  # the loop seeds torch per round and node: the draw is reproducible
            model.k = ks[int(torch.randint(len(ks), ()))]
        with torch.no_grad():
            style_feats = model.encode(style)
        target = model.target(content, style, style_feats)
        out_feats = model.encode(model.decoder(target))
        return content_loss(out_feats[-1], target) + spec.method.style_weight * style_loss(
            out_feats, style_feats)

    @torch.no_grad()
    def evaluate(self, model: nn.Module, dataset: ArrayDataset) -> dict[str, float]:
        figures, _ = _measure(model, torch.tensor(dataset.x))
        return {name: float(values.mean()) for name, values in figures.items()}

    # ---- stages and summary --------------------------------------------------------
    def stages(self, spec: RunSpec) -> list[Stage]:
        return [Stage("gnn", {"variant": "gnn"}), Stage("adain", {"variant": "adain"})]

    def summarize(self, spec: RunSpec, results: Mapping[str, StageResult],
                  out_dir: Path) -> dict[str, Any]:
        torch.set_num_threads(1)
        cfg = spec.method
        pairs = torch.tensor(self.evaluation_dataset(spec).x)
        adain_figs, adain_out = _measure(self.stage_model(spec, "adain", results), pairs)
        gnn_model = self.stage_model(spec, "gnn", results)
        by_k = {}
        for k in sorted(set(cfg.eval_ks) | {cfg.k}):
            gnn_model.k = k
            by_k[k] = _measure(gnn_model, pairs)
        headline = by_k[cfg.k][0]
        columns = {"content": pairs[:, :3].numpy(), "style": pairs[:, 3:].numpy(),
                   "adain": adain_out.numpy(),
                   **{f"gnn_k{k}": by_k[k][1].numpy() for k in cfg.eval_ks}}
        write_examples(out_dir, columns, min(EXAMPLE_ROWS, len(pairs)))
        return {
            "patch_nn_distance": {"gnn": _mean(headline["patch_nn_distance"]),
                                  "adain": _mean(adain_figs["patch_nn_distance"])},
            "content_loss": {"gnn": _mean(headline["content_loss"]),
                             "adain": _mean(adain_figs["content_loss"])},
            "diversity_by_k": diversity_by_k({k: by_k[k][1] for k in cfg.eval_ks}),
            "patch_nn_distance_by_k": {str(k): _mean(by_k[k][0]["patch_nn_distance"]) for k in by_k},
            "content_loss_by_k": {str(k): _mean(by_k[k][0]["content_loss"]) for k in by_k},
            "style_loss": {"gnn": _mean(headline["style_loss"]),
                           "adain": _mean(adain_figs["style_loss"])},
            "k": cfg.k,
            "test_pairs": len(pairs),
            "examples": "examples/grid.png",
        }


@torch.no_grad()
def _measure(model: nn.Module, pairs: torch.Tensor) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
    """Per-pair figures of the model's outputs, and the outputs (N×3×S×S)."""
    model.eval()
    content, style = split_pair(pairs)
    outputs = model(content, style)
    out_feats, content_feats, style_feats = model.encode(outputs), model.encode(content), model.encode(style)
    figures = {
        "patch_nn_distance": patch_nn_distance(out_feats[-1], style_feats[-1]),
        "content_loss": structure_loss(out_feats[-1], content_feats[-1]),
        "style_loss": torch.stack([style_loss([o[i:i + 1] for o in out_feats],
                                              [s[i:i + 1] for s in style_feats])
                                   for i in range(len(pairs))]),
    }
    return figures, outputs


def _mean(values: torch.Tensor) -> float:
    return float(values.mean())


def diversity_by_k(outputs: Mapping[int, torch.Tensor]) -> dict[str, float]:
    """For each k: the mean, over the other k′ and the pairs, of the mean pixel L2 between the
    k- and k′-outputs of the same (content, style) pair."""
    pairwise = {frozenset(ab): float(mean_pixel_l2(outputs[ab[0]], outputs[ab[1]]).mean())
                for ab in combinations(sorted(outputs), 2)}
    return {str(k): fmean(pairwise[frozenset((k, other))] for other in outputs if other != k)
            for k in outputs}
