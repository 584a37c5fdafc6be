"""The one method interface every fedvault method implements, and the run spec it reads.

A method says how to build its model, which data a client trains on, one local
update step, how to evaluate, and what travels to the server. The local loop,
DP, checkpointing and the Flower plumbing live elsewhere and are shared; a
method never branches on them. Building a RunSpec from config keys (it needs the
registry) is methods/resolve.py; the server's strategies are server/strategy.py.
"""

from __future__ import annotations

import dataclasses
import json
from abc import ABC, abstractmethod
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, ClassVar, Mapping

import numpy as np
import torch
from torch import nn

from methods.common.datasets import ArrayDataset, load_dataset
from methods.config import Bound, ConfigError, DataConfig, FederationConfig, kebab, to_flat
from methods.privacy_config import AuditConfig, DPConfig
from methods.secagg_config import SecAggConfig

# Cross-cutting config sections every method accepts (`dp.target-epsilon`, `audit.enabled`).
CROSS_CUTTING = {"dp": DPConfig, "audit": AuditConfig, "secagg": SecAggConfig}


@dataclass(frozen=True)
class LocalTrainingConfig:
    """Hyper-parameters of the shared local training loop (methods extend this)."""

    local_epochs: int = 1
    """Epochs over the client's data per round (E)."""
    batch_size: int = 32
    """Mini-batch size (B)."""
    lr: float = 0.05
    """SGD learning rate (η)."""
    momentum: float = 0.9
    """SGD momentum."""
    weight_decay: float = 0.0
    """L2 penalty."""

    # Valid ranges (methods/config.py check_bounds, with the method's prefix: `fedavg.lr`);
    # batch-size is also checked against the data before a run starts (preflight).
    BOUNDS = {
        "local_epochs": Bound(0, 1_000),
        "batch_size": Bound(1),
        "lr": Bound(0, open_low=True),
        "momentum": Bound(0, 1, open_high=True),  # torch refuses < 0; >= 1 never converges
        "weight_decay": Bound(0),  # torch refuses < 0 inside every client
    }

    def validate(self) -> None:
        pass  # subclasses call super().validate(); the ranges are BOUNDS


@dataclass(frozen=True)
class Stage:
    """One federated training run inside a multi-stage method (server/stages.py).

    A method that compares itself with baselines or ablations, or trains in phases
    (a teacher first, then a student from it), lists its stages; each is an ordinary
    sequence of FedAvg rounds over the same nodes with the method's config changed by
    `overrides`, so the comparison is federated too and shares every guarantee.
    """

    name: str
    overrides: Mapping[str, Any] = field(default_factory=dict)
    """Method-config fields (python names) that differ in this stage, e.g. {"variant": "bptt"}."""
    rounds: int | None = None
    """Server rounds of this stage; None: the federation's num-server-rounds."""
    init_from: str | None = None
    """Start from the final global arrays of this earlier stage (else a fresh model)."""
    average_changed_only: bool = False
    """FedAvg each array over only the replies that changed it (server/stages.py): for
    stages where each client trains its own part of the model (one sub-model per client),
    so the others' unchanged copies do not dilute the owner's update. Needs fedavg."""


@dataclass
class StageResult:
    """What a finished stage hands to `Method.summarize`."""

    history: list[dict[str, Any]]
    """The per-round records (evaluation figures of the global model after each round)."""
    arrays: dict[str, np.ndarray]
    """The final global arrays."""

    @property
    def final(self) -> dict[str, Any]:
        return self.history[-1] if self.history else {}


@dataclass(frozen=True)
class RunSpec:
    """A fully resolved run: federation + data + the method's own config (+ dp, audit, secagg)."""

    federation: FederationConfig
    data: DataConfig
    method: Any
    dp: DPConfig = DPConfig()
    audit: AuditConfig = AuditConfig()
    secagg: SecAggConfig = SecAggConfig()
    method_section: str = ""
    """The method's config section, its `name`, when `federation.method` is another name for
    it: a user's `mymethod:TinyCNN` keeps its keys under `[tinycnn]` (methods/resolve.py)."""

    @property
    def method_name(self) -> str:
        """What `get_method` resolves: a registered name or a user's `module:Class`."""
        return self.federation.method

    @property
    def section(self) -> str:
        """The prefix of the method's own keys (`fedavg.lr`, `tinycnn.lr`)."""
        return self.method_section or self.federation.method

    def for_stage(self, stage: Stage) -> "RunSpec":
        """This spec with the stage's method-config overrides applied."""
        return replace(self, method=replace(self.method, **dict(stage.overrides)))

    def to_flat(self) -> dict[str, Any]:
        flat = to_flat(self.federation)
        flat.update(to_flat(self.data, "data."))
        flat.update(to_flat(self.method, self.section + "."))
        for section in CROSS_CUTTING:
            flat.update(to_flat(getattr(self, section), section + "."))
        return flat

    def to_json(self) -> str:
        """The flat keys as JSON (every RoundHeader carries it); read back by
        methods/resolve.py's run_spec_from_json."""
        return json.dumps(self.to_flat(), sort_keys=True)


class Method(ABC):
    """A federated method: model, client data, local step, evaluation, payload."""

    name: ClassVar[str]
    config_cls: ClassVar[type]
    paper: ClassVar[str] = ""
    # Which server workflow orchestrates the method (server/workflows.py).
    workflow: ClassVar[str] = "rounds"
    # True for a method whose step or evaluation builds tensors on the CPU (an environment
    # in numpy, module-level constants, draws without `device=`): `device=auto` runs it on
    # the CPU and an accelerator named explicitly is refused (methods/common/device.py).
    cpu_only: ClassVar[bool] = False
    # Where a method that keeps its own validation data says so: `data.validation-fraction`
    # is then refused with this text (FedSA's server holds validation canvases instead).
    own_validation: ClassVar[str] = ""

    @abstractmethod
    def build_model(self, spec: RunSpec) -> nn.Module:
        """A freshly initialised model (the caller seeds torch first)."""

    @abstractmethod
    def train_step(self, model: nn.Module, batch: tuple, spec: RunSpec) -> torch.Tensor:
        """The loss of one local mini-batch; the shared loop does backward and step."""

    def per_sample_loss(self, model: nn.Module, batch: tuple, spec: RunSpec) -> torch.Tensor:
        """The (N,) per-example losses whose mean is `train_step`'s loss.

        Optional: DP-SGD with ghost clipping (clients/privacy.py) reweights each
        example's loss, which a mean cannot do. Methods that override it can use it.
        """
        raise NotImplementedError(f"{type(self).__name__} gives no per-example losses")

    def train_dataset(self, spec: RunSpec) -> ArrayDataset:
        """The training data, the validation split included (`fit_dataset` takes it out)."""
        return load_dataset(spec.data.dataset, "train", root=spec.data.root or None,
                            **spec.data.folder_format())

    # --- the splits: what nodes train on, what the run is measured on --------------------
    def fit_dataset(self, spec: RunSpec) -> ArrayDataset:
        """What the federation's partitions are cut from: `train_dataset` less the
        validation split (`data.validation-fraction`); all of it without one."""
        full = self.train_dataset(spec)
        if not spec.data.validation_fraction:
            return full
        return full.subset(self.validation_split(spec, full)[0])

    def validation_dataset(self, spec: RunSpec) -> ArrayDataset | None:
        """The validation split: held out of `train_dataset`, no node trains on it. None
        without `data.validation-fraction`."""
        if not spec.data.validation_fraction:
            return None
        full = self.train_dataset(spec)
        return full.subset(self.validation_split(spec, full)[1])

    def validation_split(self, spec: RunSpec, full: ArrayDataset) -> tuple[np.ndarray, np.ndarray]:
        """(kept, held-out) indices into `full`. Default: stratified by label and seeded by
        the run's seed, so every class (or, for methods whose label is the node a row
        belongs to, every node) keeps its share. The same spec always gives the same split:
        a node that is a fresh process every round never trains on a held-out row."""
        from methods.common.partition import stratified_holdout

        return stratified_holdout(full.y, spec.data.validation_fraction, spec.federation.seed)

    def evaluation_dataset(self, spec: RunSpec) -> ArrayDataset:
        """What every figure of the run is measured on: the test split, or the validation
        split under `data.evaluate-on=validation` (then no test figure is read)."""
        if spec.data.evaluate_on == "validation":
            validation = self.validation_dataset(spec)
            if validation is None:  # DataConfig.validate refuses this before a run starts
                raise ConfigError("data.evaluate-on=validation needs data.validation-fraction > 0")
            return validation
        return self.test_dataset(spec)

    def node_partition(self, spec: RunSpec, labels: np.ndarray, num_partitions: int) -> list[np.ndarray]:
        """Each simulated/demo node's indices into `fit_dataset` (the scenario's partitioner).

        A method whose protocol fixes who holds what overrides it (LIRF: the owner
        node holds the deposit classes).
        """
        from methods.common.partition import partition

        return partition(labels, scheme=spec.data.partitioner, num_clients=num_partitions,
                         seed=spec.federation.seed, alpha=spec.data.dirichlet_alpha,
                         classes_per_client=spec.data.classes_per_client)

    def test_dataset(self, spec: RunSpec) -> ArrayDataset:
        """The server's held-out evaluation data."""
        return load_dataset(spec.data.dataset, "test", root=spec.data.root or None,
                            **spec.data.folder_format())

    @torch.no_grad()
    def evaluate(self, model: nn.Module, dataset: ArrayDataset) -> dict[str, float]:
        """Accuracy and mean cross-entropy on `dataset`, on the device `model` is on."""
        model.eval()
        device = next(model.parameters()).device
        x = torch.tensor(dataset.x)  # a copy: cached data sets are read-only
        y = torch.tensor(dataset.y)
        loss, correct = 0.0, 0
        for start in range(0, len(y), 512):
            logits = model(x[start : start + 512].to(device))
            target = y[start : start + 512].to(device)
            loss += nn.functional.cross_entropy(logits, target, reduction="sum").item()
            correct += (logits.argmax(1) == target).sum().item()
        return {"accuracy": correct / len(y), "loss": loss / len(y)}

    def shared_state(self, model: nn.Module) -> dict[str, np.ndarray]:
        """What travels to the server: by default every tensor of the state dict."""
        return {k: v.detach().cpu().numpy() for k, v in model.state_dict().items()}

    def load_shared_state(self, model: nn.Module, arrays: Mapping[str, np.ndarray]) -> None:
        # CPU tensors: load_state_dict copies each into the model's own tensor, on its device
        state = {k: torch.from_numpy(np.asarray(v)) for k, v in arrays.items()}
        model.load_state_dict(state, strict=True)

    def local_lr(self, model: nn.Module, spec: RunSpec) -> float:
        """The learning rate of this round's local training (default: the config's `lr`).

        `model` already holds the global state the round received: a method whose
        schedule follows it overrides this (Ask-AC decays lr over environment steps).
        """
        return spec.method.lr

    # --- multi-stage methods (workflow "stages", server/stages.py) ---------------
    def stages(self, spec: RunSpec) -> list[Stage]:
        """The federated runs this method's scenario is made of (default: one)."""
        return [Stage("main")]

    def stage_arrays(self, spec: RunSpec, stage: Stage,
                     finished: Mapping[str, StageResult]) -> dict[str, np.ndarray]:
        """The global arrays a stage starts from (`spec` already has its overrides).

        Default: the final arrays of `stage.init_from`, else a fresh model seeded by
        the run's seed. Override to combine stages (e.g. freeze a trained teacher
        inside the student's model).
        """
        if stage.init_from is not None:
            return dict(finished[stage.init_from].arrays)
        torch.manual_seed(spec.federation.seed)
        return self.shared_state(self.build_model(spec))

    def stage_model(self, spec: RunSpec, name: str,
                    results: Mapping[str, StageResult]) -> nn.Module:
        """The final global model of stage `name` (built with that stage's overrides), in
        eval mode: what `summarize` measures beyond the stage's own evaluation."""
        stage = next(s for s in self.stages(spec) if s.name == name)
        model = self.build_model(spec.for_stage(stage))
        self.load_shared_state(model, results[name].arrays)
        return model.eval()

    def summarize(self, spec: RunSpec, results: Mapping[str, StageResult],
                  out_dir: Path) -> dict[str, Any]:
        """The summary figures of a multi-stage run; may write figures (PNGs) to `out_dir`.

        Default: the last stage's final evaluation figures.
        """
        last = list(results.values())[-1].final
        return {k: v for k, v in last.items() if k not in ("round", "phase", "stage")}

    def check_data(self, spec: RunSpec, num_classes: int) -> None:
        """Refuse (ConfigError) a config that names what the data or federation lack.

        Run before anything starts (simulations/cli/preflight.py). Default: method-config
        fields named `*_classes` hold class labels (LIRF's deposit-classes) and must lie
        below the data set's class count; fields named `*_partition` hold a partition
        index (LIRF's owner-partition) and must lie below num-clients.
        """
        cfg, fed = spec.method, spec.federation
        prefix = spec.section + "."
        for f in dataclasses.fields(cfg):
            value = getattr(cfg, f.name)
            if f.name.endswith("_classes") and any(not 0 <= int(c) < num_classes for c in value):
                raise ConfigError(f"{prefix}{kebab(f.name)}={list(value)}: the data set "
                                  f"{spec.data.dataset!r} has classes 0..{num_classes - 1} only")
            if f.name.endswith("_partition") and not 0 <= int(value) < fed.num_clients:
                raise ConfigError(f"{prefix}{kebab(f.name)}={value}: the federation has partitions "
                                  f"0..{fed.num_clients - 1} only (num-clients={fed.num_clients})")

    def strategy(self, spec: RunSpec) -> Any:
        """Optional: the Flower strategy that aggregates this method's updates.

        None (the default): the server's, FedAvg weighted by examples or the robust rule
        `aggregation` names (server/strategy.py). A method that aggregates its own way
        returns a Flower strategy with one hook overridden; the server's seeded sampler
        picks the nodes, so it should sample every node it is given.
        """
        return None
