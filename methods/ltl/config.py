"""LTL's configuration (`[ltl]` in a scenario, `--set ltl.KEY=VALUE`).

The inherited LocalTrainingConfig fields drive every stage's local loop (Adam, as the
note's CPU design); `variant` is what a stage changes (teacher, LTL student, BPTT
baseline), the rest are the paper's LIF and loss settings (design notes §1, not shipped).
"""

from __future__ import annotations

from dataclasses import dataclass

from methods.base import LocalTrainingConfig
from methods.config import ConfigError

VARIANTS = ("teacher", "ltl", "bptt")


@dataclass(frozen=True)
class LTLConfig(LocalTrainingConfig):
    """Teacher, LTL student and BPTT baseline settings (one stage each)."""

    lr: float = 1e-3
    """Adam learning rate of the students (the note: 1e-3, as digits has ~23 steps/epoch)."""
    optimizer: str = "adam"
    """Optimizer of the shared loop: the code trains with Adam (wd 0)."""
    batch_size: int = 32
    """Mini-batch size (B) of every stage."""
    variant: str = "ltl"
    """What a round trains: "teacher" (ANN, CE), "ltl" (the offline LTL loss, losses.py) or
    "bptt" (the same SNN end to end, CE only). Set per stage by the method."""
    time_steps: int = 8
    """Simulation time steps T of the SNN (direct analog input at every step)."""
    threshold: float = 0.6
    """Firing threshold θ of the LIF neurons."""
    tau: float = 10.0
    """Membrane time constant τ (time steps); decay λ = exp(−1/τ)."""
    surrogate_width: float = 0.2
    """Half-width of the boxcar surrogate: ∂s/∂m = 1[|m − θ| < width]."""
    target_percentile: float = 99.9
    """Percentile P of the teacher activations that maps to rate 1 (per batch and layer)."""
    local_weight: float = 1.0
    """c_l, the weight of every layer's local MSE loss."""
    widths: tuple[int, ...] = (32, 64, 64)
    """Channels of the three conv layers (strides 1, 2, 2) of teacher and student."""
    hidden: int = 128
    """Width of the hidden fully connected layer."""
    teacher_rounds: int = 15
    """Federated rounds (epochs over the federation's data) of the teacher stage."""
    teacher_lr: float = 1e-3
    """Adam learning rate of the teacher stage."""
    student_rounds: int = 10
    """Rounds of the LTL stage (the band: within teacher − 3 pts in <= 10 epochs)."""
    bptt_rounds: int = 5
    """Rounds of the BPTT baseline (the band compares epochs 3 and 5)."""
    noise_std: float = 0.2
    """Std of the multiplicative weight noise W ← W(1+ε) before re-calibration (0: no stage)."""
    recalibration_rounds: int = 1
    """Rounds of LTL re-calibration of the noisy student."""

    def validate(self) -> None:
        super().validate()
        problems = []
        if self.optimizer not in ("adam", "sgd"):
            problems.append(f"optimizer must be adam or sgd (got {self.optimizer!r})")
        if self.variant not in VARIANTS:
            problems.append(f"variant must be one of {', '.join(VARIANTS)} (got {self.variant!r})")
        if self.time_steps < 1 or self.tau <= 0 or self.threshold <= 0:
            problems.append("time-steps must be >= 1, tau and threshold > 0")
        if self.surrogate_width <= 0 or not 0 < self.target_percentile <= 100:
            problems.append("surrogate-width must be > 0 and target-percentile in (0, 100]")
        if len(self.widths) != 3 or min(self.widths) < 1 or self.hidden < 1:
            problems.append("widths needs three channel counts >= 1 and hidden >= 1")
        if min(self.teacher_rounds, self.student_rounds, self.bptt_rounds,
               self.recalibration_rounds) < 1 or self.noise_std < 0 or self.local_weight < 0:
            problems.append("every *-rounds must be >= 1, noise-std and local-weight >= 0")
        if problems:
            raise ConfigError("; ".join(problems))
