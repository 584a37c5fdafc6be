"""Where torch computes: the one resolver of the `device` key, and what a run records of it.

`device = "auto" | "cpu" | "cuda" | "cuda:<i>" | "mps"` is a federation key (the run
config's default for the server and every node) and `fedvault node --device` (one node's
own choice, docs/gpu.md). Its form is checked wherever a config is parsed
(methods/config.py), its availability where it is resolved: the CLI resolves it before
anything starts, so `cuda` on a machine without CUDA exits 2 there, not in a Ray actor.

It lives in methods/common so that both the server and the clients can import it (the
layers: simulations → server, clients → methods); it never imports either.
"""

from __future__ import annotations

import re

import torch

from methods.config import DEVICE_FORMS, ConfigError, check_device_form

# What a node reports back (device_label): untrusted text on the server, so it must be short
# and of this form before it is written to summary.json.
_LABEL = re.compile(r"(cpu|mps|cuda:\d{1,3})( \([\w .,+()/-]{1,80}\))?")


def resolve_device(text: str, *, key: str = "device", cpu_only: bool = False) -> torch.device:
    """The torch device `text` names on this machine; ConfigError (one line) when it has none.

    `auto` is the first CUDA device when torch sees one, else the CPU; never MPS, which
    Opacus' per-sample gradients and float64 accounting do not all support: ask for it
    by name. `cpu_only` (Method.cpu_only: a method that builds CPU tensors in its step or
    evaluation) makes `auto` the CPU and refuses an accelerator named explicitly.
    """
    check_device_form(text, key)
    if text == "cpu" or (text == "auto" and cpu_only):
        return torch.device("cpu")
    if cpu_only:
        raise ConfigError(f"{key}={text}: this method runs on the CPU only (Method.cpu_only); "
                          "use auto or cpu")
    if text == "auto":
        return torch.device("cuda", 0) if torch.cuda.is_available() else torch.device("cpu")
    if text == "mps":
        if not torch.backends.mps.is_available():
            raise ConfigError(f"{key}=mps: this machine has no MPS device; valid: {DEVICE_FORMS}")
        return torch.device("mps")
    if not torch.cuda.is_available():
        cuda = torch.version.cuda
        build = "a CPU-only build" if cuda is None else f"built for CUDA {cuda}"
        raise ConfigError(f"{key}={text}: CUDA is not available on this machine (torch "
                          f"{torch.__version__} is {build}; docs/gpu.md); use auto or cpu")
    index = int(text.partition(":")[2] or 0)
    count = torch.cuda.device_count()
    if index >= count:
        raise ConfigError(f"{key}={text}: this machine has CUDA devices cuda:0..cuda:{count - 1}")
    return torch.device("cuda", index)


def device_label(device: torch.device) -> str:
    """What a run records: "cpu", or "cuda:0 (NVIDIA H100 80GB HBM3)" with the card's name."""
    if device.type != "cuda":
        return device.type
    index = device.index if device.index is not None else torch.cuda.current_device()
    name = re.sub(r"[^\w .,+()/-]", "", torch.cuda.get_device_name(index))[:80]
    return f"cuda:{index} ({name})" if name else f"cuda:{index}"


def reported_label(value: object) -> str | None:
    """A node's reported device_label, or None when it is not one (the reply is untrusted)."""
    return value if isinstance(value, str) and _LABEL.fullmatch(value) else None


def limit_cpu_threads(device: torch.device) -> None:
    """One intra-op thread for CPU work: on the 2-core hosts the server and the nodes share,
    2 threads per process made local training 5-10x slower. Not for GPU work: the kernels
    run on the card, torch's CPU threads only feed it, and a GPU host is not the 2-core
    machine that limit was measured on, so torch's default stays there."""
    if device.type == "cpu":
        torch.set_num_threads(1)
