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
import math
import re
import typing
from dataclasses import dataclass
from typing import Any, Mapping


class ConfigError(ValueError):
    """A configuration key or value is invalid; the message names the valid choices."""


# Every int a config holds must fit a 64-bit field (numpy, torch seeds, protobuf).
INT64 = (-(2**63), 2**63 - 1)


@dataclass(frozen=True)
class Bound:
    """The valid range of a numeric config field; `open_*` excludes that end."""

    low: float | None = None
    high: float | None = None
    open_low: bool = False
    open_high: bool = False

    def admits(self, value: float) -> bool:
        if self.low is not None and (value <= self.low if self.open_low else value < self.low):
            return False
        if self.high is not None and (value >= self.high if self.open_high else value > self.high):
            return False
        return True

    def __str__(self) -> str:
        low, high = _number(self.low), _number(self.high)
        if self.low is not None and self.high is not None:
            return f"in {'(' if self.open_low else '['}{low}, {high}{')' if self.open_high else ']'}"
        if self.low is not None:
            return f"{'>' if self.open_low else '>='} {low}"
        return f"{'<' if self.open_high else '<='} {high}"


def _number(x: float | None) -> str:
    return str(int(x)) if x is not None and float(x).is_integer() else str(x)


def check_bounds(obj: Any, prefix: str = "") -> None:
    """Refuse fields outside the ranges their class declares in `BOUNDS` (python names).

    One line for every offending key, each naming the key and its valid range."""
    problems = []
    for name, bound in getattr(type(obj), "BOUNDS", {}).items():
        value = getattr(obj, name)
        for item in value if isinstance(value, tuple) else (value,):
            if not bound.admits(item):
                problems.append(f"{prefix}{kebab(name)} must be {bound} (got {item!r})")
                break
    if problems:
        raise ConfigError("; ".join(problems))


# The forms of the `device` key; methods/common/device.py resolves them on a machine.
DEVICE_FORMS = "auto, cpu, cuda, cuda:<index>, mps"
_DEVICE_FORM = re.compile(r"auto|cpu|mps|cuda(:\d{1,3})?")


def check_device_form(text: object, key: str = "device") -> None:
    """ConfigError unless `text` is one of DEVICE_FORMS (the machine is not asked)."""
    if not isinstance(text, str) or not _DEVICE_FORM.fullmatch(text):
        raise ConfigError(f"{key} must be one of {DEVICE_FORMS} (got {text!r})")


# Robust aggregation (Blanchard et al., NeurIPS 2017: Krum; Yin et al., ICML 2018:
# coordinate-wise median and trimmed mean), all from flwr.serverapp.strategy (server/strategy.py).
AGGREGATIONS = ("fedavg", "krum", "median", "trimmed-mean")
# Who evaluates the global model each round (FederationConfig.evaluation; server/evaluation.py).
EVALUATIONS = ("server", "federated", "auto")
# Which split a run's figures are measured on (DataConfig.evaluate_on).
EVALUATE_ON = ("test", "validation")
# Experiment trackers (FederationConfig.tracking; server/tracking.py), optional extras.
TRACKERS = ("none", "tensorboard", "mlflow")


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
    evaluation: str = "server"
    """Who measures the global model after each round: server (on the run's test split) |
    federated (each sampled node on its own held-out split; the server weights their figures
    by examples) | auto (server, unless a node's data differ from the server's test set:
    then federated, said in events.log). docs/runs.md#evaluation."""
    device: str = "auto"
    """Where torch computes: auto | cpu | cuda | cuda:<i> | mps (methods/common/device.py);
    auto picks CUDA when there is one. The server's and every node's, unless a node's own
    `fedvault node --device` says otherwise (docs/gpu.md)."""
    num_cpus: float = 1.0
    """Simulation only: CPUs Ray reserves for each ClientApp (fractional allowed)."""
    num_gpus: float = 0.0
    """Simulation only: the GPU share of each ClientApp (0.25: four clients per GPU); 0 with
    a CUDA device lets `fedvault simulate` share the GPUs among the clients it runs at once."""
    pool_nodes: int = 0
    """Simulation only: 0 runs one virtual SuperNode per client; K > 0 runs N = num-clients
    logical clients on a pool of K SuperNodes (at least the clients sampled per round). The
    sampler draws logical client ids, and each sampled client plays on one pool node for
    the round (docs/performance.md#pooled-clients). Round-loop methods only."""
    tracking: str = "none"
    """Experiment tracker fed by the metrics stream besides metrics.jsonl: none | tensorboard
    (event files in RUN_DIR/tensorboard/) | mlflow (a local file store); docs/runs.md."""

    # Valid ranges (check_bounds); min-nodes and byzantine-nodes depend on num-clients and
    # are checked with it (methods/resolve.py), num-clients against the data (preflight).
    BOUNDS = {
        "num_server_rounds": Bound(1, 100_000),
        "num_clients": Bound(1, 1_000_000),
        "fraction_train": Bound(0, 1, open_low=True),
        "round_timeout": Bound(0, 86_400, open_low=True),  # a day; the header's round is uint32
        "node_wait_timeout": Bound(0, 86_400, open_low=True),
        "seed": Bound(0, 2**32 - 1),  # numpy's legacy seeding and every RNG the methods use
        "byzantine_nodes": Bound(0),
        "num_cpus": Bound(0, open_low=True),  # Flower divides the host's CPUs by it
        "num_gpus": Bound(0),
        "pool_nodes": Bound(0, 1_000_000),
    }

    def validate(self) -> None:
        check_device_form(self.device)
        if self.num_gpus > 1 and not self.num_gpus.is_integer():
            raise ConfigError(f"num-gpus above 1 must be a whole number of GPUs (Ray's rule), "
                              f"got {self.num_gpus}")
        if self.evaluation not in EVALUATIONS:
            raise ConfigError(f"evaluation must be one of {', '.join(EVALUATIONS)} "
                              f"(got {self.evaluation!r})")
        if self.tracking not in TRACKERS:
            raise ConfigError(f"tracking must be one of {', '.join(TRACKERS)} (got {self.tracking!r})")

    @property
    def sampled_per_round(self) -> int:
        """The nodes the seeded sampler picks each round (at least one)."""
        return max(1, round(self.fraction_train * self.num_clients))


@dataclass(frozen=True)
class DataConfig:
    """Which data the clients hold and how it is split among them."""

    dataset: str = "mnist5k"
    """mnist5k | digits | cifar10 | cifar100 | image-folder | npz."""
    root: str = ""
    """Where data that are not bundled live: a directory (cifar*, image-folder) or a file
    (npz: path/to/file.npz)."""
    partitioner: str = "dirichlet"
    """iid | dirichlet | pathological."""
    dirichlet_alpha: float = 0.5
    """Concentration α of the Dirichlet label split (smaller = more skew)."""
    classes_per_client: int = 2
    """k of the pathological split."""
    image_size: tuple[int, ...] = ()
    """Image folders (the run's and nodes' own): H,W or one int (square) every image is
    resized to; empty = the size of the folder's first training image."""
    channels: int = 0
    """Image folders: 1 (grayscale) or 3 (RGB); 0 = that of the folder's first training image."""
    class_names: tuple[str, ...] = ()
    """Image folders: the federation's class names in label order, so that a node whose
    folder lacks some classes labels the others as every node does; empty = the sorted class
    directories (a node's own folder: those of the run's named set, "0".."9", when it is
    mnist5k, digits or cifar*)."""
    validation_fraction: float = 0.0
    """Share of the training data held out as the run's validation split, carved before the
    nodes' partitions (stratified by label, seeded by the run's seed): no node trains on it.
    0 = no split. Methods whose rows are not labelled examples say how they hold out
    (Method.validation_split, Method.validation_dataset)."""
    evaluate_on: str = "test"
    """test | validation: the split every figure of the run is measured on (each round's
    evaluation and the summary). `validation` needs validation-fraction > 0 and reads no test
    figure: settings are chosen that way (`fedvault choose`), then measured on test."""

    BOUNDS = {"image_size": Bound(1, 4096),
              "validation_fraction": Bound(0, 1, open_high=True)}

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
        if len(self.image_size) > 2:
            problems.append(f"data.image-size must be H,W or one int (got {list(self.image_size)})")
        if self.evaluate_on not in EVALUATE_ON:
            problems.append(f"data.evaluate-on must be one of {', '.join(EVALUATE_ON)} "
                            f"(got {self.evaluate_on!r})")
        elif self.evaluate_on == "validation" and not self.validation_fraction:
            problems.append("data.evaluate-on=validation needs a validation split: set "
                            "data.validation-fraction in (0, 1)")
        if self.channels not in (0, 1, 3):
            problems.append(f"data.channels must be 1, 3 or 0 (= the first image's) (got {self.channels})")
        names = self.class_names
        if len(set(names)) != len(names) or any(
                not n or n.startswith(".") or "/" in n or "\\" in n for n in names):
            problems.append(f"data.class-names must be unique plain directory names (got {list(names)})")
        if problems:
            raise ConfigError("; ".join(problems))

    def folder_format(self) -> dict[str, Any]:
        """The image-folder keywords of load_dataset (methods/common/datasets.py)."""
        return {"channels": self.channels, "image_size": self.image_size,
                "class_names": self.class_names}


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
            value = int(raw)
            if not INT64[0] <= value <= INT64[1]:
                raise ConfigError(f"{key} must be a 64-bit integer (got {raw!r})")
            return value
        if typ is float:
            if isinstance(raw, bool):
                raise ValueError(raw)
            value = float(raw)
            # Checked once here for every section (federation, data, method, dp, audit):
            # NaN passes every `x <= 0` test below it, and inf is never a sane setting.
            if not math.isfinite(value):
                raise ConfigError(f"{key} must be a finite number (got {raw!r})")
            return value
        if typ is str:
            return str(raw)
        if origin is tuple:
            (item_type, _) = typing.get_args(typ)
            items = raw if isinstance(raw, (list, tuple)) else [
                s for s in str(raw).replace(" ", "").split(",") if s
            ]
            return tuple(_parse_value(item, item_type, key) for item in items)
    except ConfigError:
        raise
    except (TypeError, ValueError, OverflowError) as exc:
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
    check_bounds(obj, prefix)
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
