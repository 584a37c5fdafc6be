"""The method registry: one explicit import line per method, loud errors.

Registration happens at import of this module, so `get_method` never depends on
which other modules happened to be imported first. `register` is public API
(`from methods import register`); building a RunSpec from config keys, which needs
the registry, is methods/resolve.py, above it.

A user's own method is resolved on first use (methods/user_method.py): `get_method`
imports `module:Class`, or loads the `fedvault.methods` entry point of that name, checks
the class and registers it under its `name`, the method's config section. Run configs
and RoundHeaders carry the reference as written (`federation.method`), so every process
(Ray workers, ClientApps) resolves the same class with the same call.
"""

from __future__ import annotations

import sys

from methods.base import Method
from methods.config import ConfigError
from methods.user_method import (
    ENTRY_POINT_GROUP,
    entry_point_names,
    is_reference,
    load_entry_point,
    load_reference,
)

_REGISTRY: dict[str, Method] = {}
_BUILTIN: set[str] = set()  # filled by _register_builtin
_USER: dict[str, Method] = {}  # a user's `module:Class` or entry-point name → its method


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
    """A registered method, or a user's `module:Class` / entry point, resolved once."""
    if name in _REGISTRY:
        return _REGISTRY[name]
    if name not in _USER:
        _USER[name] = _resolve_user_method(name)
    return _USER[name]


def _resolve_user_method(name: str) -> Method:
    method = load_reference(name) if is_reference(name) else load_entry_point(name)
    if method is None:
        installed = entry_point_names()
        raise UnknownMethodError(
            f"unknown method {name!r}; registered methods: {', '.join(sorted(_REGISTRY))}"
            + (f"; installed ({ENTRY_POINT_GROUP}): {', '.join(installed)}" if installed else "")
            + "; a method of your own is named module:Class (docs/own_method.md)"
        )
    taken = _REGISTRY.get(method.name)
    if taken is not None and type(taken) is type(method):
        return taken  # the same class reached by another name (entry point and module:Class)
    if taken is not None:
        where = sys.modules[type(method).__module__].__file__
        raise ConfigError(f"method {name!r} ({where}): its name {method.name!r} is taken by "
                          f"{type(taken).__module__}.{type(taken).__name__}; choose another name")
    return register(method)


def is_builtin(name: str) -> bool:
    """One of fedvault's own methods (a user's runs a trial step first: preflight)."""
    return name in _BUILTIN


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
    _BUILTIN.update(_REGISTRY)


_register_builtin()
