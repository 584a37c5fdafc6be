"""`fedvault bench gpu`: fedavg, dp-fedavg and LIRF on the CPU and on CUDA, side by side.

Each (scenario, device) pair is one `fedvault simulate` run (a few rounds, `--set
device=...`; on CUDA `num-gpus` stays 0, so simulate shares the GPUs among the clients
that run at once), in one bench process on one machine. Per pair: the median seconds of a
training round (metrics.jsonl), the final accuracy, and the devices the run recorded: the
server's and every node's (summary.json). Per scenario: `speedup` = the first device's
round seconds ÷ the second's (> 1: the second, CUDA, is faster).

`pass`: every run finished and recorded the device it was asked for, on the server and on
every node. Speed decides nothing: a small CNN may well be faster on 16 CPU cores.

Without CUDA it prints one line, measures nothing and passes (exit 0): docs/gpu.md says
whether figures from a GPU machine exist. `devices` and `simulate` are injectable, so
tests run the measuring path on the CPU twice, in process (tests/unit/test_bench_gpu.py).
"""

from __future__ import annotations

import json
import os
import statistics
import sys
import tempfile
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping, Sequence

from protos.contract import Phase

ROUNDS = 3
# scenario -> its --set items beyond device and rounds: the audit's extra phases and LIRF's
# retrain baseline are off, so the runs time training rounds
SCENARIOS: dict[str, tuple[str, ...]] = {
    "fedavg": (),
    "dp-fedavg": ("audit.enabled=false",),
    "lirf": ("lirf.retrain-baseline=false",),
}
NO_CUDA = "no CUDA device: bench gpu needs a GPU; nothing measured"

Simulate = Callable[[str, int, Path, Iterable[str]], dict[str, Any]]


def run(out: Path | None = None, seeds: list[int] | None = None, *,
        devices: Sequence[str] | None = None, scenarios: Mapping[str, Sequence[str]] | None = None,
        rounds: int = ROUNDS, simulate: Simulate | None = None) -> dict[str, Any]:
    import torch

    if devices is None:
        if not torch.cuda.is_available():
            print(NO_CUDA, file=sys.stderr, flush=True)
            return {"bench": "gpu", "available": False, "pass": True, "note": NO_CUDA}
        devices = ("cpu", "cuda")
    if simulate is None:
        from simulations.bench.runs import simulate_scenario as simulate
    seed = (seeds or [0])[0]
    root = out.parent / f"{out.stem}-runs" if out else Path(tempfile.mkdtemp(prefix="gpu-bench-"))
    results = {}
    for scenario, extra in (scenarios or SCENARIOS).items():
        per_device = []
        for i, device in enumerate(devices):
            sets = [f"device={device}", f"num-server-rounds={rounds}", *extra]
            run_dir = root / f"{scenario}-{i}-{device.replace(':', '')}"
            summary = simulate(scenario, seed, run_dir, sets)
            per_device.append(measure(summary, run_dir, device))
            print(f"[bench gpu] {scenario} on {device}: {json.dumps(per_device[-1])}",
                  file=sys.stderr, flush=True)
        results[scenario] = {"runs": per_device, "speedup": _speedup(per_device)}
    return {
        "bench": "gpu", "available": True, "devices": list(devices), "seed": seed,
        "rounds": rounds, "card": _card(devices), "torch": torch.__version__,
        "cuda": torch.version.cuda, "cpus": os.cpu_count(), "scenarios": results,
        "run_dirs": str(root),
        "pass": all(r["ok"] for s in results.values() for r in s["runs"]),
    }


def measure(summary: dict[str, Any], run_dir: Path, device: str) -> dict[str, Any]:
    """One run's figures; `ok` when it finished and recorded `device` on the server and on
    every node (a recorded label names the device type first: "cuda:0 (<card>)")."""
    if "error" in summary:
        return {"device": device, "ok": False, "error": summary["error"][-600:]}
    seconds = [r["seconds"] for r in _records(run_dir / "metrics.jsonl")
               if r.get("phase") == Phase.TRAIN and "seconds" in r]
    kind = device.partition(":")[0]
    recorded = [summary.get("device", ""), *summary.get("node_devices", {}).values()]
    return {
        "device": device,
        "server_device": summary.get("device"),
        "node_devices": sorted(set(summary.get("node_devices", {}).values())),
        "round_seconds": statistics.median(seconds) if seconds else None,
        "rounds": len(seconds),
        "accuracy": summary.get("accuracy"),
        "ok": bool(seconds) and len(recorded) > 1 and all(
            str(label).split(":")[0].split(" ")[0] == kind for label in recorded),
    }


def _records(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines()] if path.is_file() else []


def _speedup(runs: list[dict[str, Any]]) -> float | None:
    """The first device's round seconds ÷ the second's (None when either is missing)."""
    seconds = [r.get("round_seconds") for r in runs[:2]]
    return seconds[0] / seconds[1] if len(seconds) == 2 and all(seconds) else None


def _card(devices: Sequence[str]) -> str | None:
    """The CUDA card's name (torch.cuda.get_device_name); None when none is asked for or
    torch sees none (then every CUDA run has failed, and says why)."""
    import torch

    cuda = [d for d in devices if d.startswith("cuda")]
    if not cuda or not torch.cuda.is_available():
        return None
    from methods.common.device import resolve_device

    return torch.cuda.get_device_name(resolve_device(cuda[0]))
