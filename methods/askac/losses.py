"""Ask-AC's losses (Liu et al., "Ask-AC: An Initiative Advisor-in-the-Loop Actor-Critic
Framework", IEEE TSMC 2023, arXiv:2207.01955), as the official code computes them
(github.com/liushunyu/Ask-AC `askppo/askppo.py::train`, `common/policies.py`).

- Action requester (§IV-A): the augmented action set A' = {ask} ∪ A with
  π'(ask|s) = π_ask(0|s) and π'(a+1|s) = π_ask(1|s)·π(a|s)          (`ask_policy_probs`).
- PPO-clip over A' (Schulman et al. 2017, Eq. 7) with GAE(γ, λ) (Schulman et al. 2016):
  L = −E[min(ρ Â, clip(ρ, 1±ε) Â)] + c_V·E[(R − V(s))²], Â normalised per minibatch.
- Adaptive state selector (§IV-B): δ_i = (R_i − V(s_i))², m ← 0.9 m + 0.1 δ̄,
  rate = 0.1 · (0.1 · δ̄ / m), the n = ⌈rate·B⌉ states of largest δ are "unstable" and
  L_ask = (0.5 · n/B) · NLL(π'(ask|s_i))                                  (`ask_loss`).
- Advisor imitation: L_adv = (n_adv/B) · NLL(π'(a*+1|s_i)) on advised states (`imitation_loss`).

"NLL" is the official `F.nll_loss(probs, target)` applied to *probabilities* (not
log-probabilities): it equals −mean p(target|s). We keep the code's form (the code is
the reference where code and paper readings differ, as the design notes say).
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F

ASK = 0  # index of "ask" in A'; an environment action a is a+1


def ask_policy_probs(ask_logits: torch.Tensor, standard_logits: torch.Tensor) -> torch.Tensor:
    """π' over A' (B, |A|+1): [π_ask(0|s), π_ask(1|s)·π(a|s) for a in A]."""
    ask = ask_logits.softmax(-1)
    return torch.cat([ask[:, :1], ask[:, 1:] * standard_logits.softmax(-1)], dim=1)


def action_log_prob(ask_logits: torch.Tensor, standard_logits: torch.Tensor,
                    actions: torch.Tensor, with_ask: bool) -> torch.Tensor:
    """log π'(a'|s) for a' in A' (with_ask), else log π(a|s) for a in A (vanilla PPO, CM).

    log π'(a'|s) = log π_ask(bit|s) + bit · log π(a'−1|s), bit = 1[a' ≠ ask].
    """
    log_std = standard_logits.log_softmax(-1)
    if not with_ask:
        return log_std.gather(1, actions[:, None]).squeeze(1)
    bit = (actions != ASK).long()
    log_ask = ask_logits.log_softmax(-1).gather(1, bit[:, None]).squeeze(1)
    log_act = log_std.gather(1, (actions - 1).clamp(min=0)[:, None]).squeeze(1)
    return log_ask + bit * log_act


def gae(rewards: np.ndarray, values: np.ndarray, dones: np.ndarray, last_value: float,
        gamma: float, lam: float) -> tuple[np.ndarray, np.ndarray]:
    """(advantages, returns) of one rollout; dones[t]: the episode ended at step t.

    δ_t = r_t + γ(1−d_t)V(s_{t+1}) − V(s_t);  Â_t = δ_t + γλ(1−d_t)Â_{t+1};  R_t = Â_t + V(s_t).
    """
    advantages = np.zeros(len(rewards))
    next_value, next_adv = last_value, 0.0
    for t in range(len(rewards) - 1, -1, -1):
        live = 1.0 - float(dones[t])
        delta = rewards[t] + gamma * live * next_value - values[t]
        next_adv = delta + gamma * lam * live * next_adv
        advantages[t], next_value = next_adv, values[t]
    return advantages, advantages + values


def ppo_loss(log_prob: torch.Tensor, old_log_prob: torch.Tensor, advantages: torch.Tensor,
             values: torch.Tensor, returns: torch.Tensor, clip: float,
             value_coef: float) -> torch.Tensor:
    """L_clip + c_V · L_V with per-minibatch advantage normalisation (SB3's PPO)."""
    adv = (advantages - advantages.mean()) / (advantages.std() + 1e-8)
    ratio = torch.exp(log_prob - old_log_prob)
    surrogate = torch.min(adv * ratio, adv * ratio.clamp(1 - clip, 1 + clip))
    return -surrogate.mean() + value_coef * F.mse_loss(values, returns)


def select_unstable(delta: np.ndarray, momentum: float) -> tuple[np.ndarray, float, float]:
    """The adaptive state selector: (indices of the unstable states, new m, ask rate).

    m ← 0.9 m + 0.1 δ̄;  rate = 0.1 · (0.1 δ̄ / m) ≤ 0.1 (m ≥ 0.1 δ̄);  n = ⌈rate · B⌉ states
    of largest δ. A critic error above its running mean (e.g. after the pole changes)
    raises the rate; a steady one settles it at 1 %.
    """
    mean = float(np.mean(delta))
    momentum = 0.9 * momentum + 0.1 * mean
    rate = 0.1 * (0.1 * mean / momentum) if momentum > 0 else 0.0
    count = math.ceil(rate * len(delta))
    order = np.argsort(-delta, kind="stable")
    return order[:count], momentum, rate


def ask_loss(probs: torch.Tensor, batch_size: int, coef: float = 0.5) -> torch.Tensor:
    """(coef · n/B) · NLL(π'(ask|s)) over the n selected states; `probs` is π' on them."""
    n = probs.shape[0]
    target = torch.full((n,), ASK, dtype=torch.long)
    return coef * n / batch_size * F.nll_loss(probs, target)


def imitation_loss(probs: torch.Tensor, advice: torch.Tensor) -> torch.Tensor | None:
    """(n_adv/B) · NLL(p(advice|s)) over the advised states (advice ≥ 0; −1 = none).

    `probs` is π' (advice in A') for Ask-AC, π (advice in A) for CM. None when nothing
    was advised: the official code then skips the optimiser step.
    """
    advised = advice >= 0
    n = int(advised.sum())
    if n == 0:
        return None
    return n / len(advice) * F.nll_loss(probs[advised], advice[advised])
