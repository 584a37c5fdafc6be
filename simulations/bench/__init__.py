"""`fedvault bench NAME`: benchmarks that print figures measured in one run.

Each benchmark is a function `(out: Path | None, seeds: list[int] | None) -> dict`
returning a JSON-able result with a `pass` flag against its band or target;
the CLI prints it and writes it to --out. Timings are medians and ratios taken
side by side in the same process (the machines are shared and noisy).
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
    "faults": "simulations.bench.faults:run",
    "ltl": "simulations.bench.ltl:run",
    "attn-div": "simulations.bench.attn_div:run",
    "pose": "simulations.bench.pose:run",
    "dynast": "simulations.bench.dynast:run",
    "avatargen": "simulations.bench.avatargen:run",
    "style-gnn": "simulations.bench.style_gnn:run",
}


def run_bench(name: str, out: Path | None, seeds: list[int] | None) -> dict[str, Any]:
    import importlib

    if name not in BENCHES:
        raise KeyError(f"unknown benchmark {name!r}; available: {', '.join(sorted(BENCHES)) or '(none)'}")
    module, func = BENCHES[name].split(":")
    result = getattr(importlib.import_module(module), func)(out=out, seeds=seeds)
    if out is not None:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(result, indent=2, sort_keys=True))
    return result
