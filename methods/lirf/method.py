"""LIRF as a fedvault method: Ye et al., "Learning with Recoverable Forgetting",
ECCV 2022, arXiv:2207.08224 (deposit objective §3.3, withdrawal §3.4).

Phase 0 and the retrain baseline are FedAvg (McMahan et al., 2017) of the split net
(arch.py: the protocol's CNN, the ResNet or a user's net) with cross-entropy; the owner's deposit step minimises the official objective
(losses.py) on D_r only (plus anchors, `anchor-samples`, our extension) through the same
shared training loop: `train_step`
sees a DepositNet there. The workflow is server/lirf.py, the owner's side
clients/lirf_owner.py.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence

import numpy as np
import torch
from torch import nn

from methods.base import Method, RunSpec
from methods.config import ConfigError
from methods.lirf.arch import build_split_net, check_split, output_classes, shape_of
from methods.lirf.config import LIRFConfig, parse_sample_ids
from methods.lirf.data import node_indices
from methods.lirf.losses import anchored_deposit_loss, deposit_loss
from methods.lirf.nets import DepositNet, RecoveredNet, SplitNet, deposit_class_mask
from methods.lirf.pruning import magnitude_prune
from methods.lirf.withdraw import split_recovered

# BatchNorm's step counter is unused (momentum is set) and an int64 that FedAvg would
# turn into a float; it never travels.
_LOCAL_ONLY = "num_batches_tracked"


def _load(module: nn.Module, arrays: Mapping[str, np.ndarray]) -> None:
    state = {k: torch.from_numpy(np.array(v)) for k, v in arrays.items()}
    missing, unexpected = module.load_state_dict(state, strict=False)
    missing = [k for k in missing if not k.endswith(_LOCAL_ONLY)]
    if missing or unexpected:
        raise ValueError(f"arrays do not fit the model: missing {missing[:3]}, "
                         f"unexpected {unexpected[:3]}")


def arrays_of(module: nn.Module) -> dict[str, np.ndarray]:
    return {k: v.detach().cpu().numpy().copy() for k, v in module.state_dict().items()
            if not k.endswith(_LOCAL_ONLY)}


class LIRF(Method):
    name = "lirf"
    config_cls = LIRFConfig
    paper = "Ye et al., Learning with Recoverable Forgetting, ECCV 2022, arXiv:2207.08224"
    workflow = "lirf"

    def build_model(self, spec: RunSpec) -> SplitNet:
        test = self.test_dataset(spec)
        return build_split_net(spec.method, test.x.shape[1], test.num_classes)

    def train_step(self, model: nn.Module, batch: tuple, spec: RunSpec) -> torch.Tensor:
        x, y, *member = batch  # a sample-level deposit set also says which rows are D_r
        if isinstance(model, DepositNet):
            cfg = spec.method
            if member and cfg.level == "class":  # D_r and anchors (anchor-samples)
                return anchored_deposit_loss(model, x, y, ~member[0], temperature=cfg.temperature,
                                             alpha=cfg.alpha, lambda_at=cfg.lambda_at)
            return deposit_loss(model(x), y, model.deposit_mask, temperature=cfg.temperature,
                                alpha=cfg.alpha, lambda_at=cfg.lambda_at,
                                member=member[0] if member else None)
        return nn.functional.cross_entropy(model(x), y)

    def shared_state(self, model: nn.Module) -> dict[str, np.ndarray]:
        return arrays_of(model)

    def load_shared_state(self, model: nn.Module, arrays: Mapping[str, np.ndarray]) -> None:
        _load(model, arrays)

    def node_partition(self, spec: RunSpec, labels: np.ndarray,
                       num_partitions: int) -> list[np.ndarray]:
        def scenario_partitioner(subset_labels: np.ndarray, n: int) -> list[np.ndarray]:
            return super(LIRF, self).node_partition(spec, subset_labels, n)

        return node_indices(spec.method, labels, num_partitions, scenario_partitioner)

    def check_data(self, spec: RunSpec, num_classes: int) -> None:
        """Also: the split point on the data's input shape (a probe through the net), and
        sample ids inside the owner's data."""
        super().check_data(spec, num_classes)
        cfg = spec.method
        check_split(cfg, tuple(self.test_dataset(spec).x.shape[1:]), num_classes)
        if cfg.level == "sample":
            labels = self.fit_dataset(spec).y
            owner = self.node_partition(spec, labels, spec.federation.num_clients)
            size = len(owner[cfg.owner_partition])
            if max(parse_sample_ids(cfg.deposit_samples)) >= size:
                raise ConfigError(f"lirf.deposit-samples must be ids in [0, {size}) (the owner's "
                                  f"data, partition {cfg.owner_partition}); got "
                                  f"{cfg.deposit_samples!r}")

    # --- LIRF's own models -------------------------------------------------------
    def net_for(self, spec: RunSpec, arrays: Mapping[str, np.ndarray]) -> SplitNet:
        """A split net shaped by `arrays` (input channels, classes): no data set is read,
        so deposit and withdrawal touch no data beyond what they are given."""
        return build_split_net(spec.method, *shape_of(spec.method, arrays))

    def build_deposit_net(self, spec: RunSpec, original: Mapping[str, np.ndarray],
                          classes: Sequence[int]) -> DepositNet:
        """T_0 loaded, T and T_r initialised from its shallow part, T_r pruned."""
        model = self.net_for(spec, original)
        _load(model, original)
        net = DepositNet(model, deposit_class_mask(classes, output_classes(model)))
        magnitude_prune(net.deposit, spec.method.prune_ratio)
        return net

    def build_recovered(self, spec: RunSpec, arrays: Mapping[str, np.ndarray],
                        classes: Sequence[int]) -> RecoveredNet:
        """T̃ from the recovered model's arrays (target + "deposit." module)."""
        target_arrays, module_arrays = split_recovered(arrays)
        target = self.net_for(spec, target_arrays)
        _load(target, target_arrays)
        deposit = copy.deepcopy(target.shallow)
        _load(deposit, module_arrays)
        mask = deposit_class_mask(classes, output_classes(target))
        return RecoveredNet(target, deposit, mask)
