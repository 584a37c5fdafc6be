"""Which device a node trains on, and how it says so in its reply.

The run config's `device` is only a default: the server cannot know a node's hardware,
so a node's own `fedvault node --device` (its node config key NODE_DEVICE) wins. A method
that runs on the CPU only (Method.cpu_only) trains on the node's CPU whatever either says:
a node's device is what it offers, not a demand a run must meet. The node reports the
device it used (CONFIG[DEVICE] of its train reply); the server keeps it in summary.json.
"""

from __future__ import annotations

from typing import Any, Mapping

import torch
from flwr.app import ConfigRecord

from methods.base import RunSpec
from methods.common.device import device_label, limit_cpu_threads, resolve_device
from methods.registry import get_method
from protos.contract import DEVICE

NODE_DEVICE = "device"  # node config key, set by `fedvault node --device`


def node_device(spec: RunSpec, node_config: Mapping[str, Any]) -> torch.device:
    """This node's device for `spec` (ConfigError when it has not got the one asked for);
    also limits torch's CPU threads when it is the CPU (methods/common/device.py)."""
    if get_method(spec.method_name).cpu_only:
        device = torch.device("cpu")
    elif node_config.get(NODE_DEVICE):
        device = resolve_device(str(node_config[NODE_DEVICE]), key="fedvault node --device")
    else:
        device = resolve_device(spec.federation.device)
    limit_cpu_threads(device)
    return device


def device_record(device: torch.device) -> ConfigRecord:
    """The reply's CONFIG record that says where the node trained."""
    return ConfigRecord({DEVICE: device_label(device)})
