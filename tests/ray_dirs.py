"""The /tmp/fvray-* directories tests/conftest.py's `isolated_env` makes, in one place.

pytest imports conftest.py as `conftest`, and the integration tests import `isolated_env`
from `tests.conftest`: two module objects, each with its own globals. Directories recorded
in the second copy's lists were never swept (3 or 4 left after each test run). This module
is only ever imported as `tests.ray_dirs`, so both copies share its lists.
"""

from __future__ import annotations

from pathlib import Path

CURRENT: list[Path] = []  # made for the running test, removed after it
EVERY: set[Path] = set()  # ... and once more when the session ends
