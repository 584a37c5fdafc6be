"""LIRF as a fedvault method: Ye et al., "Learning with Recoverable Forgetting",
ECCV 2022, arXiv:2207.08224 (deposit objective §3.3, withdrawal §3.4).

Phase 0 and the retrain baseline are FedAvg (McMahan et al., 2017) of SplitCNN
with cross-entropy; the owner's deposit step minimises the official objective
(losses.py) on D_r only through the same shared training loop: `train_step`
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
from methods.lirf.config import LIRFConfig
from methods.lirf.data import node_indices
from methods.lirf.losses import deposit_loss
from methods.lirf.nets import DepositNet, RecoveredNet, SplitCNN, deposit_class_mask
from methods.lirf.pruning import magnitude_prune
from methods.lirf.withdraw import split_recovered

# BatchNorm's step counter is unused (momentum is set) and an int64 that FedAvg would
# turn into a float; it never travels.
_LOCAL_ONLY = "num_batches_tracked"
_FIRST_CONV, _HEAD = "shallow.1.0.weight", "deep.3.weight"


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

    def build_model(self, spec: RunSpec) -> SplitCNN:
        test = self.test_dataset(spec)
        cfg = spec.method
        return SplitCNN(test.x.shape[1], test.num_classes, cfg.widths, cfg.norm)

    def train_step(self, model: nn.Module, batch: tuple, spec: RunSpec) -> torch.Tensor:
        x, y = batch
        if isinstance(model, DepositNet):
            cfg = spec.method
            return deposit_loss(model(x), y, model.deposit_mask, temperature=cfg.temperature,
                                alpha=cfg.alpha, lambda_at=cfg.lambda_at)
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

    # --- LIRF's own models -------------------------------------------------------
    def net_for(self, spec: RunSpec, arrays: Mapping[str, np.ndarray]) -> SplitCNN:
        """A SplitCNN shaped by `arrays` (input channels, classes): no data set is read,
        so deposit and withdrawal touch no data beyond what they are given."""
        cfg = spec.method
        return SplitCNN(arrays[_FIRST_CONV].shape[1], arrays[_HEAD].shape[0], cfg.widths, cfg.norm)

    def build_deposit_net(self, spec: RunSpec, original: Mapping[str, np.ndarray],
                          classes: Sequence[int]) -> DepositNet:
        """T_0 loaded, T and T_r initialised from its shallow part, T_r pruned."""
        model = self.net_for(spec, original)
        _load(model, original)
        net = DepositNet(model, deposit_class_mask(classes, model.deep[-1].out_features))
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
        mask = deposit_class_mask(classes, target.deep[-1].out_features)
        return RecoveredNet(target, deposit, mask)
