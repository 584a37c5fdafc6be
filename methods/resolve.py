"""From config keys to a RunSpec: parsing, resolution against the registry, validation.

Scenario TOML, `--set` overrides, Flower's run config and every RoundHeader's
config_json reduce to one flat mapping of dotted kebab-case keys; the method they
name (the registry) says which dataclass its section is parsed into. This module
sits above the registry, which imports every method, which imports methods/base.py.
"""

from __future__ import annotations

import json
import sys
from typing import Any, Mapping

from methods.base import CROSS_CUTTING, Method, RunSpec
from methods.config import (
    AGGREGATIONS,
    ConfigError,
    DataConfig,
    FederationConfig,
    build_dataclass,
    config_keys,
)
from methods.registry import get_method, is_builtin


def _split_sections(flat: Mapping[str, Any], method: str) -> tuple[dict, dict, dict, dict]:
    fed, data, meth = {}, {}, {}
    cross: dict[str, dict] = {section: {} for section in CROSS_CUTTING}
    for key, value in flat.items():
        section, _, rest = key.partition(".")
        if not rest:
            fed[key] = value
        elif section == "data":
            data[rest] = value
        elif section == method:
            meth[rest] = value
        elif section in cross:
            cross[section][rest] = value
        else:
            raise ConfigError(
                f"unknown key {key!r}: section {section!r} is neither 'data', "
                f"{', '.join(repr(s) for s in CROSS_CUTTING)} nor the method {method!r}"
            )
    return fed, data, meth, cross


# Keys renamed since a run directory could have recorded them (config.json's "run"): read
# as their new names, so an older run still resumes.
RENAMED_KEYS = {"lirf.validation-fraction": "data.validation-fraction"}


def parse_run_spec(flat: Mapping[str, Any]) -> RunSpec:
    """Build a RunSpec from flat dotted kebab-case keys (scenario + overrides).

    `method` may name a user's class (`mymethod:TinyCNN`): it stays so in the spec, and so
    in every RoundHeader, while the method's keys live under its `name` (`tinycnn.lr`)."""
    flat = _renamed(flat)
    method_name = str(flat.get("method", FederationConfig.method))
    method = get_method(method_name)
    section = method.name
    fed_values, data_values, method_values, cross = _split_sections(flat, section)
    federation = build_dataclass(FederationConfig, fed_values)
    validate_federation(federation)
    data = build_dataclass(DataConfig, data_values, "data.")
    method_cfg = _method_config(method, method_name, method_values)
    sections = {s: build_dataclass(cls, cross[s], s + ".") for s, cls in CROSS_CUTTING.items()}
    spec = RunSpec(federation, data, method_cfg, **sections,
                   method_section="" if section == method_name else section)
    validate_secure_aggregation(spec, method)
    validate_pool(spec, method)
    validate_validation_split(spec, method)
    return spec


def _renamed(flat: Mapping[str, Any]) -> dict[str, Any]:
    """`flat` with old key names read as the new ones; ConfigError where both are given
    with different values (silently keeping one of them would lose the other)."""
    renamed: dict[str, Any] = {}
    for key, value in flat.items():
        new = RENAMED_KEYS.get(key, key)
        if new in renamed and not _same(renamed[new], value):
            old = next(o for o, n in RENAMED_KEYS.items() if n == new)
            raise ConfigError(f"{old} (renamed {new}) and {new} are both given, "
                              f"{renamed[new]!r} and {value!r}: give {new} only")
        renamed[new] = value
    return renamed


def _same(a: Any, b: Any) -> bool:
    """Equal as given, or as numbers ("0.10" and 0.1)."""
    try:
        return str(a) == str(b) or float(a) == float(b)
    except (TypeError, ValueError):
        return False


def _method_config(method: Method, method_name: str, values: Mapping[str, Any]) -> Any:
    try:
        return build_dataclass(method.config_cls, values, method.name + ".")
    except ConfigError:
        raise
    except ValueError as exc:
        if is_builtin(method_name):
            raise  # fedvault's own validate() raises ConfigError: anything else is a bug
        # A user's validate() has no ConfigError to raise (it is not public API): a
        # ValueError there is the user's way to refuse a value.
        where = sys.modules[type(method).__module__].__file__
        what = str(exc) if method.name in str(exc) else f"{method.name}: {exc}"
        raise ConfigError(f"{what} ({where})") from None


def run_spec_from_json(text: str) -> RunSpec:
    """The RunSpec whose `to_json` gave `text` (a RoundHeader's config_json)."""
    return parse_run_spec(json.loads(text))


def valid_keys(method_name: str) -> list[str]:
    """Every config key a run of this method accepts (named when a key is unknown)."""
    method = get_method(method_name)
    return (
        config_keys(FederationConfig)
        + config_keys(DataConfig, "data.")
        + config_keys(method.config_cls, method.name + ".")
        + [key for s, cls in CROSS_CUTTING.items() for key in config_keys(cls, s + ".")]
    )


def validate_federation(fed: FederationConfig) -> None:
    """What depends on several keys (each key's own range: FederationConfig.BOUNDS)."""
    problems = []
    if not 1 <= fed.min_nodes <= fed.num_clients:
        problems.append(f"min-nodes must be in [1, num-clients={fed.num_clients}] (got {fed.min_nodes})")
    if not fed.byzantine_nodes <= fed.num_clients:
        problems.append(f"byzantine-nodes must be in [0, num-clients={fed.num_clients}] "
                        f"(got {fed.byzantine_nodes})")
    if fed.aggregation not in AGGREGATIONS:
        problems.append(f"aggregation must be one of {', '.join(AGGREGATIONS)} (got {fed.aggregation!r})")
    sampled = fed.sampled_per_round
    if fed.aggregation == "krum" and sampled < 2 * fed.byzantine_nodes + 3:
        problems.append(f"krum tolerates byzantine-nodes=f only with >= 2f+3 sampled nodes, not {sampled}")
    if fed.aggregation == "trimmed-mean" and not 0 < 2 * fed.byzantine_nodes < sampled:
        problems.append(f"trimmed-mean needs 0 < 2*byzantine-nodes < sampled nodes ({sampled})")
    if problems:
        raise ConfigError("; ".join(problems))


def validate_secure_aggregation(spec: RunSpec, method: Method) -> None:
    """What SecAgg+ cannot run with: the server sees only the sum of the updates, so
    anything that needs one node's update is refused here, before anything starts."""
    if not spec.secagg.enabled:
        return
    secagg, fed = spec.secagg, spec.federation
    sampled = fed.sampled_per_round
    problems = []
    if method.workflow != "rounds":
        problems.append(f"method {spec.method_name!r} runs the {method.workflow!r} workflow; "
                        "SecAgg+ runs in the standard round loop only (fedavg, dp-fedavg, "
                        "a user's round-loop method)")
    if fed.aggregation != "fedavg":
        problems.append(f"aggregation={fed.aggregation} needs each node's update; "
                        "SecAgg+ gives the server only their sum (use aggregation=fedavg)")
    if spec.audit.enabled:
        problems.append("audit.enabled reads each node's update (white-box canaries); "
                        "SecAgg+ gives the server only their sum (audit a run without secagg)")
    if spec.dp.enabled and spec.dp.level == "client":
        problems.append("dp.level=client clips each update on the server, which SecAgg+ hides; "
                        "use dp.level=sample (each node noises its own update)")
    if sampled < 2:
        problems.append(f"SecAgg+ needs at least 2 sampled nodes per round (got {sampled}: "
                        "num-clients × fraction-train)")
    shares = secagg.shares_for(sampled)
    if secagg.num_shares > sampled:
        problems.append(f"secagg.num-shares={secagg.num_shares} exceeds the {sampled} nodes "
                        "sampled per round (0 = every sampled node)")
    if secagg.num_shares and shares < sampled and shares % 2 == 0:
        # Flower joins each node to num-shares/2 neighbours on each side: an even count
        # gives num-shares + 1 nodes per group, one more than the shares each node makes,
        # and every node fails in key sharing (Flower's proportion form rounds it up)
        problems.append(f"secagg.num-shares={shares} must be odd when below the {sampled} "
                        f"nodes sampled per round (use {shares + 1}, or 0 = every sampled node)")
    if sampled * secagg.quantization_range > secagg.modulus_range:
        # the server sums `sampled` values in [0, quantization-range) modulo modulus-range
        problems.append(f"{sampled} sampled nodes × secagg.quantization-range="
                        f"{secagg.quantization_range} exceed secagg.modulus-range="
                        f"{secagg.modulus_range}: the masked sum would wrap around and "
                        "unmask to a wrong model (raise modulus-range, lower "
                        "quantization-range, or sample fewer nodes)")
    if method.strategy(spec) is not None:
        problems.append(f"method {spec.method_name!r} aggregates with its own strategy; "
                        "SecAgg+ gives the server only the example-weighted mean")
    threshold = secagg.threshold_for(sampled)
    if threshold > shares:
        problems.append(f"secagg.reconstruction-threshold={threshold} exceeds the "
                        f"{shares} shares of a round with {sampled} sampled nodes")
    elif secagg.num_shares and threshold >= shares:
        problems.append(f"secagg.reconstruction-threshold={threshold} must be below "
                        f"secagg.num-shares={shares} (Flower's SecAgg+ rule)")
    if problems:
        raise ConfigError("; ".join(problems))


def validate_pool(spec: RunSpec, method: Method) -> None:
    """What a pool of K simulated nodes playing N logical clients can run (server/pool.py).

    Refused, not attempted: methods whose node state outlives a round in ways the pool does
    not carry (FedSA's teachers, LIRF's deposits), SecAgg+ (Flower's mod keeps its keys in
    the pool node's own state across the four stages) and the privacy audit (it asks every
    client at the end of the run, not one round's sample)."""
    fed = spec.federation
    if not fed.pool_nodes:
        return
    problems = []
    if method.workflow != "rounds":
        problems.append(f"method {spec.method_name!r} runs the {method.workflow!r} workflow; "
                        "pool-nodes runs round-loop methods only (fedavg, dp-fedavg, ...)")
    if spec.secagg.enabled:
        problems.append("secagg.enabled runs one SuperNode per client (set pool-nodes=0)")
    if spec.audit.enabled:
        problems.append("audit.enabled runs one SuperNode per client (set pool-nodes=0)")
    if fed.pool_nodes < fed.sampled_per_round:
        problems.append(f"pool-nodes={fed.pool_nodes} is below the {fed.sampled_per_round} "
                        "clients sampled per round (num-clients × fraction-train): each "
                        "sampled client needs its own pool node")
    if fed.pool_nodes > fed.num_clients:
        problems.append(f"pool-nodes={fed.pool_nodes} exceeds num-clients={fed.num_clients}")
    if problems:
        raise ConfigError("; ".join(problems))


def validate_validation_split(spec: RunSpec, method: Method) -> None:
    """`data.validation-fraction` and `data.evaluate-on` against the method and evaluation."""
    data = spec.data
    if data.validation_fraction and method.own_validation:
        raise ConfigError(f"data.validation-fraction: {spec.method_name} {method.own_validation}")
    if data.evaluate_on == "validation" and spec.federation.evaluation != "server":
        raise ConfigError(f"data.evaluate-on=validation is measured by the server; "
                          f"evaluation={spec.federation.evaluation} has the nodes score their "
                          f"own held-out data instead (set evaluation=server)")
