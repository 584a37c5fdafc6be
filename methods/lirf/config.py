"""LIRF's configuration (`[lirf]` in a scenario, `--set lirf.KEY=VALUE`).

The inherited LocalTrainingConfig fields drive phase 0 (FedAvg → T_0) and the
retrain baseline; the `deposit_*` fields drive the owner's deposit training
(design notes §2.3 and §3.2, not shipped).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from methods.base import LocalTrainingConfig
from methods.config import ConfigError

LEVELS = ("class", "sample")
NORMS = ("batch", "group")
LR_SCHEDULES = ("constant", "cosine")
FEDAVG_DATA = ("all", "preserved")


@dataclass(frozen=True)
class LIRFConfig(LocalTrainingConfig):
    """Phase 0 / retrain FedAvg (inherited fields), deposit and withdrawal settings."""

    lr_schedule: str = "constant"
    """FedAvg learning rate over rounds: "constant", or "cosine" (lr·½(1+cos(π(r−1)/R)),
    carried to the nodes in each round's header)."""
    level: str = "class"
    """What is deposited: "class" (all of the owner's samples of `deposit-classes`) or
    "sample" (the owner's samples listed in `deposit-samples`)."""
    deposit_classes: tuple[int, ...] = (0, 1, 2)
    """Class-level deposit: the deposit classes (ḡ keeps their logits, g the rest)."""
    deposit_samples: str = ""
    """Sample-level deposit: ids into the owner's own training data, e.g. "0-199,250"."""
    owner_partition: int = 0
    """Partition id of the node that owns D_r (and, class-level, all deposit-class data)."""
    arch: str = "split-cnn"
    """The net: "split-cnn" (the protocol's CNN), "resnet" (methods/common/resnet.py, for
    32×32 inputs) or a user's builder "package.module:fn" (marked @model_builder)."""
    split_after: str = ""
    """Dotted module name the net is split after (shallow part = up to and including it);
    empty: the arch's own ("shallow" for split-cnn, "layer2" for resnet). arch.py."""
    norm: str = "batch"
    """Normalisation of the CNN blocks: "batch" (the protocol's) or "group" (see README)."""
    widths: tuple[int, ...] = (16, 32, 32)
    """Channels of the three conv blocks ("CNN 16-32-32"), or of the ResNet's three stages."""
    deposit_epochs: int = 10
    """Epochs of deposit training over D_r."""
    deposit_lr: float = 0.003
    """Constant SGD learning rate of the deposit training."""
    deposit_batch_size: int = 64
    """Mini-batch size of the deposit training."""
    deposit_weight_decay: float = 5e-4
    """L2 penalty of the deposit training (momentum is the inherited `momentum`)."""
    temperature: float = 4.0
    """KD temperature τ."""
    alpha: float = 0.8
    """KD weight α of the official objective: α·τ²·KD terms, (1−α)·CE terms. Chosen on
    validation by `fedvault bench lirf-choose`: the best H of T among the α whose recovered
    model keeps its preserved accuracy (methods/lirf/README.md "α on validation")."""
    anchor_samples: int = 0
    """Class level, our extension: this many of the owner's own preserved-class samples join
    the deposit training as anchors, on which T_r's deposit-class logits are held to T_0's
    (they learn to stay low off D_r; T is not trained on anchors). 0: the official
    objective, on D_r only. README "Recovery across deposit sets"."""
    lambda_at: float = 0.0
    """λ_at, weight of the attention-distance removal term (0 as in the official code)."""
    prune_ratio: float = 0.5
    """Fraction of each conv weight of the deposit module zeroed by magnitude (0 = none)."""
    withdraw_requesters: tuple[int, ...] = ()
    """Partitions whose withdraw requests the server polls, in order (empty = the owner)."""
    retrain_baseline: bool = True
    """Also run FedAvg from scratch without D_r (same schedule as phase 0) for the audit."""
    fedavg_data: str = "all"
    """Data of the FedAvg rounds: "all", or "preserved" (D_r dropped; set by the workflow
    for the retrain baseline)."""
    node_state_dir: str = ""
    """Where simulated nodes persist LIRF state (a real node uses its `state-dir` node
    config); empty in simulation = <run dir>/nodes, set by the workflow."""

    def validate(self) -> None:
        super().validate()
        problems = []
        if self.level not in LEVELS:
            problems.append(f"level must be one of {LEVELS}")
        if self.lr_schedule not in LR_SCHEDULES:
            problems.append(f"lr-schedule must be one of {LR_SCHEDULES}")
        if self.norm not in NORMS:
            problems.append(f"norm must be one of {NORMS}")
        if self.fedavg_data not in FEDAVG_DATA:
            problems.append(f"fedavg-data must be one of {FEDAVG_DATA}")
        if self.level == "class" and not self.deposit_classes:
            problems.append("deposit-classes must name at least one class")
        if self.level == "class" and len(set(self.deposit_classes)) != len(self.deposit_classes):
            problems.append("deposit-classes must not repeat a class")
        if any(c < 0 for c in self.deposit_classes) or self.owner_partition < 0:
            problems.append("deposit-classes and owner-partition must be >= 0")
        if self.level == "sample":
            parse_sample_ids(self.deposit_samples)  # raises ConfigError
        if self.anchor_samples < 0 or (self.anchor_samples and self.level != "class"):
            problems.append("anchor-samples must be >= 0, and 0 at the sample level (its "
                            "retained samples anchor it already)")
        if self.deposit_epochs < 1 or self.deposit_lr <= 0 or self.deposit_batch_size < 1:
            problems.append("deposit-epochs and deposit-batch-size must be >= 1, deposit-lr > 0")
        if self.temperature <= 0 or not 0.0 <= self.alpha <= 1.0:
            problems.append("temperature must be > 0 and alpha in [0, 1]")
        if not 0.0 <= self.prune_ratio < 1.0 or self.lambda_at < 0:
            problems.append("prune-ratio must be in [0, 1) and lambda-at >= 0")
        if len(self.widths) != 3 or min(self.widths) < 1:
            problems.append("widths must be three positive channel counts")
        problems += _arch_problems(self)
        if problems:
            raise ConfigError("lirf: " + "; ".join(problems))


def _arch_problems(cfg: LIRFConfig) -> list[str]:
    """The arch and split point; a built-in net is built (tiny) to list its split points, a
    user's is imported only by the preflight (LIRF.check_data), which also probes it."""
    from methods.lirf.arch import BUILTIN_ARCHS, arch_problem, template

    problem = arch_problem(cfg.arch, cfg.split_after)
    built_in = cfg.arch in BUILTIN_ARCHS and cfg.norm in NORMS
    if problem or not built_in or len(cfg.widths) != 3 or min(cfg.widths) < 1:
        return [problem] if problem else []
    try:
        template(cfg)
    except ConfigError as exc:
        return [str(exc).removeprefix("lirf.")]
    return []


def parse_sample_ids(text: str) -> tuple[int, ...]:
    """ "0-3,7" → (0, 1, 2, 3, 7): sorted unique ids; empty or malformed is an error."""
    ids: set[int] = set()
    try:
        for part in (p.strip() for p in text.split(",")):
            if not part:
                continue
            low, sep, high = part.partition("-")
            start, stop = int(low), int(high) if sep else int(low)
            if start < 0 or stop < start:
                raise ValueError(part)
            ids.update(range(start, stop + 1))
    except ValueError as exc:
        raise ConfigError(f"lirf.deposit-samples: cannot read {text!r} ({exc})") from None
    if not ids:
        raise ConfigError("lirf.deposit-samples must list at least one id for level 'sample'")
    return tuple(sorted(ids))


def round_lr(cfg: LIRFConfig, rnd: int, rounds: int) -> float:
    """The FedAvg learning rate of round `rnd` (1-based) of `rounds`."""
    if cfg.lr_schedule == "constant":
        return cfg.lr
    return cfg.lr * 0.5 * (1.0 + math.cos(math.pi * (rnd - 1) / rounds))
