"""fedvault's methods, and the public API a user's own method is written against.

    from methods import Method, LocalTrainingConfig, Stage, RunSpec, register

- `Method`: the interface (methods/base.py): build the model, load the client's data,
  one local step, evaluate, what travels to the server (`shared_state`), optionally
  stages and the method's own Flower strategy.
- `LocalTrainingConfig`: the frozen dataclass a method's config extends (epochs,
  batch size, lr, ...); its fields become the `<method>.*` config keys.
- `Stage`: one federated run inside a multi-stage method (baselines, phases).
- `RunSpec`: the resolved run a method reads (federation, data, its config, dp, audit).
- `register`: add a method instance to the registry (methods/registry.py; loud on a
  duplicate or a nameless method).

That is all a method needs; everything else in this package is fedvault's own. A user's
method lives in the user's own module, named `module:Class` in the user's scenario or
declared by an installed package's `fedvault.methods` entry point (methods/user_method.py,
docs/own_method.md). The
names load on first use: `import methods.common.partition` must not pay for torch.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__all__ = ["LocalTrainingConfig", "Method", "RunSpec", "Stage", "register"]

if TYPE_CHECKING:
    from methods.base import LocalTrainingConfig, Method, RunSpec, Stage
    from methods.registry import register


def __getattr__(name: str) -> Any:
    if name == "register":
        from methods.registry import register

        return register
    if name in __all__:
        from methods.base import LocalTrainingConfig, Method, RunSpec, Stage

        return {"LocalTrainingConfig": LocalTrainingConfig, "Method": Method,
                "RunSpec": RunSpec, "Stage": Stage}[name]
    raise AttributeError(f"module 'methods' has no attribute {name!r}")
