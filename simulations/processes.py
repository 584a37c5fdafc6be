"""Child processes that are always cleaned up: a SuperLink, its SuperNodes, and
everything *they* spawn.

Flower's process tree is deeper than the processes we start ourselves:

    flower-superlink ─ flower-superexec (own session!) ─ flwr-serverapp (one per run)
    flower-supernode ─ flower-superexec ─ flwr-clientapp (one per message)

The SuperLink starts its SuperExec with `start_new_session=True`, so signalling
the SuperLink's process group does not reach it, and a SIGKILLed parent leaves
its children re-parented to init where a `ppid` walk no longer finds them.
`ProcessGroup` therefore keeps its own record of every descendant it has seen
(PID + kernel start time, so a recycled PID is never signalled) and, on stop,
signals that whole record, not just the processes it started.
"""

from __future__ import annotations

import atexit
import os
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

LOCALHOST = "127.0.0.1"

# Ports handed out by free_port() in this process: the kernel may give the same
# ephemeral port to two consecutive bind(0) calls once the first socket closes.
_issued_ports: set[int] = set()


def free_port() -> int:
    """A TCP port on 127.0.0.1 that is free now and not handed out before here.

    There is an unavoidable window between closing the probe socket and the
    child binding the port; callers detect a lost race by the child exiting
    (see `wait_for_port`).
    """
    for _ in range(100):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            s.bind((LOCALHOST, 0))
            port = s.getsockname()[1]
        if port not in _issued_ports:
            _issued_ports.add(port)
            return port
    raise RuntimeError("could not find a free port on 127.0.0.1")


def port_open(port: int, host: str = LOCALHOST) -> bool:
    """Whether something accepts TCP connections on host:port right now."""
    try:
        with socket.create_connection((host, port), timeout=0.5):
            return True
    except OSError:
        return False


def wait_for_port(
    port: int,
    *,
    timeout: float = 30.0,
    host: str = LOCALHOST,
    process: subprocess.Popen | None = None,
    log: Path | None = None,
) -> float:
    """Block until host:port accepts connections; return the seconds waited.

    With `process`, fail fast when it exits first (a bad flag, a port lost to
    another program) instead of waiting out the timeout; `log` is quoted then.
    """
    start = time.monotonic()
    while not port_open(port, host):
        if process is not None and process.poll() is not None:
            raise RuntimeError(
                f"process {process.args!r} exited with code {process.returncode} before "
                f"{host}:{port} opened{_log_tail(log)}"
            )
        if time.monotonic() - start > timeout:
            raise TimeoutError(f"{host}:{port} did not open within {timeout:.0f} s{_log_tail(log)}")
        time.sleep(0.1)
    return time.monotonic() - start


def _log_tail(log: Path | None, lines: int = 20) -> str:
    if log is None or not log.exists():
        return ""
    tail = log.read_text(errors="replace").splitlines()[-lines:]
    return f"\n--- last lines of {log} ---\n" + "\n".join(tail)


# ---- /proc ------------------------------------------------------------------


@dataclass(frozen=True)
class ProcInfo:
    pid: int
    ppid: int
    session: int
    start_time: int  # clock ticks since boot; (pid, start_time) identifies a process
    state: str  # "Z" = zombie: dead, only waiting to be reaped


def proc_info(pid: int) -> ProcInfo | None:
    """Parse /proc/<pid>/stat; None when the process no longer exists."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return None
    # comm (field 2) is in parentheses and may itself contain spaces or ')'.
    fields = raw[raw.rindex(")") + 2 :].split()
    return ProcInfo(pid, int(fields[1]), int(fields[3]), int(fields[19]), fields[0])


def all_processes() -> list[ProcInfo]:
    infos = (proc_info(int(p)) for p in os.listdir("/proc") if p.isdigit())
    return [i for i in infos if i is not None]


def descendants(pid: int, processes: Iterable[ProcInfo] | None = None) -> list[ProcInfo]:
    """Every live process below `pid` in the parent tree (children, grandchildren, ...)."""
    children: dict[int, list[ProcInfo]] = {}
    for info in processes if processes is not None else all_processes():
        children.setdefault(info.ppid, []).append(info)
    found: list[ProcInfo] = []
    stack = [pid]
    while stack:
        for child in children.get(stack.pop(), []):
            found.append(child)
            stack.append(child.pid)
    return found


def is_alive(pid: int, start_time: int) -> bool:
    """True while that exact process (not a recycled PID) runs and is not a zombie."""
    info = proc_info(pid)
    return info is not None and info.start_time == start_time and info.state != "Z"


def _signal_pid(pid: int, start_time: int, sig: int) -> None:
    if is_alive(pid, start_time):
        try:
            os.kill(pid, sig)
        except ProcessLookupError:
            pass


def _signal_group(proc: subprocess.Popen, sig: int) -> None:
    # Each child leads its own process group (start_new_session), so killpg
    # reaches helpers it spawned without a new session of their own. Only
    # while the child is unreaped: until then its PID (= the group id) cannot
    # be recycled by an unrelated process.
    if proc.returncode is None:
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            pass


# ---- the group ----------------------------------------------------------------


class ProcessGroup:
    """Start named child processes and guarantee that none of them, nor anything
    they spawned, outlives `stop()`.

    `stop()` runs on `__exit__`, on SIGINT/SIGTERM (when entered on the main
    thread), and at interpreter exit; it is idempotent. Each child gets its own
    session and process group, logs to `<log_dir>/<name>.log` (stdout and stderr
    interleaved, in order), and is SIGTERMed, given `grace` seconds, then
    SIGKILLed together with every descendant recorded so far.
    """

    def __init__(
        self,
        log_dir: str | os.PathLike[str],
        *,
        env: Mapping[str, str] | None = None,
        grace: float = 10.0,
    ) -> None:
        self.log_dir = Path(log_dir)
        self.env = dict(env) if env is not None else None
        self.grace = grace
        self._procs: dict[str, subprocess.Popen] = {}
        self._seen: dict[int, int] = {}  # pid -> start_time, every process ever tracked
        self._lock = threading.RLock()
        self._stopping = False
        self._stopped = False
        self._old_handlers: dict[int, object] = {}
        self._deferred_signal: int | None = None

    # -- starting --------------------------------------------------------------

    def start(
        self,
        name: str,
        argv: Sequence[str],
        *,
        env: Mapping[str, str] | None = None,
        cwd: str | os.PathLike[str] | None = None,
    ) -> subprocess.Popen:
        """Start `argv` as `name` (unique) in a new session; output to `log_path(name)`."""
        with self._lock:
            if self._stopping or self._stopped:
                raise RuntimeError("ProcessGroup already stopped")
            if name in self._procs:
                raise ValueError(f"a process named {name!r} was already started")
            self.log_dir.mkdir(parents=True, exist_ok=True)
            if not self._procs:
                atexit.register(self.stop)
            with open(self.log_path(name), "ab") as log:
                proc = subprocess.Popen(
                    list(argv),
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    env=dict(env) if env is not None else self.env,
                    cwd=cwd,
                    start_new_session=True,
                )
            self._procs[name] = proc
            info = proc_info(proc.pid)
            if info is not None:
                self._seen[proc.pid] = info.start_time
            return proc

    def log_path(self, name: str) -> Path:
        return self.log_dir / f"{name}.log"

    def process(self, name: str) -> subprocess.Popen:
        return self._procs[name]

    # -- looking ---------------------------------------------------------------

    def track(self) -> None:
        """Record every current descendant of the started processes.

        Called before any signal is sent (a killed parent's children are
        re-parented to init and can no longer be found by a parent walk) and
        whenever a caller polls, so short-lived children are seen too.
        """
        with self._lock:
            snapshot = all_processes()
            for proc in self._procs.values():
                if proc.returncode is None:
                    for info in descendants(proc.pid, snapshot):
                        self._seen.setdefault(info.pid, info.start_time)

    def alive(self) -> list[str]:
        """Names of the started processes that are still running."""
        return [name for name, proc in self._procs.items() if proc.poll() is None]

    def pids(self) -> dict[str, int]:
        """PID of each started process, by name."""
        return {name: proc.pid for name, proc in self._procs.items()}

    def seen_pids(self) -> set[int]:
        """Every PID this group started or saw below one it started."""
        return set(self._seen)

    def survivors(self) -> set[int]:
        """Seen PIDs whose very process still runs (should be empty after stop())."""
        return {pid for pid, st in self._seen.items() if is_alive(pid, st)}

    # -- stopping --------------------------------------------------------------

    def kill(self, name: str, sig: int = signal.SIGKILL, *, whole_group: bool = False) -> None:
        """Send `sig` to one started process (or its whole process group).

        Its descendants are recorded first, so a later stop() still reaps
        whatever a SIGKILLed process leaves behind.
        """
        self.track()
        proc = self._procs[name]
        if proc.poll() is not None:
            return
        if whole_group:
            _signal_group(proc, sig)
        else:
            proc.send_signal(sig)

    def stop(self) -> None:
        """SIGTERM everything, wait up to `grace` s, SIGKILL survivors, reap. Idempotent."""
        with self._lock:
            if self._stopping or self._stopped:
                return
            self._stopping = True
        try:
            self._terminate_all(signal.SIGTERM)
            if not self._wait_all(self.grace):
                self._terminate_all(signal.SIGKILL)
                self._wait_all(5.0)
            for proc in self._procs.values():
                try:
                    proc.wait(timeout=1.0)  # reap, so no zombie of ours stays behind
                except subprocess.TimeoutExpired:
                    pass
        finally:
            self._stopped = True
            self._stopping = False
            atexit.unregister(self.stop)
            self._restore_signal_handlers()
        if self._deferred_signal is not None:
            signal.raise_signal(self._deferred_signal)  # now handled by the old handler

    def _terminate_all(self, sig: int) -> None:
        self.track()
        for proc in self._procs.values():
            if proc.returncode is None:
                _signal_group(proc, sig)
        for pid, start_time in list(self._seen.items()):
            _signal_pid(pid, start_time, sig)

    def _wait_all(self, timeout: float) -> bool:
        """Reap children and poll descendants until all are gone; False on timeout."""
        deadline = time.monotonic() + timeout
        while True:
            for proc in self._procs.values():
                proc.poll()
            if not self.survivors():
                return True
            if time.monotonic() > deadline:
                return False
            time.sleep(0.1)

    # -- context manager and signals --------------------------------------------

    def __enter__(self) -> ProcessGroup:
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGINT, signal.SIGTERM):
                self._old_handlers[sig] = signal.signal(sig, self._on_signal)
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def _on_signal(self, signum: int, frame: object) -> None:
        if self._stopping:
            # Interrupting the cleanup itself would strand processes: finish it
            # (it is bounded by grace + 5 s), then deliver this signal.
            self._deferred_signal = signum
            return
        self.stop()  # restores the old handlers ...
        signal.raise_signal(signum)  # ... so this reaches them: KeyboardInterrupt, exit

    def _restore_signal_handlers(self) -> None:
        if threading.current_thread() is not threading.main_thread():
            return
        for sig, old in self._old_handlers.items():
            # Only undo our own handler: a group entered later may have replaced it.
            if signal.getsignal(sig) == self._on_signal:
                signal.signal(sig, old)  # type: ignore[arg-type]
        self._old_handlers.clear()
