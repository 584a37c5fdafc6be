"""Typed run configuration: frozen dataclasses, kebab-case keys, loud errors.

A run is configured by three sections: the federation (rounds, clients,
timeouts), the data (data set and partitioner) and the method's own dataclass.
Scenario TOML files, `--set key=value` overrides and Flower's run config all
reduce to one flat mapping of dotted kebab-case keys (`num-server-rounds`,
`data.partitioner`, `fedavg.lr`), parsed here against the dataclass fields so an
unknown key or a value of the wrong type fails before anything runs.
"""

from __future__ import annotations

import dataclasses
import json
import typing
from dataclasses import dataclass
from typing import Any, Mapping


class ConfigError(ValueError):
    """A configuration key or value is invalid; the message names the valid choices."""


@dataclass(frozen=True)
class FederationConfig:
    """How the federation runs, whatever the method."""

    method: str = "fedavg"
    """Registered method name (`fedvault methods` lists them)."""
    num_server_rounds: int = 10
    """Federated rounds (R)."""
    num_clients: int = 10
    """Expected federation size; the run waits for this many nodes before round 1."""
    fraction_train: float = 1.0
    """Fraction of connected nodes sampled for training each round."""
    min_nodes: int = 1
    """Fewest reachable nodes a round may run with; below it the run stops with a clear error."""
    round_timeout: float = 120.0
    """Seconds the server waits for replies in one round; a missing node never hangs a run."""
    node_wait_timeout: float = 120.0
    """Seconds to wait for `num_clients` nodes to connect before round 1."""
    seed: int = 0
    """Seed of everything random: partitions, sampling, initial weights, local batches."""
    aggregation: str = "fedavg"
    """How the round loop aggregates updates: fedavg | krum | median | trimmed-mean (Flower's
    FedAvg, Krum, FedMedian, FedTrimmedAvg); the last three resist a few poisoned updates."""
    byzantine_nodes: int = 1
    """f, the poisoned updates per round robust aggregation must tolerate: Krum's number of
    malicious nodes; trimmed-mean cuts f of the sampled updates from each end."""


@dataclass(frozen=True)
class DataConfig:
    """Which data the clients hold and how it is split among them."""

    dataset: str = "mnist5k"
    """mnist5k | digits | cifar10 | cifar100 | image-folder."""
    root: str = ""
    """Local directory for data sets that are not bundled (cifar*, image-folder)."""
    partitioner: str = "dirichlet"
    """iid | dirichlet | pathological."""
    dirichlet_alpha: float = 0.5
    """Concentration α of the Dirichlet label split (smaller = more skew)."""
    classes_per_client: int = 2
    """k of the pathological split."""

    def validate(self) -> None:
        from methods.common.datasets import _LOADERS  # the registry of data set names
        from methods.common.partition import SCHEMES

        problems = []
        if self.dataset not in _LOADERS:
            problems.append(f"data.dataset must be one of {', '.join(_LOADERS)} (got {self.dataset!r})")
        if self.partitioner not in SCHEMES:
            problems.append(f"data.partitioner must be one of {', '.join(SCHEMES)} (got {self.partitioner!r})")
        if self.dirichlet_alpha <= 0 or self.classes_per_client < 1:
            problems.append("data.dirichlet-alpha must be > 0 and data.classes-per-client >= 1")
        if problems:
            raise ConfigError("; ".join(problems))


def kebab(name: str) -> str:
    return name.replace("_", "-")


def snake(name: str) -> str:
    return name.replace("-", "_")


def config_keys(cls: type, prefix: str = "") -> list[str]:
    return [prefix + kebab(f.name) for f in dataclasses.fields(cls)]


def _parse_value(raw: Any, typ: Any, key: str) -> Any:
    """Coerce `raw` (a TOML value or a `--set` string) into the field type `typ`."""
    origin = typing.get_origin(typ)
    try:
        if typ is bool:
            if isinstance(raw, bool):
                return raw
            if str(raw).lower() in ("true", "1", "yes", "on"):
                return True
            if str(raw).lower() in ("false", "0", "no", "off"):
                return False
            raise ValueError(raw)
        if typ is int:
            if isinstance(raw, bool) or (isinstance(raw, float) and not raw.is_integer()):
                raise ValueError(raw)
            return int(raw)
        if typ is float:
            if isinstance(raw, bool):
                raise ValueError(raw)
            return float(raw)
        if typ is str:
            return str(raw)
        if origin is tuple:
            (item_type, _) = typing.get_args(typ)
            items = raw if isinstance(raw, (list, tuple)) else [
                s for s in str(raw).replace(" ", "").split(",") if s
            ]
            return tuple(_parse_value(item, item_type, key) for item in items)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"{key}: cannot read {raw!r} as {_type_name(typ)}") from exc
    raise TypeError(f"unsupported config field type {typ!r} for {key}")


def _type_name(typ: Any) -> str:
    if typing.get_origin(typ) is tuple:
        return f"a comma-separated list of {typing.get_args(typ)[0].__name__}"
    return getattr(typ, "__name__", str(typ))


def build_dataclass(cls: type, values: Mapping[str, Any], prefix: str = "") -> Any:
    """Build `cls` from kebab-case keys (without prefix); unknown keys are errors."""
    hints = typing.get_type_hints(cls)
    fields = {kebab(f.name): f for f in dataclasses.fields(cls)}
    unknown = sorted(set(values) - set(fields))
    if unknown:
        raise ConfigError(
            f"unknown key {prefix + unknown[0]!r}; valid keys: "
            + ", ".join(prefix + k for k in fields)
        )
    kwargs = {
        f.name: _parse_value(values[key], hints[f.name], prefix + key)
        for key, f in fields.items()
        if key in values
    }
    obj = cls(**kwargs)
    validate = getattr(obj, "validate", None)
    if validate is not None:
        validate()
    return obj


def to_flat(obj: Any, prefix: str = "") -> dict[str, Any]:
    """The dataclass as flat kebab-case keys (tuples become lists for JSON/TOML)."""
    out = {}
    for f in dataclasses.fields(obj):
        value = getattr(obj, f.name)
        out[prefix + kebab(f.name)] = list(value) if isinstance(value, tuple) else value
    return out


def dumps(flat: Mapping[str, Any]) -> str:
    return json.dumps(dict(flat), sort_keys=True)
