"""`fedvault node`'s two processes, supervised together: a SuperNode started with
`--isolation process` and the long-lived ClientApp worker that serves its messages
(simulations/deploy/clientapp_worker.py).

    fedvault node (this supervisor)
      ├─ flower-supernode --isolation process --host 127.0.0.1 --port P
      │                   --superexec-auth-secret-file /dev/fd/N
      └─ python -m simulations.deploy.clientapp_worker --runtime-api-address 127.0.0.1:P

- The SuperExec secret is fresh per start and travels through pipes (/dev/fd/N), never
  through a file: only the worker may take the node's tasks from its Runtime API.
- Both children stay in the supervisor's process group (a signal to the group reaches
  all three) and get SIGTERM when the supervisor dies (Linux PR_SET_PDEATHSIG; the
  worker also watches its parent pid as Flower's apps do).
- SIGTERM/SIGINT to the supervisor stop both; a child that already got the signal (the
  group's) is not signalled twice: Flower's handler re-arms the default action, so a
  second SIGTERM would kill the SuperNode before it deactivates at the SuperLink.
- The worker is restarted whenever it exits. After a task whose app code failed it exits
  on purpose (WORKER_EXIT_AFTER_TASK) and is replaced at once; five other exits within a
  minute of their start, in a row, mean it cannot run here, and the node stops with
  exit code 1.
- The SuperNode exiting ends the node with its exit code.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import secrets
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from simulations.deploy.processes import LOCALHOST

WORKER_MODULE = "simulations.deploy.clientapp_worker"
QUICK_EXIT = 60.0  # a worker that lived shorter than this counts towards giving up
MAX_QUICK_EXITS = 5
# The worker's exit code after a task whose app code failed (it answered the task with an
# error): a fresh worker starts at once, and this never counts towards giving up, or a
# node whose app refuses a run (its DP policy, a failing method) would stop itself
WORKER_EXIT_AFTER_TASK = 3
SIGNALLED_CHILDREN_SETTLE = 0.3  # s: let a signal sent to the whole group land first


def say(line: str) -> None:
    os.write(2, f"fedvault node: {line}\n".encode())


def catches(pid: int, signum: int) -> bool:
    """Whether `pid` still has a handler for `signum` (/proc/PID/status SigCgt); True
    where /proc cannot tell."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return True
    for line in status.splitlines():
        if line.startswith("SigCgt:"):
            return bool((int(line.split()[1], 16) >> (signum - 1)) & 1)
    return True


def _die_with_parent(parent: int) -> Callable[[], None]:
    """A preexec_fn: the child gets SIGTERM when `parent` ends (Linux), and never
    outlives a parent that died while it started."""
    libc = ctypes.CDLL(None, use_errno=True) if sys.platform.startswith("linux") else None

    def preexec() -> None:
        if libc is not None:
            libc.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
        if os.getppid() != parent:
            os._exit(1)

    return preexec


def secret_pipe(secret: bytes) -> int:
    """A pipe holding `secret`, its read end inheritable: a child reads /dev/fd/N (the
    SuperNode's --superexec-auth-secret-file) or --secret-fd N (the worker), and no copy
    of the secret is ever written to disk."""
    read_fd, write_fd = os.pipe()
    os.write(write_fd, secret)  # 64 bytes: far below a pipe's buffer, never blocks
    os.close(write_fd)
    os.set_inheritable(read_fd, True)
    return read_fd


def worker_command(port: int, secret_fd: int) -> list[str]:
    return [sys.executable, "-m", WORKER_MODULE, "--runtime-api-address", f"{LOCALHOST}:{port}",
            "--secret-fd", str(secret_fd), "--parent-pid", str(os.getpid())]


class NodeSupervisor:
    """Run `supernode_argv` (a flower-supernode command in process isolation, Runtime API
    on 127.0.0.1:`port`) and the ClientApp worker until either ends for good or a
    signal asks; `run()` returns the node's exit code."""

    def __init__(self, supernode_argv: Sequence[str], port: int, *, grace: float = 8.0,
                 worker_argv: Callable[[int, int], list[str]] = worker_command) -> None:
        self.supernode_argv, self.port, self.grace = list(supernode_argv), port, grace
        self.worker_argv = worker_argv  # (port, secret fd) -> the worker's command line
        self.secret = secrets.token_hex(32).encode()
        self.supernode: subprocess.Popen | None = None
        self.worker: subprocess.Popen | None = None
        self.stop_signal: int | None = None
        self.quick_exits, self.worker_started = 0, 0.0
        self.backoff = 1.0  # s before the first restart after a quick exit, doubling

    def run(self) -> int:
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, self._on_signal)
        code = 1
        try:
            fd = secret_pipe(self.secret)
            self.supernode = self._spawn(
                [*self.supernode_argv, "--superexec-auth-secret-file", f"/dev/fd/{fd}"], fd)
            self._start_worker()
            say(f"SuperNode pid {self.supernode.pid} (Runtime API {LOCALHOST}:{self.port}, "
                f"isolation process), ClientApp worker pid {self.worker.pid}")
            code = self._watch()
        finally:
            code = self._stop_children(code)
        return code

    def _on_signal(self, signum: int, frame: object) -> None:
        self.stop_signal = self.stop_signal or signum

    def _spawn(self, argv: Sequence[str], fd: int) -> subprocess.Popen:
        try:
            return subprocess.Popen(list(argv), stdin=subprocess.DEVNULL, pass_fds=(fd,),
                                    preexec_fn=_die_with_parent(os.getpid()))
        finally:
            os.close(fd)

    def _start_worker(self) -> None:
        fd = secret_pipe(self.secret)
        self.worker = self._spawn(self.worker_argv(self.port, fd), fd)
        self.worker_started = time.monotonic()

    def _watch(self) -> int:
        """Until a signal or the SuperNode's end: restart the worker when it exits."""
        restart_at: float | None = None
        while self.stop_signal is None:
            if (code := self.supernode.poll()) is not None:
                say(f"the SuperNode exited with {code}; stopping its ClientApp worker")
                return code
            if restart_at is None and (code := self.worker.poll()) is not None:
                restart_at = self._worker_exited(code)
                if restart_at is None:
                    return 1
            if restart_at is not None and time.monotonic() >= restart_at:
                restart_at = None
                self._start_worker()
                say(f"ClientApp worker restarted: pid {self.worker.pid}")
            time.sleep(0.1)
        return 0

    def _worker_exited(self, code: int) -> float | None:
        """When to start the next worker (monotonic time); None: give up."""
        lived = time.monotonic() - self.worker_started
        if code == WORKER_EXIT_AFTER_TASK:
            self.quick_exits = 0
            say(f"the ClientApp worker (pid {self.worker.pid}) exited after a failed task; a "
                "fresh one starts")
            return time.monotonic() + 0.2
        self.quick_exits = self.quick_exits + 1 if lived < QUICK_EXIT else 0
        if self.quick_exits >= MAX_QUICK_EXITS:
            say(f"the ClientApp worker exited with {code} {self.quick_exits} times within "
                f"{QUICK_EXIT:.0f} s of its start; stopping the node")
            return None
        delay = (min(30.0, self.backoff * 2 ** (self.quick_exits - 1)) if self.quick_exits
                 else 0.2)
        say(f"the ClientApp worker (pid {self.worker.pid}) exited with {code} after "
            f"{lived:.1f} s; a fresh one starts in {delay:.1f} s")
        return time.monotonic() + delay

    def _stop_children(self, code: int) -> int:
        """SIGTERM the children that did not get a signal yet, wait `grace` s, SIGKILL the
        rest. Returns `code`, or the SuperNode's when a signal stopped the node."""
        children = [p for p in (self.worker, self.supernode) if p is not None]
        if self.stop_signal is not None:
            time.sleep(SIGNALLED_CHILDREN_SETTLE)
        for proc in children:
            # Flower's SuperNode drops its handler at the first signal: no handler left
            # after a signal to the group means it is stopping already (the worker ignores
            # repeats itself)
            already = (self.stop_signal is not None and proc is self.supernode
                       and not catches(proc.pid, signal.SIGTERM))
            if proc.poll() is None and not already:
                with contextlib.suppress(ProcessLookupError):
                    proc.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + self.grace
        for proc in children:
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=max(0.0, deadline - time.monotonic()))
            if proc.poll() is None:
                say(f"pid {proc.pid} ignored SIGTERM for {self.grace:.0f} s: SIGKILL")
                proc.kill()
                proc.wait()
        if self.stop_signal is not None and self.supernode is not None:
            return 0 if self.supernode.returncode == 0 else 1
        return code


def supervisor_command(supernode_argv: Sequence[str], port: int) -> list[str]:
    """What `fedvault node` execs once its arguments are checked: this module in a fresh
    interpreter, which holds none of the CLI's imports (torch: ~300 MB) while it waits."""
    return [sys.executable, "-m", "simulations.deploy.node_supervisor", "--port", str(port),
            "--", *supernode_argv]


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if len(args) < 4 or args[0] != "--port" or args[2] != "--":
        say("usage: python -m simulations.deploy.node_supervisor --port P -- SUPERNODE-COMMAND...")
        return 2
    return NodeSupervisor(args[3:], int(args[1])).run()


if __name__ == "__main__":
    sys.exit(main())
