"""`fedvault bench NAME`: benchmarks that print figures measured in one run.

Each benchmark is a function `(out: Path | None, seeds: list[int] | None) -> dict`
(plus the keywords OPTIONS names for it, e.g. `bench lirf --sets N`) returning a JSON-able
result with a `pass` flag against its band or target; the CLI prints it and writes it
to --out. Timings are medians and ratios taken side by side in the same process (the
machines are shared and noisy).
One line per benchmark below; each is a module of this package. Their shared plumbing:
runs.py (claim benchmarks: one `fedvault simulate` per seed, bands), perf.py (timings,
memory, child processes) and vanilla_flower.py (the plain-Flower baseline).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Callable

Bench = Callable[..., dict[str, Any]]

BENCHES: dict[str, str] = {
    # name: "module:function" (imported lazily: benches pull in heavy code)
    "fedsa": "simulations.bench.fedsa:run",
    "fedsa-choose": "simulations.bench.fedsa_choose:run",  # adapt-backbone-lr on validation
    "dp-overhead": "simulations.bench.dp:run",
    "dp-audit": "simulations.bench.dp_audit:run",
    "lirf": "simulations.bench.lirf:run",
    "ask-ac": "simulations.bench.askac:run",
    "hscl": "simulations.bench.hscl:run",
    "overhead": "simulations.bench.overhead:run",
    "scale": "simulations.bench.scale:run",
    "wire": "simulations.bench.wire:run",
    "deploy": "simulations.bench.deploy:run",
    "lirf-speed": "simulations.bench.lirf_speed:run",
    "lirf-choose": "simulations.bench.lirf_choose:run",
    "secagg": "simulations.bench.secagg:run",  # SecAgg+ round time and bytes, 3/10/50 clients
    "faults": "simulations.bench.faults:run",
    "ltl": "simulations.bench.ltl:run",
    "attn-div": "simulations.bench.attn_div:run",
    "pose": "simulations.bench.pose:run",
    "dynast": "simulations.bench.dynast:run",
    "avatargen": "simulations.bench.avatargen:run",
    "style-gnn": "simulations.bench.style_gnn:run",
    "gpu": "simulations.bench.gpu:run",  # fedavg, dp-fedavg, LIRF on the CPU and on CUDA
}


# Options a bench takes besides --out and --seeds: its CLI flag (also the keyword of its
# run()) → "module:function" turning the flag's text into the value, or raising ConfigError.
OPTIONS: dict[str, dict[str, str]] = {
    "lirf": {"sets": "simulations.bench.lirf:parse_sets"},
    "lirf-choose": {"sets": "simulations.bench.lirf_choose:parse_sets",
                    "grid": "simulations.bench.lirf_choose:parse_grid"},
}


def _load(target: str) -> Callable[..., Any]:
    import importlib

    module, func = target.split(":")
    return getattr(importlib.import_module(module), func)


def parse_options(name: str, given: dict[str, str]) -> dict[str, Any]:
    """The options given for bench NAME, parsed before anything runs; ConfigError (one
    line) for an option that bench does not take or a bad value."""
    from methods.config import ConfigError

    parsed = {}
    for flag, text in given.items():
        if flag not in OPTIONS.get(name, {}):
            takers = sorted(bench for bench, options in OPTIONS.items() if flag in options)
            raise ConfigError(f"--{flag} applies to bench {' / '.join(takers)} only, not {name!r}")
        parsed[flag] = _load(OPTIONS[name][flag])(text)
    return parsed


def run_bench(name: str, out: Path | None, seeds: list[int] | None,
              options: dict[str, Any] | None = None) -> dict[str, Any]:
    if name not in BENCHES:
        raise KeyError(f"unknown benchmark {name!r}; available: {', '.join(sorted(BENCHES)) or '(none)'}")
    result = _load(BENCHES[name])(out=out, seeds=seeds, **(options or {}))
    if out is not None:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(result, indent=2, sort_keys=True))
    return result
