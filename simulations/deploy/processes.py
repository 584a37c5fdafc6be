"""Child processes that are always cleaned up: a SuperLink, its SuperNodes, and
everything *they* spawn.

Flower's process tree is deeper than the processes we start ourselves:

    flower-superlink ─ flower-superexec (own session!) ─ flwr-serverapp (one per run)
    flower-supernode ─ flower-superexec ─ flwr-clientapp (one per message)
    fedvault node ─┬ flower-supernode --isolation process     (node_supervisor.py; the
                   └ clientapp_worker (one for every message)  default of `fedvault node`)

The SuperLink starts its SuperExec with `start_new_session=True`, so signalling
the SuperLink's process group does not reach it, and a SIGKILLed parent leaves
its children re-parented to init where a `ppid` walk no longer finds them.
`ProcessGroup` therefore keeps its own record of every descendant it has seen
(PID + kernel start time, so a recycled PID is never signalled) and, on stop,
signals that whole record, not just the processes it started.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

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
    return ProcInfo(pid, ppid=int(fields[1]), start_time=int(fields[19]), state=fields[0])


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
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, sig)


def _signal_group(proc: subprocess.Popen, sig: int) -> None:
    # Each child leads its own process group (start_new_session), so killpg
    # reaches helpers it spawned without a new session of their own. Only
    # while the child is unreaped: until then its PID (= the group id) cannot
    # be recycled by an unrelated process.
    if proc.returncode is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, sig)


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
        self, log_dir: str | os.PathLike[str], *, env: Mapping[str, str] | None = None,
        grace: float = 10.0,
    ) -> None:  # fmt: skip
        self.log_dir = Path(log_dir)
        self.env = dict(env) if env is not None else None
        self.grace = grace
        self._procs: dict[str, subprocess.Popen] = {}
        self._transient: set[subprocess.Popen] = set()  # running `run()` commands
        self._seen: dict[int, int] = {}  # pid -> start_time, every process ever tracked
        self._lock = threading.RLock()
        self._stopping = self._stopped = False
        self._busy = False  # inside _spawn: a signal now must wait (see _on_signal)
        self._old_handlers: dict[int, object] = {}
        self._deferred_signal: int | None = None

    # -- starting ------------------------------------------------------------

    def start(
        self, name: str, argv: Sequence[str], *, env: Mapping[str, str] | None = None,
        cwd: str | os.PathLike[str] | None = None,
    ) -> subprocess.Popen:  # fmt: skip
        """Start `argv` as `name` (unique) in a new session; output to `log_path(name)`."""
        if name in self._procs:
            raise ValueError(f"a process named {name!r} was already started")
        self.log_dir.mkdir(parents=True, exist_ok=True)
        atexit.register(self.stop)  # once per start(): harmless, stop() is idempotent
        with open(self.log_path(name), "ab") as log:
            return self._spawn(argv, env, cwd, lambda p: self._procs.__setitem__(name, p),
                               stdout=log, stderr=subprocess.STDOUT)  # fmt: skip

    def run(
        self, argv: Sequence[str], *, timeout: float, env: Mapping[str, str] | None = None,
        cwd: str | os.PathLike[str] | None = None,
    ) -> subprocess.CompletedProcess:  # fmt: skip
        """Run a short command (a `flwr` CLI call) to completion, capturing text output.

        Unlike `subprocess.run` the command is part of the group: stop() (e.g.
        from a SIGTERM handler) kills it too instead of leaving it orphaned.
        Raises subprocess.TimeoutExpired after killing it on timeout.
        """
        proc = self._spawn(argv, env, cwd, self._transient.add,
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)  # fmt: skip
        try:
            out, err = proc.communicate(timeout=timeout)
        except BaseException:
            _signal_group(proc, signal.SIGKILL)
            proc.communicate()
            raise
        finally:
            with self._lock:
                self._transient.discard(proc)
        return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)

    def _spawn(
        self,
        argv: Sequence[str],
        env: Mapping[str, str] | None,
        cwd: str | os.PathLike[str] | None,
        register: Callable[[subprocess.Popen], object],
        **popen_kwargs: Any,
    ) -> subprocess.Popen:
        """Popen plus bookkeeping, with our signal handler held off in between:
        a stop() run after Popen but before `register` would miss this child."""
        with self._lock:
            if self._stopping or self._stopped:
                raise RuntimeError("ProcessGroup already stopped")
            self._busy = True
            try:
                proc = subprocess.Popen(
                    list(argv), stdin=subprocess.DEVNULL, cwd=cwd, start_new_session=True,
                    env=dict(env) if env is not None else self.env, **popen_kwargs,
                )  # fmt: skip
                register(proc)
                self._remember(proc.pid)
            finally:
                self._busy = False
        if (sig := self._deferred_signal) is not None:
            self._deferred_signal = None
            signal.raise_signal(sig)  # our handler runs it on the main thread now
        return proc

    def adopt(self, pid: int) -> None:
        """Make stop() also end `pid`, a process started detached by a tool we ran
        (e.g. the local SuperLink `flwr run` leaves behind)."""
        with self._lock:
            self._remember(pid)

    def _remember(self, pid: int) -> None:
        info = proc_info(pid)
        if info is not None:
            self._seen.setdefault(pid, info.start_time)

    def log_path(self, name: str) -> Path:
        return self.log_dir / f"{name}.log"

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
        return {pid for pid, st in list(self._seen.items()) if is_alive(pid, st)}

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
                self._note_stragglers()
                self._terminate_all(signal.SIGKILL)
                self._wait_all(5.0)
            for proc in self._procs.values():
                with contextlib.suppress(subprocess.TimeoutExpired):
                    proc.wait(timeout=1.0)  # reap, so no zombie of ours stays behind
        finally:
            self._stopped = True
            self._stopping = False
            atexit.unregister(self.stop)
            self._restore_signal_handlers()
        if (sig := self._deferred_signal) is not None:
            self._deferred_signal = None
            signal.raise_signal(sig)  # handled by the old handler if restored, else by ours

    def _terminate_all(self, sig: int) -> None:
        self.track()
        with self._lock:
            transient = list(self._transient)
        for proc in [*self._procs.values(), *transient]:
            if proc.returncode is None:
                _signal_group(proc, sig)
        for pid, start_time in list(self._seen.items()):
            _signal_pid(pid, start_time, sig)

    def _note_stragglers(self) -> None:
        """Log what ignored SIGTERM for `grace` s: slow stops are otherwise invisible."""
        with contextlib.suppress(OSError), open(self.log_dir / "stragglers.log", "a") as log:
            for pid in sorted(self.survivors()):
                cmd = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
                log.write(f"{time.ctime()} SIGKILL after {self.grace:.0f} s: {pid} {cmd}\n")

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
                # An ignored signal stays ignored (e.g. SIGINT in a background job).
                if signal.getsignal(sig) is not signal.SIG_IGN:
                    self._old_handlers[sig] = signal.signal(sig, self._on_signal)
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def _on_signal(self, signum: int, frame: object) -> None:
        if self._stopping or self._busy:
            # Interrupting the cleanup (bounded by grace + 5 s) or a spawn would
            # strand processes: let it finish, it re-raises this signal after.
            self._deferred_signal = signum
            return
        self.stop()
        self._restore_signal_handlers()  # Python runs handlers on the main thread
        signal.raise_signal(signum)  # old handler: KeyboardInterrupt, exit, or a chained group

    def _restore_signal_handlers(self) -> None:
        if threading.current_thread() is not threading.main_thread():
            return
        for sig, old in self._old_handlers.items():
            # Only undo our own handler: a group entered later may have replaced it.
            if signal.getsignal(sig) == self._on_signal:
                signal.signal(sig, old)  # type: ignore[arg-type]
        self._old_handlers.clear()
