"""One client's learner during a round: rollouts in its CartPole, then the update phases.

Ask-AC (Liu et al., IEEE TSMC 2023, arXiv:2207.01955, Alg. 1; official
`common/on_ask_policy_algorithm.py::collect_rollouts` and `askppo/askppo.py::train`):

- Ask-AC rollout: a' ~ π'(·|s); a' = ask → the advisor's a* is executed and stored as
  advice a*+1 while the stored action stays "ask" (PPO credits asking with the advisor's
  advantage); otherwise a'−1 is executed.
- CM (continuous monitoring): the advisor's action is executed at every step while the
  learner's own sampled action is stored (as the official code), advice on every step.
- vanilla: PPO over A, no advisor.

The shared local loop (clients/training.py) calls `loss()` once per optimiser step; the
first step of each rollout's block collects the rollout, then the block runs the
variant's phases in the official order: ppo-epochs selector steps (L_ask), ppo-epochs PPO
steps (L_clip + c_V L_V), ppo-epochs imitation steps (L_adv), each its own step.
PPO's ε follows the official linear schedule per rollout (AskACConfig.schedule_factor);
the lr follows it per round (AskAC.local_lr) and the loop clips the gradient norm at 0.5.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from methods.askac.cartpole import CartPoles, advisor_action
from methods.askac.config import PHASES, AskACConfig
from methods.askac.losses import (
    ASK,
    action_log_prob,
    ask_loss,
    ask_policy_probs,
    gae,
    imitation_loss,
    ppo_loss,
    select_unstable,
)
from methods.askac.nets import AskActorCritic, numpy_policy


@dataclass
class Rollout:
    obs: torch.Tensor  # (T, 4)
    actions: torch.Tensor  # (T,) stored actions: in A' with an ask head, else in A
    advice: torch.Tensor  # (T,) the advisor's action (in A' or A), −1 where not advised
    old_log_prob: torch.Tensor  # (T,)
    advantages: torch.Tensor  # (T,)
    returns: torch.Tensor  # (T,) GAE λ-returns R


class Learner:
    def __init__(self, cfg: AskACConfig, pole_scale: float, rng: np.random.Generator) -> None:
        self.cfg, self.pole_scale, self.rng = cfg, pole_scale, rng
        self.with_ask = cfg.variant in ("askac", "no-selector")
        self.phases = PHASES[cfg.variant]
        self.unit = 0
        self.env: CartPoles | None = None
        self.rollout: Rollout | None = None
        self.episode_return, self.finished = 0.0, []
        self.clip = cfg.clip_range  # PPO's ε for the current rollout (the schedule sets it)

    def loss(self, model: AskActorCritic) -> torch.Tensor:
        """The loss of the next optimiser step (collecting a rollout when a block starts)."""
        block = len(self.phases) * self.cfg.ppo_epochs
        if self.unit % block == 0:
            self.rollout = self.collect(model)
        phase = self.phases[(self.unit % block) // self.cfg.ppo_epochs]
        self.unit += 1
        return getattr(self, f"_{phase}_loss")(model, self.rollout)

    # --- rollout -----------------------------------------------------------------
    def _pole_length(self, env_steps: float) -> float:
        return self.cfg.pole_lengths[self.cfg.level_at(env_steps)] * self.pole_scale

    def _act(self, policy, obs: np.ndarray) -> tuple[int, int, int, float, float]:
        """(stored action, executed env action, advice or −1, log-prob, V(s)) for one state."""
        ask, std, value = policy(obs)
        # π' = [π_ask(0), π_ask(1)·π(a)] (losses.ask_policy_probs) with an ask head, else π.
        probs = np.concatenate([ask[:1], ask[1] * std]) if self.with_ask else std
        stored = min(int(np.searchsorted(np.cumsum(probs), self.rng.random() * probs.sum())),
                     len(probs) - 1)
        advice = -1
        if self.cfg.variant == "cm":
            advice = executed = int(advisor_action(obs)[0])
        elif self.with_ask and stored == ASK:
            executed = int(advisor_action(obs)[0])
            advice = executed + 1
        else:
            executed = stored - 1 if self.with_ask else stored
        return stored, executed, advice, float(np.log(probs[stored])), value

    @torch.no_grad()
    def collect(self, model: AskActorCritic) -> Rollout:
        length = self._pole_length(float(model.env_steps))
        if self.env is None:
            self.env = CartPoles(np.array([length]), self.rng)
        self.env.lengths[:] = length  # a level switch changes the pole under the running episode
        steps = self.cfg.rollout_steps
        obs = np.zeros((steps, 4), dtype=np.float32)
        acts, advice = np.zeros(steps, dtype=np.int64), np.zeros(steps, dtype=np.int64)
        logp, values, dones = np.zeros(steps), np.zeros(steps), np.zeros(steps, dtype=bool)
        policy = numpy_policy(model)  # weights are fixed during the rollout
        for t in range(steps):
            obs[t] = self.env.obs[0]
            acts[t], executed, advice[t], logp[t], values[t] = self._act(policy, obs[t].astype(np.float64))
            reward, terminated, truncated = self.env.step(np.array([executed]))
            dones[t] = bool(terminated[0] or truncated[0])
            self.episode_return += float(reward[0])
            if dones[t]:
                self.finished.append(self.episode_return)
                self.episode_return = 0.0
                self.env.reset(np.array([True]))
        last_value = policy(self.env.obs[0].astype(np.float64))[2]
        adv, ret = gae(np.ones(steps), values, dones, last_value, self.cfg.gamma, self.cfg.gae_lambda)
        # SB3 updates its progress after collecting, before the update that uses it.
        self.clip = self.cfg.clip_range * self.cfg.schedule_factor(float(model.env_steps) + steps - 1)
        self._count(model, steps, int((advice >= 0).sum()))
        as_float = lambda a: torch.tensor(a, dtype=torch.float32)
        return Rollout(torch.from_numpy(obs), torch.from_numpy(acts), torch.from_numpy(advice),
                       as_float(logp), as_float(adv), as_float(ret))

    def _count(self, model: AskActorCritic, steps: int, queries: int) -> None:
        model.env_steps += steps
        model.advisor_queries += queries
        # Finished episodes of this round; none finished yet: the running one (a lower bound).
        model.train_return.fill_(float(np.mean(self.finished)) if self.finished else self.episode_return)

    # --- the update phases --------------------------------------------------------
    def _select_loss(self, model: AskActorCritic, r: Rollout) -> torch.Tensor:
        with torch.no_grad():
            delta = ((r.returns - model.value(r.obs)) ** 2).numpy()
        chosen, momentum, _ = select_unstable(delta, float(model.selector_momentum))
        model.selector_momentum.fill_(momentum)
        ask_logits, std_logits, _ = model(r.obs[torch.from_numpy(chosen)])
        return ask_loss(ask_policy_probs(ask_logits, std_logits), len(r.obs), self.cfg.ask_coef)

    def _ppo_loss(self, model: AskActorCritic, r: Rollout) -> torch.Tensor:
        ask_logits, std_logits, values = model(r.obs)
        log_prob = action_log_prob(ask_logits, std_logits, r.actions, self.with_ask)
        return ppo_loss(log_prob, r.old_log_prob, r.advantages, values, r.returns,
                        max(self.clip, 1e-8), self.cfg.value_coef)

    def _imitate_loss(self, model: AskActorCritic, r: Rollout) -> torch.Tensor:
        ask_logits, std_logits, _ = model(r.obs)
        probs = ask_policy_probs(ask_logits, std_logits) if self.with_ask else std_logits.softmax(-1)
        loss = imitation_loss(probs, r.advice)
        # Nothing advised: a loss no parameter depends on, so the optimiser step is a no-op
        # (every gradient stays None), as the official code skips the step.
        return loss if loss is not None else torch.zeros((), requires_grad=True)
