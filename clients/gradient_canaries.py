"""White-box (Dirac) gradient canaries, planted into a node's training steps.

Nasr et al., "Tight Auditing of Differentially Private Machine Learning" (USENIX
Security 2023); Steinke et al., "Privacy Auditing with One (1) Training Run" (NeurIPS
2023) §5: each IN canary is a virtual record whose (clipped) gradient is C·e_j on its
own coordinate j of one weight matrix; it joins each step's batch with probability q,
like a Poisson-sampled record. The server reads them back from the node's update
(server/audit/phase.py) and runs the one-run audit on them.

- With DP-SGD the canary joins the clipped gradient *sum* before the noise
  (clients/privacy.py), exactly where a real record would.
- Without DP (an audited non-private run, the audit's positive case) it joins the
  batch-mean gradient with weight C/B, as one more example of the batch would: the
  audit must then detect that nothing protects the records.

With DP the join draws come from the node's secret sampling generator
(clients/dp_randomness.py): like the Poisson batches of real records, they are not
the server's to know. Without DP no guarantee rests on them: they come from the
node's local seed, so a run without DP (and its resumption) stays reproducible.
"""

from __future__ import annotations

import torch
from torch import nn

from methods.audit_plan import WhiteboxPlan


class GradientCanaries:
    """The IN canaries of one node's plan, on one model, for one round."""

    def __init__(
        self, plan: WhiteboxPlan, model: nn.Module, *, norm: float, generator: torch.Generator
    ) -> None:
        self.param = dict(model.named_parameters())[plan.param]
        self.coords = torch.as_tensor(plan.coords[plan.canary_in], dtype=torch.long)
        self.norm, self.generator = norm, generator

    def plant(self, grad: torch.Tensor, *, sample_rate: float, weight: float) -> None:
        """Add `weight`·e_j to `grad` for each canary that joins this step (prob. q)."""
        if len(self.coords) == 0:
            return
        # drawn on the CPU (the generator's device), so the draws are the same on every
        # device; only the chosen coordinates move to the gradient's
        joined = self.coords[torch.rand(len(self.coords), generator=self.generator) < sample_rate]
        grad.view(-1)[joined.to(grad.device)] += weight

    def plant_in_sum(self, sample_rate: float) -> None:
        """DP-SGD: into the clipped per-example sum, before the noise (weight C)."""
        self.plant(self.param.summed_grad, sample_rate=sample_rate, weight=self.norm)

    def plant_in_mean(self, sample_rate: float, batch_size: int) -> None:
        """Plain SGD: into the batch-mean gradient, as one example of B (weight C/B)."""
        if self.param.grad is None:
            self.param.grad = torch.zeros_like(self.param)
        self.plant(self.param.grad, sample_rate=sample_rate, weight=self.norm / batch_size)
