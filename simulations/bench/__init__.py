"""`fedvault bench NAME`: benchmarks that print figures measured in one run.

Each benchmark is a function `(out: Path | None, seeds: list[int] | None) -> dict`
returning a JSON-able result with a `pass` flag against its band or target;
the CLI prints it and writes it to --out. Timings are medians and ratios taken
side by side in the same process (the machines are shared and noisy).
One line per benchmark below.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Callable

Bench = Callable[..., dict[str, Any]]

BENCHES: dict[str, str] = {
    # name: "module:function" (imported lazily: benches pull in heavy code)
    "fedsa": "simulations.bench_fedsa:run",
    "dp-overhead": "simulations.bench_dp:run",
    "dp-audit": "simulations.bench_dp_audit:run",
    "lirf": "simulations.bench_lirf:run",
    "ask-ac": "simulations.bench_askac:run",
    "hscl": "simulations.bench_hscl:run",
    "overhead": "simulations.bench_overhead:run",
    "scale": "simulations.bench_scale:run",
    "wire": "simulations.bench_wire:run",
    "deploy": "simulations.bench_deploy:run",
    "lirf-speed": "simulations.bench_lirf_speed:run",
    "faults": "simulations.bench_faults:run",
    "ltl": "simulations.bench_ltl:run",
    "attn-div": "simulations.bench_attn_div:run",
    "pose": "simulations.bench_pose:run",
    "dynast": "simulations.bench_dynast:run",
    "avatargen": "simulations.bench_avatargen:run",
    "style-gnn": "simulations.bench_style_gnn:run",
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
