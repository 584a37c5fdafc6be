"""A user's own method: `module:Class` in a scenario, or a `fedvault.methods` entry point.

Built-in methods are imported one line each in methods/registry.py. A user's method is a
class deriving from `methods.Method` in the user's own file, named either

- `method = "mymethod:TinyCNN"` in the user's scenario: the module is imported from the
  method path (the scenario file's directory, FEDVAULT_METHOD_PATH) or from sys.path;
- `method = "tinycnn"`, declared by an installed package in the `fedvault.methods`
  entry-point group (`tinycnn = "mypkg.method:TinyCNN"`), loaded only when a scenario
  names it, so an installed package never slows down or breaks a run that does not use it.

The class is checked here before anything runs, and every mistake is a ConfigError (the
CLI exits 2) whose one line names the user's file: the user should not have to read a
traceback through fedvault's internals to find a typo in their own code. What the user's
code does with the data (a model that does not fit the images, a train_step returning the
wrong thing) shows only on the data: simulations/cli/preflight.py tries it.
"""

from __future__ import annotations

import dataclasses
import importlib
import importlib.metadata
import os
import re
import sys
import traceback
import typing
from pathlib import Path

from methods.base import CROSS_CUTTING, LocalTrainingConfig, Method
from methods.common.user_code import METHOD_PATH_ENV, PATH_ONLY_ENV, check_allowed_on_node
from methods.config import ConfigError

ENTRY_POINT_GROUP = "fedvault.methods"
_REFERENCE = re.compile(r"^[A-Za-z_]\w*(\.[A-Za-z_]\w*)*:[A-Za-z_]\w*$")
# The name is the config section (`[tinycnn]`, `--set tinycnn.lr=0.1`): no dots, and
# none of the sections every run already has.
_SECTION = re.compile(r"^[a-z][a-z0-9_-]*$")
_RESERVED_SECTIONS = ("data", *CROSS_CUTTING)
_FIELD_TYPES = (int, float, str, bool)  # what methods/config.py can parse from a key

_added: list[str] = []  # directories this process was given (add_method_path)


def is_reference(name: str) -> bool:
    """`module:Class` (a user's class) rather than a registered or entry-point name."""
    return ":" in name


def add_method_path(directory: str | os.PathLike[str]) -> None:
    """Search `directory` first for users' modules in this process; processes started
    later get it through `exported_method_path` (a scenario file's directory)."""
    path = str(Path(directory).resolve())
    if path not in _added:
        _added.insert(0, path)
    _use_method_path()


def exported_method_path() -> str:
    """METHOD_PATH_ENV's value for child processes: this process's directories first."""
    inherited = [p for p in os.environ.get(METHOD_PATH_ENV, "").split(os.pathsep) if p]
    return os.pathsep.join(dict.fromkeys(_added + inherited))


def _use_method_path() -> None:
    # In front of sys.path, as `python script.py` puts the script's directory: the user's
    # module wins over an installed one of the same name. fedvault, torch and Flower are
    # imported long before, so nothing of theirs can be shadowed.
    for path in reversed(exported_method_path().split(os.pathsep)):
        if path and path not in sys.path:
            sys.path.insert(0, path)


# ---- loading -------------------------------------------------------------------------


def load_reference(reference: str) -> Method:
    """Import `module:Class`, check the class and return an instance of it."""
    if not _REFERENCE.match(reference):
        raise ConfigError(f"method {reference!r}: a method of your own is named module:Class "
                          "(e.g. mymethod:TinyCNN, mypkg.methods:TinyCNN)")
    module_name, _, class_name = reference.partition(":")
    _use_method_path()
    check_allowed_on_node(module_name, f"method {reference!r}")
    module = _import_user_module(module_name, reference)
    where = getattr(module, "__file__", None) or module_name
    cls = getattr(module, class_name, None)
    if cls is None:
        classes = sorted(k for k, v in vars(module).items()
                         if isinstance(v, type) and issubclass(v, Method) and v is not Method)
        raise ConfigError(f"method {reference!r}: {where} has no {class_name!r} (its Method "
                          f"classes: {', '.join(classes) or 'none'})")
    return instantiate(cls, reference, where)


def entry_point_names() -> list[str]:
    """The method names installed packages declare (not loaded)."""
    return sorted({ep.name for ep in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP)})


def load_entry_point(name: str) -> Method | None:
    """The method an installed package declares as `name`, or None when none does."""
    found = list(importlib.metadata.entry_points(group=ENTRY_POINT_GROUP, name=name))
    if not found:
        return None
    values = sorted({ep.value for ep in found})
    if len(values) > 1:  # two packages claim the name: refuse to guess which one runs
        raise ConfigError(f"method {name!r}: several installed packages declare it in "
                          f"{ENTRY_POINT_GROUP} ({', '.join(values)}); uninstall one")
    entry_point = found[0]
    label = f"{name} (entry point {entry_point.value})"
    module_name = entry_point.value.partition(":")[0]
    _import_user_module(module_name, label)  # its errors, named like a reference's
    cls = entry_point.load()
    where = getattr(sys.modules.get(getattr(cls, "__module__", "")), "__file__", module_name)
    method = instantiate(cls, label, where)
    if method.name != name:  # the scenario's section is the name: they must agree
        raise ConfigError(f"method {label} ({where}): the entry point's name and the class's "
                          f"name {method.name!r} differ; declare it as {method.name} = "
                          f"\"{entry_point.value}\"")
    return method


def _import_user_module(module_name: str, label: str):
    try:
        return importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        missing = exc.name or ""
        if module_name == missing or module_name.startswith(missing + "."):
            raise ConfigError(f"method {label!r}: no module {module_name!r} in "
                              f"{', '.join(_searched())} or the installed packages") from None
        raise ConfigError(f"method {label!r}: importing {module_name} failed: "
                          f"{describe_exception(exc)}") from None
    except Exception as exc:  # anything the user's module raises while it is imported
        raise ConfigError(f"method {label!r}: importing {module_name} failed: "
                          f"{describe_exception(exc)}") from None


def instantiate(cls: object, label: str, where: str) -> Method:
    """Check what fedvault relies on before anything starts, then create the method."""
    prefix = f"method {label!r} ({where})"
    if not (isinstance(cls, type) and issubclass(cls, Method)):
        raise ConfigError(f"{prefix}: {getattr(cls, '__name__', repr(cls))} is not a class "
                          "deriving from methods.Method")
    name = getattr(cls, "name", None)
    if not (isinstance(name, str) and _SECTION.match(name)) or name in _RESERVED_SECTIONS:
        raise ConfigError(f"{prefix}: {cls.__name__}.name names its config section and must "
                          f"match {_SECTION.pattern} and not be {', '.join(_RESERVED_SECTIONS)} "
                          f"(got {name!r})")
    _check_config_cls(cls, prefix)
    try:
        return cls()
    except Exception as exc:  # e.g. an abstract method left out (train_step)
        raise ConfigError(f"{prefix}: {cls.__name__}() failed: {describe_exception(exc)}") from None


def _check_config_cls(cls: type, prefix: str) -> None:
    config_cls = getattr(cls, "config_cls", None)
    if not (isinstance(config_cls, type) and dataclasses.is_dataclass(config_cls)
            and config_cls.__dataclass_params__.frozen and issubclass(config_cls, LocalTrainingConfig)):
        raise ConfigError(f"{prefix}: {cls.__name__}.config_cls must be a frozen dataclass "
                          "deriving from methods.LocalTrainingConfig (@dataclass(frozen=True) "
                          f"class MyConfig(LocalTrainingConfig)), got {config_cls!r}")
    try:  # every key is optional in a scenario, so every field needs a default
        config_cls()
        hints = typing.get_type_hints(config_cls)
    except Exception as exc:
        raise ConfigError(f"{prefix}: {config_cls.__name__}() failed: {describe_exception(exc)} "
                          "(every field needs a default)") from None
    for field in dataclasses.fields(config_cls):
        typ = hints[field.name]
        if typing.get_origin(typ) is tuple:
            typ = typing.get_args(typ)[0]
        if typ not in _FIELD_TYPES:
            raise ConfigError(f"{prefix}: {config_cls.__name__}.{field.name} is a {typ!r}; a "
                              "config field is an int, float, str, bool or tuple[X, ...] of one")


# ---- messages ------------------------------------------------------------------------


def describe_exception(exc: BaseException) -> str:
    """`Type: first line (file:line)`, the line being the deepest one in the user's code."""
    first = (str(exc).strip().splitlines() or [""])[0]
    if isinstance(exc, SyntaxError) and exc.filename:
        return f"{type(exc).__name__}: {exc.msg} ({exc.filename}:{exc.lineno})"
    frame = _user_frame(exc)
    place = f" ({frame.filename}:{frame.lineno})" if frame is not None else ""
    return f"{type(exc).__name__}: {first}{place}"


def _user_frame(exc: BaseException) -> traceback.FrameSummary | None:
    frames = traceback.extract_tb(exc.__traceback__)
    for frame in reversed(frames):
        if not _is_library(frame.filename):
            return frame
    return frames[-1] if frames else None


_LIBRARY_DIRS = tuple(str(Path(p).resolve()) + os.sep for p in {sys.prefix, sys.base_prefix})
# fedvault's own packages: a user's line that calls into them is the line to show
_FEDVAULT_DIRS = tuple(str(Path(__file__).resolve().parents[1] / package) + os.sep
                       for package in ("methods", "server", "clients", "protos", "simulations"))


def _is_library(filename: str) -> bool:
    if filename.startswith("<"):  # <frozen importlib._bootstrap>
        return True
    path = str(Path(filename).resolve())
    return path.startswith(_LIBRARY_DIRS) or path.startswith(_FEDVAULT_DIRS)


def _searched() -> list[str]:
    """The directories a module was looked for in, without Python's and the venv's own."""
    dirs = []
    for entry in sys.path:
        path = str(Path(entry or os.getcwd()).resolve())
        if Path(path).is_dir() and not (path + os.sep).startswith(_LIBRARY_DIRS):
            dirs.append(path)
    return list(dict.fromkeys(dirs))
