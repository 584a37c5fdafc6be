"""Attention Diversification for Domain Generalization (Intra-ADR and I2-ADR):
Meng, Li, Xie, Wang, Pu, Chen, Li, Yuan. ECCV 2022, arXiv:2210.04206.

Losses (losses.py): Intra stage L_cls + L_intra (Eq. 2–4); I2 stage L_cls + L_intra +
L_inter with L_inter = w_dir·L_dir − L_dvr (Eq. 5–7, the official code's sign; code w_dir = 200).

Federated mapping (design notes §2(e), not shipped): every client holds one source domain; the
held-out target domain is never trained on and is the server's test set. Per
leave-one-domain-out split the scenario runs these FedAvg stages over the same nodes:

  domains-t      the K domain models: client k trains only domain model k (Intra-ADR);
                 each is averaged over its owner alone (Stage.average_changed_only)
  erm-warm-t     ERM + MixStyle, `warm_rounds` at lr          ─┐ identical schedules:
  erm-t          ... then `final_rounds` at lr·1/16             │ warm at lr, then
  intra-warm-t   Intra-ADR, `warm_rounds` at lr                 │ final rounds at lr/16
  intra-t        ... then `final_rounds` at lr·1/16             │
  i2adr-t        I2-ADR from intra-warm-t, `final_rounds` at lr/16 (the paper's stage 3)

A batch's labels carry its domain (y = 10·domain + digit), so the domain-model stage
knows which domain model a client's images train.
"""

from __future__ import annotations

import functools
import statistics
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from methods.attn_div.config import NUM_DOMAINS, AttnDivConfig
from methods.attn_div.domains import DOMAIN_NAMES, render_domain
from methods.attn_div.losses import (
    adr_classification_loss,
    attention_diversity,
    attention_entropy,
    inter_adr_loss,
    inter_adr_terms,
    intra_adr_loss,
)
from methods.attn_div.nets import ADRNet, ADROutput, I2ADRModel
from methods.base import Method, RunSpec, Stage, StageResult
from methods.common.datasets import ArrayDataset

CLASSES = 10


def source_domains(cfg: AttnDivConfig) -> list[int]:
    """The split's source domains; domain model k belongs to the k-th of them."""
    return [d for d in range(NUM_DOMAINS) if d != cfg.target_domain]


@functools.lru_cache(maxsize=4)
def _all_domains(count: int, size: int) -> ArrayDataset:
    parts = [render_domain(d, "train", count, size) for d in range(NUM_DOMAINS)]
    x = np.concatenate([p.x for p in parts])
    y = np.concatenate([p.y + CLASSES * d for d, p in enumerate(parts)])  # 10·domain + digit
    x.flags.writeable = y.flags.writeable = False
    return ArrayDataset(x, y, CLASSES * NUM_DOMAINS, "mnist5k-4domains")


class AttentionDiversification(Method):
    name = "attn-div"
    config_cls = AttnDivConfig
    paper = "Meng et al., Attention Diversification for Domain Generalization, ECCV 2022, arXiv:2210.04206"
    workflow = "stages"
    cpu_only = True  # MixStyle (nets.py) draws on the CPU (docs/gpu.md)

    def build_model(self, spec: RunSpec) -> nn.Module:
        cfg = spec.method
        return I2ADRModel(cfg.widths, NUM_DOMAINS - 1, mix_p=cfg.mixstyle_p, mix_alpha=cfg.mixstyle_alpha)

    def train_dataset(self, spec: RunSpec) -> ArrayDataset:
        return _all_domains(spec.method.train_per_domain, spec.method.image_size)

    def test_dataset(self, spec: RunSpec) -> ArrayDataset:
        cfg = spec.method
        return render_domain(cfg.target_domain, "test", cfg.test_per_domain, cfg.image_size)

    def validation_dataset(self, spec: RunSpec) -> ArrayDataset | None:
        """Training-domain validation (the usual model selection of domain generalisation):
        the held-out training images of the split's source domains, labelled by digit. The
        target domain is never looked at, so a setting chosen on it is not tuned to it."""
        return self._held_out(spec, source_domains(spec.method))

    def _held_out(self, spec: RunSpec, domains: list[int]) -> ArrayDataset | None:
        held = super().validation_dataset(spec)  # stratified over the 40 domain × digit labels
        if held is None:
            return None
        keep = np.isin(held.y // CLASSES, domains)
        return ArrayDataset(held.x[keep], held.y[keep] % CLASSES, CLASSES, "mnist5k-4domains-validation")

    def node_partition(self, spec: RunSpec, labels: np.ndarray, num_partitions: int) -> list[np.ndarray]:
        """One source domain per node (nodes beyond K share a domain; fewer hold several)."""
        sources, domain = source_domains(spec.method), labels // CLASSES
        k = len(sources)
        if num_partitions <= k:
            return [np.flatnonzero(np.isin(domain, sources[p::num_partitions])) for p in range(num_partitions)]
        shards = []
        for p in range(num_partitions):
            sharers = len(range(p % k, num_partitions, k))
            shards.append(np.array_split(np.flatnonzero(domain == sources[p % k]), sharers)[p // k])
        return shards

    def train_step(self, model: nn.Module, batch: tuple, spec: RunSpec) -> torch.Tensor:
        cfg: AttnDivConfig = spec.method
        x, y = batch
        if cfg.variant == "domains":
            return self._domain_models_loss(model, x, y, cfg)
        digits = y % CLASSES
        out = model.student.forward_all(x)
        if cfg.variant == "erm":
            return F.cross_entropy(out.logits, digits)
        loss = self._adr_loss(out, digits, cfg, cfg.intra_prob if cfg.variant == "intra" else cfg.i2_intra_prob)
        if cfg.variant == "i2" and torch.rand(()) < cfg.inter_prob:
            loss = loss + self._inter_loss(model, x, digits, out, cfg)
        return loss

    @staticmethod
    def _adr_loss(out: ADROutput, digits: torch.Tensor, cfg: AttnDivConfig, intra_prob: float) -> torch.Tensor:
        loss = adr_classification_loss(out.logits, out.logits_adr, digits)
        if torch.rand(()) < intra_prob:  # the code applies L_intra to a random share of batches
            loss = loss + cfg.intra_weight * intra_adr_loss(out.adr_map, cfg.top_k)
        return loss

    def _domain_models_loss(self, model: I2ADRModel, x, y, cfg: AttnDivConfig) -> torch.Tensor:
        """Each image trains the Intra-ADR domain model of its own domain (paper stage 1)."""
        domain, sources = y // CLASSES, source_domains(cfg)
        if not torch.isin(domain, torch.tensor(sources)).all():
            raise ValueError(f"a node holds images of the target domain {cfg.target_domain}")
        loss = x.new_zeros(())
        for slot, d in enumerate(sources):
            mask = domain == d
            if mask.any():
                out = model.domain_models[slot].forward_all(x[mask])
                share = mask.float().mean()
                loss = loss + share * self._adr_loss(out, y[mask] % CLASSES, cfg, cfg.intra_prob)
        return loss

    @staticmethod
    def _inter_loss(model: I2ADRModel, x, digits, out: ADROutput, cfg: AttnDivConfig) -> torch.Tensor:
        with torch.no_grad():  # the domain models are frozen teachers
            others = [m.forward_all(x, mix=False) for m in model.domain_models]
        correct = torch.stack([o.logits.argmax(1) == digits for o in (out, *others)])
        all_maps = [[m.detach() for m in out.stage_maps]] + [o.stage_maps for o in others]
        dir_loss, dvr_loss = inter_adr_terms(out.stage_maps, all_maps, correct)
        return inter_adr_loss(dir_loss, dvr_loss, dir_weight=cfg.dir_weight,
                              dvr_weight=cfg.dvr_weight, sign=cfg.dvr_sign)

    @torch.no_grad()
    def evaluate(self, model: nn.Module, dataset: ArrayDataset) -> dict[str, float]:
        """The student on `dataset` (the target domain): accuracy, CE, attention diversity of F."""
        return evaluate_net(model.student if isinstance(model, I2ADRModel) else model, dataset)

    # --- the scenario's stages and summary --------------------------------------------
    def stages(self, spec: RunSpec) -> list[Stage]:
        cfg: AttnDivConfig = spec.method
        low = {"lr": cfg.lr * cfg.final_lr_factor}
        out = []
        for t in cfg.splits:
            split = {"target_domain": t}
            out += [
                # domain model k is exactly what its owner trained: the others' untouched copies
                # are left out of its average (plain FedAvg would move it by 1/K of each update)
                Stage(f"domains-{t}", {**split, "variant": "domains", "local_epochs": cfg.domain_local_epochs},
                      rounds=cfg.domain_rounds, average_changed_only=True),
                Stage(f"erm-warm-{t}", {**split, "variant": "erm"}, cfg.warm_rounds, f"domains-{t}"),
                Stage(f"erm-{t}", {**split, **low, "variant": "erm"}, cfg.final_rounds, f"erm-warm-{t}"),
                Stage(f"intra-warm-{t}", {**split, "variant": "intra"}, cfg.warm_rounds, f"domains-{t}"),
                Stage(f"intra-{t}", {**split, **low, "variant": "intra"}, cfg.final_rounds, f"intra-warm-{t}"),
                Stage(f"i2adr-{t}", {**split, **low, "variant": "i2"}, cfg.final_rounds, f"intra-warm-{t}"),
            ]
        return out

    def summarize(self, spec: RunSpec, results: Mapping[str, StageResult], out_dir: Path) -> dict[str, Any]:
        cfg: AttnDivConfig = spec.method
        splits = {}
        for t in cfg.splits:
            final = {v: results[f"{v}-{t}"].final for v in ("erm", "intra", "i2adr")}
            splits[DOMAIN_NAMES[t]] = {
                "target_accuracy": {v: f["accuracy"] for v, f in final.items()},
                "attention_diversity": {v: f["attention_diversity"] for v, f in final.items()},
                "attention_entropy": {v: f["attention_entropy"] for v, f in final.items()},
                "domain_models_accuracy": self._domain_model_accuracies(
                    spec, t, results[f"domains-{t}"].arrays),
            }

        def mean(figure: str, variant: str) -> float:
            return statistics.fmean(s[figure][variant] for s in splits.values())

        return {
            "target_accuracy": {v: mean("target_accuracy", v) for v in ("erm", "intra", "i2adr")},
            "attention_diversity": {v: mean("attention_diversity", v) for v in ("erm", "intra")},
            "splits": splits,
        }

    def _domain_model_accuracies(self, spec: RunSpec, target: int, arrays) -> dict[str, list[float]]:
        """How well each frozen domain model (teacher of L_inter) does on its own domain's
        test images and on the target domain: the inter-model term is only as good as they
        are. Under data.evaluate-on=validation both are validation images of the sources."""
        split_spec = spec.for_stage(Stage("probe", {"target_domain": target}))
        model = self.build_model(split_spec)
        self.load_shared_state(model, arrays)
        cfg = split_spec.method
        if spec.data.evaluate_on == "validation":  # no test image is read
            own = [self._held_out(split_spec, [d]) for d in source_domains(cfg)]
        else:
            own = [render_domain(d, "test", cfg.test_per_domain, cfg.image_size)
                   for d in source_domains(cfg)]
        target_test = self.evaluation_dataset(split_spec)
        return {"source": [evaluate_net(m, t)["accuracy"] for m, t in zip(model.domain_models, own)],
                "target": [evaluate_net(m, target_test)["accuracy"] for m in model.domain_models]}


@torch.no_grad()
def evaluate_net(net: ADRNet, dataset: ArrayDataset) -> dict[str, float]:
    net.eval()
    x, y = torch.tensor(dataset.x), torch.tensor(dataset.y)
    loss = correct = diversity = entropy = 0.0
    for start in range(0, len(y), 500):
        out = net.forward_all(x[start:start + 500], mix=False)
        target = y[start:start + 500]
        loss += F.cross_entropy(out.logits, target, reduction="sum").item()
        correct += (out.logits.argmax(1) == target).sum().item()
        diversity += attention_diversity(out.stage_maps[-1]).sum().item()
        entropy += attention_entropy(out.stage_maps[-1]).sum().item()
    return {"accuracy": correct / len(y), "loss": loss / len(y), "attention_diversity": diversity / len(y),
            "attention_entropy": entropy / len(y)}
