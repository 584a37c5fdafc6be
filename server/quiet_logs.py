"""Library messages a fedvault user must not see, dropped one by one, each with why.

Every other message still shows. What could be fixed at its cause was fixed there: the
round strategies ask for fraction_evaluate=1.0 (server/strategy.py), so Flower's "Federated
evaluation will be skipped" is left only where a workflow's own strategy has no evaluate
round at all. `--verbose` (fedvault simulate) shows everything.
"""

from __future__ import annotations

import contextlib
import logging
import os
import warnings
from collections.abc import Iterator

# (logger, a fragment of the message) → dropped
FLOWER_MESSAGES = (
    # flwr 1.39 deprecates `run_simulation` in favour of `flwr run`, which starts a
    # SuperLink and runs the ServerApp in another process: there is no supported
    # in-process replacement (flwr.simulation's other entry points are private), and
    # `fedvault simulate` needs the ServerApp in its own process (its console, its Job).
    "The `run_simulation` function is deprecated",
    # FedSA's distillation strategy (server/fedsa.py) aggregates only: evaluation is the
    # server's own, on purpose, so fraction_evaluate=0.0 is right and Flower's warning wrong.
    "Federated evaluation will be skipped",
)
# Ray ≥ 2.40 warns at ray.init that it will stop hiding GPUs from actors that reserve none.
# The variable it names silences it only by switching to that behaviour now, which would
# let a client that reserved no GPU use one (simulations/simulate.py client_resources relies
# on the hiding), so the warning is filtered instead.
RAY_ACCELERATOR_TIP = r"Tip: In future versions of Ray, Ray will no longer override accelerator"


# Flower logs "Manually terminating ClientAppActor" at WARNING from every Ray actor at the
# normal end of every simulation. The actors are other processes, where no filter of this
# one reaches; Flower reads FLWR_LOG_LEVEL when it is imported there, so the processes
# started inside `quiet_workers` (Ray's workers inherit the environment) log Flower's errors
# only: a client's failure still shows, and events.log records it either way.
WORKER_FLOWER_LOG_LEVEL = "ERROR"


class _DropFragments(logging.Filter):
    def __init__(self, fragments: tuple[str, ...]) -> None:
        super().__init__()
        self.fragments = fragments

    def filter(self, record: logging.LogRecord) -> bool:
        text = record.getMessage()
        return not any(fragment in text for fragment in self.fragments)


_FLOWER_FILTER = _DropFragments(FLOWER_MESSAGES)


def quiet_library_logs() -> None:
    """Install the filters (idempotent): Flower's logger and Python's warnings."""
    flower = logging.getLogger("flwr")
    if _FLOWER_FILTER not in flower.filters:
        flower.addFilter(_FLOWER_FILTER)
    warnings.filterwarnings("ignore", message=RAY_ACCELERATOR_TIP, category=FutureWarning)


@contextlib.contextmanager
def quiet_workers() -> Iterator[None]:
    """FLWR_LOG_LEVEL=ERROR for the processes started inside (unless the user set it), and
    this process's environment as it was afterwards (a later `flwr` or node keeps its logs)."""
    if "FLWR_LOG_LEVEL" in os.environ:
        yield
        return
    os.environ["FLWR_LOG_LEVEL"] = WORKER_FLOWER_LOG_LEVEL
    try:
        yield
    finally:
        os.environ.pop("FLWR_LOG_LEVEL", None)
