"""DP-SGD on a node, with an accountant that outlives the round. The only Opacus import.

Abadi et al., "Deep Learning with Differential Privacy", CCS 2016, Algorithm 1:
every step draws a Poisson batch (each example with probability q), clips each
example's gradient to L2 norm C, adds N(0, σ²C²) to the sum and divides by the
expected batch size. Opacus runs that step; this module adds what a federated
node needs on top:

- σ is chosen once for the planned run (R rounds × E epochs × 1/q steps) from the
  target (ε, δ) and never recalibrated (opacus#688: per-round σ with a fresh
  accountant reported ε=1.99 for a true 4.66 after 10 rounds);
- the accountant history [(σ, q, steps), ...] persists in the node's
  `context.state` between rounds, and a node restarted with an empty state takes
  it back from the server's ledger, so ε composes over every round ever trained;
- the caller's module is trained in place and unwrapped afterwards, so the weights
  it sends have no `_module.` prefix (opacus#608);
- each round reports its ledger figures (σ, q, steps, ε, δ, clip fraction).
"""

from __future__ import annotations

import json
import math
import os
import warnings
from functools import lru_cache
from typing import Callable, Sequence

import torch
from flwr.app import ConfigRecord, RecordDict
from opacus import PrivacyEngine
from opacus.accountants import create_accountant
from opacus.accountants.utils import get_noise_multiplier
from opacus.utils.fast_gradient_clipping_utils import DPTensorFastGradientClipping
from opacus.utils.uniform_sampler import UniformWithReplacementSampler
from opacus.validators import ModuleValidator
from torch import nn
from torch.utils.data import DataLoader

from clients.dp_randomness import dp_generator
from clients.dp_randomness import source as randomness_source
from clients.gradient_canaries import GradientCanaries

from methods.audit_plan import WhiteboxPlan
from methods.base import Method, RunSpec

# Tests only: multiply the noise actually added by this factor while the ledger
# keeps claiming σ, so the audit must catch the lie (tests/integration/test_dp_*).
FAULT_NOISE_SCALE_ENV = "FEDVAULT_TEST_FAULT_DP_NOISE_SCALE"
STATE_KEY = "dp-accountant"

# Advisories that fire on every node and every round. "Secure RNG turned off": Opacus'
# secure_mode needs torchcsprng, which does not install here; what we draw from instead
# (secret, per-round OS-CSPRNG seeds) and what that leaves open is stated once, in
# clients/dp_randomness.py, the README and each ledger line's `rng`, not per round.
# "Full backward hook": the first layer's input needs no grad.
warnings.filterwarnings("ignore", message="Secure RNG turned off")
warnings.filterwarnings("ignore", message="Full backward hook is firing")

History = list[tuple[float, float, int]]


def fault_noise_scale() -> float:
    return float(os.environ.get(FAULT_NOISE_SCALE_ENV, "1.0"))


def make_dp_compatible(model: nn.Module) -> list[str]:
    """Make `model` usable by Opacus in place; returns what still blocks it ([] = fine).

    In-place activations break Opacus' backward hooks and are switched off (same
    weights, same outputs). BatchNorm and the like are reported, not swapped:
    ModuleValidator.fix would change the state-dict keys every node must share.
    """
    for module in model.modules():
        if getattr(module, "inplace", False):
            module.inplace = False
    return [str(error) for error in ModuleValidator.validate(model, strict=False)]


def linear_fraction(model: nn.Module) -> float:
    """Share of trainable parameters in Linear/Embedding layers (ghost clipping's domain)."""
    total = sum(p.numel() for p in model.parameters() if p.requires_grad)
    dense = sum(
        p.numel()
        for m in model.modules()
        if isinstance(m, (nn.Linear, nn.Embedding))
        for p in m.parameters(recurse=False)
        if p.requires_grad
    )
    return dense / max(total, 1)


def gives_per_sample_losses(method: Method) -> bool:
    return type(method).per_sample_loss is not Method.per_sample_loss


def choose_grad_sample_mode(requested: str, method: Method, model: nn.Module) -> str:
    """`auto`: ghost clipping when Linear layers dominate and the method can give
    per-example losses (2.1× vs 22× for hooks on a 1 M-parameter MLP), else hooks."""
    if requested == "ghost" and not gives_per_sample_losses(method):
        raise ValueError(
            f"dp.grad-sample-mode=ghost needs per-example losses, which method "
            f"{type(method).__name__} does not give (Method.per_sample_loss)"
        )
    if requested != "auto":
        return requested
    if gives_per_sample_losses(method) and linear_fraction(model) >= 0.5:
        return "ghost"
    return "hooks"


def sample_rate(num_examples: int, batch_size: int) -> float:
    """Opacus' q = 1/len(loader) = 1/⌈n/B⌉ (4000 examples, B=256 → 1/16, not 0.064)."""
    return 1.0 / math.ceil(num_examples / batch_size)


def planned_steps(spec: RunSpec, num_examples: int) -> int:
    """Steps of the whole planned run if the node trains every round (R·E·⌈n/B⌉)."""
    per_epoch = math.ceil(num_examples / spec.method.batch_size)
    return spec.federation.num_server_rounds * spec.method.local_epochs * per_epoch


def noise_multiplier_for(spec: RunSpec, num_examples: int) -> float:
    """σ for the planned run: given, or the smallest σ whose ε stays <= the target."""
    cfg = spec.dp
    if cfg.noise_multiplier > 0:
        return cfg.noise_multiplier
    return _calibrated_sigma(cfg.target_epsilon, cfg.delta,
                             sample_rate(num_examples, spec.method.batch_size),
                             planned_steps(spec, num_examples), cfg.accountant)


@lru_cache(maxsize=64)
def _calibrated_sigma(target_epsilon: float, delta: float, rate: float, steps: int,
                      accountant: str) -> float:
    # Opacus' search costs ~16 ε evaluations (about 14 s with RDP on 2 cores, measured) and
    # its answer depends on these five values only: a node computes it once per run, not
    # once per round.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # RDP's "optimal order is the largest alpha"
        return float(
            get_noise_multiplier(
                target_epsilon=target_epsilon,
                target_delta=delta,
                sample_rate=rate,
                steps=steps,
                accountant=accountant,
                epsilon_tolerance=0.01,
            )
        )


def epsilon_of(history: Sequence[tuple[float, float, int]], delta: float, mechanism: str) -> float:
    if not history:
        return 0.0
    accountant = create_accountant(mechanism)
    accountant.history = [tuple(h) for h in history]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return float(accountant.get_epsilon(delta))


def total_steps(history: Sequence[tuple[float, float, int]]) -> int:
    return int(sum(h[2] for h in history))


# --- the accountant's history across rounds ---------------------------------------------------
def load_history(state: RecordDict, server_history: History, mechanism: str) -> History:
    """The node's own history, or the server's copy when that one is longer.

    A node restarted (or a simulated node re-instantiated after a server restart)
    has an empty state; a reply lost on the way leaves the server one round behind.
    Taking the longer one never under-counts what this node's data has spent.
    """
    local: History = []
    if STATE_KEY in state:
        record = state[STATE_KEY]
        if record["mechanism"] != mechanism:
            raise ValueError(
                f"this node's accountant is {record['mechanism']!r}, the run asks "
                f"for {mechanism!r}: its ε cannot be composed"
            )
        local = [tuple(h) for h in json.loads(str(record["history-json"]))]
    return list(server_history) if total_steps(server_history) > total_steps(local) else local


def save_history(state: RecordDict, history: History, mechanism: str) -> None:
    state[STATE_KEY] = ConfigRecord({"mechanism": mechanism, "history-json": json.dumps(history)})


# --- one round of DP-SGD --------------------------------------------------------------------
class PrivateTraining:
    """The privacy hook of `clients.training.train_locally` for one node and one round.

    `attach` makes model, optimizer and loader private (Poisson sampling, clipping C,
    noise σ, both draws from the node's secret generators); `backward` runs one step's
    backward pass; `finish` unwraps the model and returns the round's ledger figures,
    with the updated history in `history`.
    """

    def __init__(
        self,
        spec: RunSpec,
        method: Method,
        *,
        history: History,
        sigma: float = 0.0,
        whitebox: WhiteboxPlan | None = None,
        seed: int = 0,
        grad_sample_mode: str | None = None,
        guard_budget: bool = True,
        max_epsilon: float = 0.0,
        check_sigma: Callable[[float], None] | None = None,
    ) -> None:
        self.spec, self.method, self.cfg = spec, method, spec.dp
        self.history, self.sigma = list(history), sigma or (history[0][0] if history else 0.0)
        # `seed` (the node's local seed) matters only under the test-only deterministic switch
        self.whitebox, self.seed = whitebox, seed
        self.requested_mode = grad_sample_mode or self.cfg.grad_sample_mode
        self.guard_budget = guard_budget
        # the node's own cap (node policy) can only tighten the run's budget
        self.budget = min(self.cfg.budget, max_epsilon) if max_epsilon > 0 else self.cfg.budget
        self.check_sigma = check_sigma  # the node policy's floor on σ
        self.clipped = self.seen = self.empty_batches = 0

    def attach(self, model: nn.Module, optimizer: torch.optim.Optimizer, loader):
        errors = make_dp_compatible(model)
        if errors:
            raise ValueError("the model is not DP-compatible: " + "; ".join(errors))
        self.num_examples = len(loader.dataset)
        self.sigma = self.sigma or noise_multiplier_for(self.spec, self.num_examples)
        if self.check_sigma is not None:
            self.check_sigma(self.sigma)
        if self.guard_budget:
            self._refuse_overspending()
        self.mode = choose_grad_sample_mode(self.requested_mode, self.method, model)
        self.engine = PrivacyEngine(accountant=self.cfg.accountant)
        self.engine.accountant.history = list(self.history)
        self.sampling_rng = dp_generator(self.seed, 0)  # the Poisson sampler draws on the CPU
        # Opacus draws the noise on the gradients' device with this generator: it must be there
        noise_rng = dp_generator(self.seed, 1, next(model.parameters()).device)
        wrapped = self.engine.make_private(
            module=model,
            optimizer=optimizer,
            # Opacus' Poisson sampler takes the loader's generator: the secret one
            data_loader=DataLoader(
                loader.dataset, batch_size=loader.batch_size, generator=self.sampling_rng
            ),
            noise_multiplier=self.sigma,
            max_grad_norm=self.cfg.max_grad_norm,
            poisson_sampling=True,
            grad_sample_mode=self.mode,
            noise_generator=noise_rng,
        )
        # ghost returns (module, optimizer, criterion, loader); we build the loss ourselves
        self.module, self.optimizer, self.loader = wrapped[0], wrapped[1], wrapped[-1]
        # Opacus' floating-point-attack-resistant noise (a sum of 4 draws); its own
        # secure_mode flag would also demand torchcsprng (clients/dp_randomness.py)
        self.optimizer.secure_mode = True
        self._install(model)
        return self.module, self.optimizer, self.loader

    def _refuse_overspending(self) -> None:
        """The node's own guard: never start a round whose ε would pass the budget."""
        per_epoch = math.ceil(self.num_examples / self.spec.method.batch_size)
        this_round = (self.sigma, 1.0 / per_epoch, per_epoch * self.spec.method.local_epochs)
        projected = epsilon_of(self.history + [this_round], self.cfg.delta, self.cfg.accountant)
        if projected > self.budget + 1e-9:
            raise ValueError(
                f"privacy budget: this round would bring ε to {projected:.4f} > "
                f"{self.budget:g} at δ={self.cfg.delta:g}; the node does not train"
            )

    def backward(self, batch: tuple) -> float | None:
        """Backward of one batch through the private module.

        An empty Poisson batch (probability (1-q)^n) still makes a step: zero gradient,
        full noise, accounted. Skipping it would release, through the step count,
        whether the batch was empty, which depends on the data. Returns the batch loss,
        or None for an empty batch (there is no loss to report)."""
        if len(batch[-1]) == 0:
            self.empty_batches += 1
            self._zero_gradients()
            return None
        if self.mode == "ghost":
            losses = self.method.per_sample_loss(self.module, batch, self.spec)
            loss = DPTensorFastGradientClipping(self.module, self.optimizer, losses, "mean")
        else:
            loss = self.method.train_step(self.module, batch, self.spec)
        loss.backward()
        # counted here, not in clip_and_accumulate: ghost clipping never calls that
        norms = self._per_sample_norms()
        self.seen += len(norms)
        self.clipped += int((norms > self.cfg.max_grad_norm).sum())
        return float(loss.item())

    def _zero_gradients(self) -> None:
        """What an empty batch's backward pass would leave: nothing, in each mode's slot."""
        for p in self.optimizer.params:
            if self.mode == "ghost":  # its optimizer sums p.grad
                p.grad = torch.zeros_like(p)
            else:  # the others clip per-example gradients: there are none
                p.grad_sample = torch.zeros((0, *p.shape), dtype=p.dtype, device=p.device)

    def _install(self, model: nn.Module) -> None:
        """Plant white-box canaries before the noise and (tests only) scale the noise."""
        opt, add_noise = self.optimizer, self.optimizer.add_noise
        canaries = (
            GradientCanaries(
                self.whitebox, model, norm=self.cfg.max_grad_norm, generator=self.sampling_rng
            )
            if self.whitebox is not None and self.whitebox.canary_in.any()
            else None
        )
        scale, q = fault_noise_scale(), float(self.loader.sample_rate)

        def noise() -> None:
            if canaries is not None:  # virtual records join the clipped sum before the noise
                canaries.plant_in_sum(q)
            opt.noise_multiplier = self.sigma * scale
            try:
                add_noise()
            finally:  # the accountant's step hook reads σ after this: it must see the claim
                opt.noise_multiplier = self.sigma

        opt.add_noise = noise

    def _per_sample_norms(self) -> torch.Tensor:
        if self.mode == "ghost":
            return self.module.per_sample_gradient_norms.detach()
        samples = self.optimizer.grad_samples
        if not samples or len(samples[0]) == 0:
            return torch.zeros(0)
        return torch.stack([g.reshape(len(g), -1).norm(2, dim=-1) for g in samples], 1).norm(
            2, dim=1
        )

    def finish(self) -> dict[str, float | int | str | bool]:
        """Unwrap the model (hooks off, no `_module.` prefix); this round's figures → `report`."""
        self.module.to_standard_module()
        before, self.history = self.history, list(self.engine.accountant.history)
        steps = total_steps(self.history) - total_steps(before)
        q = float(self.loader.sample_rate)
        epsilon = epsilon_of(self.history, self.cfg.delta, self.cfg.accountant)
        following = self.history + [(self.sigma, q, steps)] if steps else self.history
        self.report = {
            "noise_multiplier": self.sigma,
            "sample_rate": q,
            "steps": steps,
            "epsilon": epsilon,
            "delta": self.cfg.delta,
            "clip_fraction": self.clipped / max(self.seen, 1),
            "accountant": self.cfg.accountant,
            "epsilon_next": epsilon_of(following, self.cfg.delta, self.cfg.accountant),
            "max_grad_norm": self.cfg.max_grad_norm,
            "num_examples": self.num_examples,
            "expected_batch_size": q * self.num_examples,
            "empty_batches": self.empty_batches,
            "poisson": isinstance(self.loader.batch_sampler, UniformWithReplacementSampler),
            "sampler": type(self.loader.batch_sampler).__name__,
            "grad_sample_mode": self.mode,
            "model_compatible": True,
            "rng": randomness_source(),
        }
        return self.report
