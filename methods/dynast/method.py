"""DynaST as a federated client-side task: Liu et al., "DynaST: Dynamic Sparse Transformer for
Exemplar-Guided Image Generation", ECCV 2022 (arXiv:2207.06124). Dynamic attention
Â = softmax(QKᵀ/s) ⊙ 1[Q_pK_pᵀ/d_p > 0] (attention.py, Eq. 2-4), the coarse-to-fine sparse
cascade (nets.py) and the generator objective λ_rec‖ŷ − X‖₁ + λ_warp Σ_l‖warp_l − X_l‖₁
(losses.py), on procedural paper-doll pairs (dolls.py).

Federated mapping (design notes §7(e), not shipped): every client holds pairs of one texture family
(non-IID); FedAvg aggregates the whole generator (encoders, attention and pruning
projections, positional embedding, decoder). Stages (server/stages.py), identical
schedules, each from the same seeded initial weights:
  cascade      the method: dense 8×8 attention, sparse inter/inner-scale layers at 16², 32²
  coarse_only  dense 8×8 attention only (upsampled)
  dense        dense attention at every scale (feasible at 32²)
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from methods.base import Method, RunSpec, Stage, StageResult
from methods.common.datasets import ArrayDataset
from methods.dynast.config import VARIANTS, DynaSTConfig
from methods.dynast.dolls import make_pairs
from methods.dynast.losses import generator_loss
from methods.dynast.nets import FINE_SIZES, DynaSTGenerator

TEST_SEED_OFFSET = 1_000_003  # held-out identities: a seed stream no training set uses
EVAL_BATCH = 16


class DynaST(Method):
    name = "dynast"
    config_cls = DynaSTConfig
    paper = "Liu et al., DynaST: Dynamic Sparse Transformer for Exemplar-Guided Image Generation, ECCV 2022, arXiv:2207.06124"
    workflow = "stages"

    def build_model(self, spec: RunSpec) -> nn.Module:
        torch.set_num_threads(1)
        cfg = spec.method
        return DynaSTGenerator(cfg.ngf, cfg.dim, cfg.pos_dim, cfg.prune_dim, cfg.coarse_layers,
                               cfg.top_k, cfg.fine_temperature, cfg.variant)

    # ---- data: paper-doll pairs, one texture family per client ------------------
    def train_dataset(self, spec: RunSpec) -> ArrayDataset:
        cfg = spec.method
        x, y = make_pairs(tuple(range(cfg.families)), cfg.pairs_per_family, spec.federation.seed)
        return ArrayDataset(x, y, cfg.families, "dynast-dolls")

    def node_partition(self, spec: RunSpec, labels: np.ndarray, num_partitions: int) -> list[np.ndarray]:
        """Node i holds family i mod F; nodes sharing a family split its pairs evenly."""
        families = spec.method.families
        shards: list[np.ndarray] = []
        for node in range(num_partitions):
            sharing = list(range(node % families, num_partitions, families))
            pool = np.flatnonzero(labels == node % families)
            shards.append(np.array_split(pool, len(sharing))[sharing.index(node)])
        return shards

    def test_dataset(self, spec: RunSpec) -> ArrayDataset:
        cfg = spec.method
        per_family = -(-cfg.test_pairs // cfg.families)
        x, y = make_pairs(tuple(range(cfg.families)), per_family,
                          spec.federation.seed + TEST_SEED_OFFSET)
        return ArrayDataset(x, y, cfg.families, "dynast-dolls-test")

    def check_data(self, spec: RunSpec, num_classes: int) -> None:
        super().check_data(spec, spec.method.families)  # our own data, not data.dataset

    # ---- training and evaluation -------------------------------------------------
    def train_step(self, model: nn.Module, batch: tuple, spec: RunSpec) -> torch.Tensor:
        pairs, _ = batch
        cfg = spec.method
        generated = model(pairs)
        return generator_loss(generated.output, generated.warps, pairs[:, :3],
                              cfg.recon_weight, cfg.warp_weight)

    @torch.no_grad()
    def evaluate(self, model: nn.Module, dataset: ArrayDataset) -> dict[str, float]:
        """Full-resolution warp and reconstruction L1 (pixels in [0, 1]), the kept keys per
        query Σ_j M_ij over every layer and query, and attention entries counted per pair."""
        model.eval()
        device = next(model.parameters()).device  # the server's (methods/common/device.py)
        warp = recon = 0.0
        kept, entries = [], {}
        for start in range(0, len(dataset), EVAL_BATCH):
            pairs = torch.tensor(dataset.x[start:start + EVAL_BATCH]).to(device)
            out = model(pairs)
            warp += F.l1_loss(out.full_warp, pairs[:, :3], reduction="sum").item() / (3 * 32 * 32)
            recon += F.l1_loss(out.output, pairs[:, :3], reduction="sum").item() / (3 * 32 * 32)
            kept.extend(k.flatten().float() for k in out.kept)
            for size, count in out.entries.items():
                entries[size] = entries.get(size, 0) + count
        kept_all = torch.cat(kept)
        n = len(dataset)
        figures = {"warp_l1": warp / n, "recon_l1": recon / n,
                   "keys_per_query_mean": kept_all.mean().item(),
                   "keys_per_query_std": kept_all.std().item(),
                   "attention_entries": sum(entries.values()) / n}
        figures.update({f"attention_entries_{s}": entries.get(s, 0) / n for s in FINE_SIZES})
        return figures

    # ---- stages and summary ------------------------------------------------------
    def stages(self, spec: RunSpec) -> list[Stage]:
        return [Stage(variant, {"variant": variant}) for variant in VARIANTS]

    def summarize(self, spec: RunSpec, results: Mapping[str, StageResult],
                  out_dir: Path) -> dict[str, Any]:
        from methods.dynast.examples import write_examples

        final = {v: results[v].final for v in VARIANTS}
        cascade, dense = final["cascade"], final["dense"]
        big = FINE_SIZES[-1]
        models = {variant: self.stage_model(spec, variant, results) for variant in VARIANTS}
        write_examples(models, self.evaluation_dataset(spec), out_dir / "examples")
        return {
            "warp_l1": {v: final[v]["warp_l1"] for v in VARIANTS},
            "recon_l1": {v: final[v]["recon_l1"] for v in VARIANTS},
            # Counted in the forward passes of the server's test evaluation (attention.py).
            "attention_fraction": cascade["attention_entries"] / dense["attention_entries"],
            "attention_fraction_32": cascade[f"attention_entries_{big}"] / dense[f"attention_entries_{big}"],
            "keys_per_query_std": cascade["keys_per_query_std"],
            "keys_per_query_mean": cascade["keys_per_query_mean"],
            "warp_l1_by_round": {v: [r["warp_l1"] for r in results[v].history] for v in VARIANTS},
        }
