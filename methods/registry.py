"""The method registry: one explicit import line per method, loud errors.

Registration happens at import of this module, so `get_method` never depends on
which other modules happened to be imported first. `register` is public API
(`from methods import register`); building a RunSpec from config keys, which needs
the registry, is methods/resolve.py, above it.
"""

from __future__ import annotations

from methods.base import Method
from methods.config import ConfigError

_REGISTRY: dict[str, Method] = {}


class UnknownMethodError(ConfigError):
    """An unknown method name (a configuration error: the CLI exits 2)."""


def register(method: Method) -> Method:
    """Add a method instance under its `name`; a duplicate or empty name is an error."""
    if not getattr(method, "name", ""):
        raise ValueError(f"{type(method).__name__} has no name")
    if method.name in _REGISTRY:
        raise ValueError(
            f"method {method.name!r} is registered twice "
            f"({type(_REGISTRY[method.name]).__name__} and {type(method).__name__})"
        )
    _REGISTRY[method.name] = method
    return method


def get_method(name: str) -> Method:
    try:
        return _REGISTRY[name]
    except KeyError:
        raise UnknownMethodError(
            f"unknown method {name!r}; registered methods: {', '.join(sorted(_REGISTRY))}"
        ) from None


def method_names() -> list[str]:
    return sorted(_REGISTRY)


def _register_builtin() -> None:
    # One line per method; keep sorted.
    from methods.askac.method import AskAC
    from methods.attn_div.method import AttentionDiversification
    from methods.avatargen.method import AvatarGen
    from methods.dynast.method import DynaST
    from methods.fedavg.method import FedAvgMethod
    from methods.fedsa.method import FedSAMethod
    from methods.hscl.method import HSCL
    from methods.lirf.method import LIRF
    from methods.ltl.method import LTL
    from methods.pose.method import PoseMethod
    from methods.style_gnn.method import StyleGNN

    register(AskAC())
    register(AttentionDiversification())
    register(AvatarGen())
    register(DynaST())
    register(FedAvgMethod())
    register(FedSAMethod())
    register(HSCL())
    register(LIRF())
    register(LTL())
    register(PoseMethod())
    register(StyleGNN())


_register_builtin()
