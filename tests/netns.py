"""Hosts as Linux network namespaces, for tests that need several machines (root only).

One namespace per host, joined by a bridge that lives inside the first host's
namespace, so the hosts' addresses (10.200.0.0/24) and every link exist only inside
namespaces made here: no traffic can leave them and nothing is added to the machine's
own network. Each namespace has its own loopback, so every host can use the same
ports (9092, 9093, ...) as a real machine would.

    with Hosts("fv123", ["superlink", "node0", "node1"]) as hosts:
        hosts.address("superlink")                     # "10.200.0.1"
        hosts.argv("node0", ["flwr", "ls"])            # ["ip", "netns", "exec", "fv123-node0", ...]
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Sequence

SUBNET = "10.200.0"


class NetnsUnavailable(RuntimeError):
    """Namespaces cannot be made here; the message says why (a test skips with it)."""


def _ip(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    done = subprocess.run(["ip", *args], capture_output=True, text=True, timeout=30)
    if check and done.returncode != 0:
        raise NetnsUnavailable(f"`ip {' '.join(args)}` failed: {done.stderr.strip()}")
    return done


class Hosts:
    def __init__(self, prefix: str, names: Sequence[str]) -> None:
        self.prefix, self.names = prefix, list(names)
        self.made: list[str] = []

    def ns(self, host: str) -> str:
        return f"{self.prefix}-{host}"

    def address(self, host: str) -> str:
        return f"{SUBNET}.{self.names.index(host) + 1}"

    def argv(self, host: str, argv: Sequence[str]) -> list[str]:
        """`argv` run inside `host`'s namespace (ip execs it: the PID is the command's)."""
        return ["ip", "netns", "exec", self.ns(host), *argv]

    def __enter__(self) -> Hosts:
        if os.geteuid() != 0:
            raise NetnsUnavailable("network namespaces need root (this test makes its own hosts)")
        if shutil.which("ip") is None:
            raise NetnsUnavailable("the `ip` command (iproute2) is not installed")
        try:
            self._build()
        except BaseException:
            self.remove()
            raise
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.remove()

    def _build(self) -> None:
        hub = self.ns(self.names[0])
        for host in self.names:
            _ip("netns", "add", self.ns(host))
            self.made.append(self.ns(host))
            _ip("-n", self.ns(host), "link", "set", "lo", "up")
        _ip("-n", hub, "link", "add", "br0", "type", "bridge")
        _ip("-n", hub, "addr", "add", f"{self.address(self.names[0])}/24", "dev", "br0")
        _ip("-n", hub, "link", "set", "br0", "up")
        for i, host in enumerate(self.names[1:], start=1):
            port = f"port{i}"  # the hub's end, on the bridge; the host's end is its eth0
            _ip("link", "add", port, "netns", hub, "type", "veth",
                "peer", "name", "eth0", "netns", self.ns(host))
            _ip("-n", hub, "link", "set", port, "master", "br0", "up")
            _ip("-n", self.ns(host), "addr", "add", f"{self.address(host)}/24", "dev", "eth0")
            _ip("-n", self.ns(host), "link", "set", "eth0", "up")

    def remove(self) -> None:
        """Delete every namespace made (their links go with them). Idempotent."""
        while self.made:
            _ip("netns", "del", self.made.pop(), check=False)

    def listening(self, host: str) -> list[str]:
        """The TCP addresses that listen inside `host` (`ss -Htln`), e.g. ["127.0.0.1:9093"]."""
        done = subprocess.run(self.argv(host, ["ss", "-Htln"]), capture_output=True, text=True,
                              timeout=30, check=True)
        return [line.split()[3] for line in done.stdout.splitlines() if len(line.split()) > 3]
