"""Scenarios: the TOML files in server/scenarios/ (beside this module), plus `--set` overrides.

A scenario file is nested TOML (`[data]`, `[fedavg]` sections); it is
flattened to dotted kebab-case keys, overrides replace keys, and the result is
parsed into a RunSpec (methods/config.py), which rejects unknown keys.

A user's scenario file is read the way its author sees it, from its own directory:
`method = "mymethod:TinyCNN"` imports mymethod.py from beside the file, and a relative
`data.root` is relative to the file, whatever the working directory (a `--set data.root`
stays relative to it, as every command-line path does).
"""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any, Iterable, Mapping

from methods.base import RunSpec
from methods.resolve import parse_run_spec, valid_keys
from methods.config import ConfigError
from methods.user_method import add_method_path

SCENARIO_DIR = Path(__file__).resolve().parent / "scenarios"  # the built-in scenarios
DEFAULT_SCENARIO = "fedavg"


def scenario_names() -> list[str]:
    return sorted(p.stem for p in SCENARIO_DIR.glob("*.toml"))


def scenario_description(name: str) -> str:
    first = scenario_path(name).read_text().splitlines()[:1]
    return first[0].lstrip("# ").strip() if first and first[0].startswith("#") else ""


def scenario_path(name: str) -> Path:
    """A registered scenario name, or an explicit path to a `.toml` file; nothing else.

    A name is never read as a path (`../x` is not a scenario), and a path must say so
    by its `.toml` suffix."""
    if name in scenario_names():
        return SCENARIO_DIR / f"{name}.toml"
    if name.endswith(".toml"):
        path = Path(name)
        if not path.is_file():
            raise ConfigError(f"scenario file {name!r} does not exist")
        return path
    raise ConfigError(
        f"unknown scenario {name!r}; available scenarios: {', '.join(scenario_names())} "
        "(or a path to a .toml file)"
    )


def scenario_label(name: str) -> str:
    """What a run directory is named after: the scenario name, or the file's stem."""
    return Path(name).stem if name.endswith(".toml") else name


def flatten(table: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for key, value in table.items():
        if isinstance(value, dict):
            flat.update(flatten(value, f"{prefix}{key}."))
        else:
            flat[prefix + key] = value
    return flat


def load_scenario(name: str) -> dict[str, Any]:
    path = scenario_path(name)
    try:
        with open(path, "rb") as fh:
            flat = flatten(tomllib.load(fh))
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"scenario {name!r} is not valid TOML: {exc}") from exc
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"scenario {name!r} cannot be read: {exc}") from exc
    root = flat.get("data.root")
    if isinstance(root, str) and root and not root.startswith("~") and not Path(root).is_absolute():
        # absolute, so that every process reads the same folder (deploy's ServerApp and
        # nodes run in other working directories)
        flat["data.root"] = str(path.resolve().parent / root)
    return flat


def add_scenario_method_path(name: str) -> None:
    """A scenario file's directory is searched first for a user's `module:Class`, in this
    process and in the simulation's workers (methods/user_method.py); a built-in
    scenario adds nothing."""
    if name.endswith(".toml") and Path(name).is_file():
        add_method_path(Path(name).resolve().parent)


def parse_overrides(items: Iterable[str]) -> dict[str, str]:
    """`key=value` strings (repeatable `--set`) as a dict; malformed items are errors."""
    out = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"--set expects key=value, got {item!r}")
        out[key.strip()] = value.strip()
    return out


def resolve(name: str, overrides: Mapping[str, Any] | None = None) -> RunSpec:
    flat = load_scenario(name)
    add_scenario_method_path(name)
    overrides = dict(overrides or {})
    method = str(overrides.get("method", flat.get("method", "fedavg")))
    known = set(valid_keys(method))
    unknown = sorted(set(overrides) - known)
    if unknown:
        raise ConfigError(
            f"unknown key {unknown[0]!r} for scenario {name!r}; valid keys: {', '.join(sorted(known))}"
        )
    flat.update(overrides)
    return parse_run_spec(flat)


def split_override_string(text: str) -> list[str]:
    """Flower run config carries overrides as one string: "k=v;k=v"."""
    return [part for part in (p.strip() for p in text.split(";")) if part]
