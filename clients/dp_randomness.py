"""Where a node's DP randomness comes from: secrets the server cannot know.

DP-SGD's guarantee rests on two random draws per step, the Poisson batch and the
Gaussian noise. If the server can reproduce them, it can subtract the noise from an
update and ε is infinite against the very party DP in federated learning protects
from. The run seed travels in every RoundHeader, so neither draw may depend on it:
each round a node seeds two fresh torch generators (sampling, noise) with 64 bits
from the operating system's CSPRNG (`secrets`), unknown to everyone else.

What this does not give (stated in the README's DP section): torch's CPU generator
is a Mersenne Twister and its CUDA generator a Philox counter, neither a CSPRNG, so the
noise is as unpredictable as its 64-bit secret seed, not more. The noise generator lives
on the device of the gradients it noises (Opacus draws the noise there); the sampling
generator stays on the CPU, where the Poisson sampler draws. Opacus' `secure_mode` would
draw from a CSPRNG, but it needs torchcsprng, whose last release (0.2.1, 2021) has no
wheel for Python 3.11 or torch 2.13 (`pip download torchcsprng`: "from versions: none").
We do use Opacus' floating-point-attack mitigation (its secure-mode noise: a sum of four
Gaussian draws, Holohan et al. 2021), which needs no CSPRNG.

Tests only: `FEDVAULT_TEST_DETERMINISTIC_DP=1` in a node's environment derives both
generators from the run seed, so a test can replay a node exactly. It is a switch on
the node, never in the run config (the server must not be able to turn it on), and
the node reports it: the ledger says rng="run-seed" and the audit FAILs the run. A replay
must train on the same kind of device: CPU and CUDA generators give different streams.
"""

from __future__ import annotations

import os
import secrets

import torch

from protos.contract import RNG_RUN_SEED, RNG_SECRET

DETERMINISTIC_ENV = "FEDVAULT_TEST_DETERMINISTIC_DP"


def deterministic() -> bool:
    return os.environ.get(DETERMINISTIC_ENV, "") == "1"


def source() -> str:
    """The ledger's `rng` value for this node."""
    return RNG_RUN_SEED if deterministic() else RNG_SECRET


def dp_generator(run_seed: int, purpose: int,
                 device: torch.device | str = "cpu") -> torch.Generator:
    """A generator on `device` for one round's DP draws: secret, unless the test switch is on.

    `purpose` keeps the sampling and noise streams apart in the deterministic mode."""
    seed = (run_seed * 4 + purpose) % (1 << 63) if deterministic() else secrets.randbits(64)
    return torch.Generator(device=device).manual_seed(seed)
