"""Where a node may import a user's code from: one rule for methods and model builders.

A run config names user code (`method = "mymethod:TinyCNN"`, `fedsa.teacher-arch =
"pkg.nets:build"`), and on a node the run config comes from the server. Importing a module
runs its top-level code, so a node must not import whatever module a curious or hostile
server names from the node's installed packages. `fedvault node` sets PATH_ONLY_ENV for its
ClientApps: user code is then imported only from the node's `--method-path` directories
(METHOD_PATH_ENV). Simulations and the server process run the user's own config and are
not restricted.
"""

from __future__ import annotations

import importlib.machinery
import os

from methods.config import ConfigError

METHOD_PATH_ENV = "FEDVAULT_METHOD_PATH"
"""Directories (os.pathsep-separated) searched first for a user's module. Processes that
start fresh read it: Ray workers (simulations/simulate.py exports the scenario's
directory) and a SuperNode's ClientApps (`fedvault node --method-path DIR`)."""
PATH_ONLY_ENV = "FEDVAULT_METHOD_PATH_ONLY"
"""Set ("1") by `fedvault node`: user code only from METHOD_PATH_ENV's directories."""


def check_allowed_on_node(module_name: str, label: str) -> None:
    """Refuse, before importing it, a module outside the node's --method-path directories
    (a no-op outside `fedvault node`)."""
    if os.environ.get(PATH_ONLY_ENV) != "1":
        return
    dirs = [p for p in os.environ.get(METHOD_PATH_ENV, "").split(os.pathsep) if p]
    top = module_name.partition(".")[0]
    # PathFinder looks only in `dirs` and imports nothing: nothing runs before the check.
    if not dirs or importlib.machinery.PathFinder.find_spec(top, dirs) is None:
        raise ConfigError(f"{label}: this node imports user code only from its --method-path "
                          f"directories ({', '.join(dirs) or 'none given'}), and {top!r} is not "
                          "there; copy the module into one of them (or, for a method, install "
                          "it as a fedvault.methods entry point)")
