"""A long-lived ClientApp worker beside a SuperNode started with `--isolation process`.

In Flower 1.39's default `--isolation subprocess`, the SuperNode's SuperExec launches a
fresh `flwr-clientapp --token ...` for every message, and each one imports torch, Flower
and fedvault again (seconds per message). This worker does what SuperExec and
`flwr-clientapp` do together, in one process that imports them once:

    loop: AcquireTask (client-app tasks only; signed with the SuperExec secret)
          for a task with a token: a RuntimeHttpClient with the token, a task heartbeat,
          pull_task_input → the ClientApp (installed and loaded once per FAB hash)
          → push_message (the reply, or an error reply when the ClientApp raised)
          → push_task_output (context + status)

The per-task part mirrors `flwr.supernode.runtime.run_clientapp.run_clientapp` and calls
its public functions (pull_task_input, push_message, push_task_output); nothing of
Flower is patched. What differs, and why:
- after any error the worker exits (the task's reply and output are pushed first), and
  `fedvault node` starts a fresh one: a failed import or a raising app may leave module
  state behind that a fresh process does not have;
- a task of another FAB (new code) is handed to a fresh interpreter: the worker renews
  the task's claim with one heartbeat and re-executes itself with the task's token, so
  no module of the old FAB serves it;
- the heartbeat stops before the task output is pushed: a beat for a finished task
  answers "unknown task" and Flower's heartbeat then raises SIGINT in its process, which
  here would stop a worker that has more messages to serve;
- the input is pulled through PatientRuntime: a worker that takes a task within
  milliseconds must wait (in short steps) for the SuperNode to store the message, and
  must give up a message the SuperNode itself gave up (see there).
Runtime dependency installation stays off, as for fedvault's SuperNodes.

This module must not import fedvault's own packages (clients, methods, protos, server):
the ClientApp's modules come from the installed FAB, as in `flwr-clientapp`.

Each task leaves two lines on stderr (the node's log), read back by
simulations/deploy/worker_log.py (faults.py, `fedvault bench deploy`, tests).
"""

from __future__ import annotations

import argparse
import importlib
import os
import signal
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from logging import ERROR

from flwr.app import Message
from flwr.app.error import Error
from flwr.cli.install import install_from_fab
from flwr.clientapp.client_app import ClientApp, LoadClientAppError
from flwr.clientapp.utils import get_load_client_app_fn
from flwr.common.constant import ErrorCode, SubStatus
from flwr.proto.runtime_pb2 import (AcquireTaskRequest,  # pylint: disable=E0611
                                    PullPendingTasksRequest)
from flwr.proto.task_pb2 import Task  # pylint: disable=E0611
from flwr.supercore import log
from flwr.supercore.app_utils import start_parent_process_monitor
from flwr.supercore.constant import PULL_MAX_TIME, TaskType
from flwr.supercore.fab import Fab
from flwr.supercore.heartbeat import HeartbeatSender, make_task_heartbeat_fn_http
from flwr.supercore.interceptors import (RuntimeTokenHttpInterceptor,
                                         RuntimeVersionHttpInterceptor,
                                         SuperExecAuthHttpInterceptor)
from flwr.supercore.retry import RetryInvoker, make_simple_http_retry_invoker
from flwr.supercore.run import Run
from flwr.supercore.runtime import RuntimeHttpClient
from flwr.supernode.runtime.run_clientapp import (pull_task_input, push_message,
                                                  push_task_output)

from simulations.deploy.node_supervisor import WORKER_EXIT_AFTER_TASK, secret_pipe
from simulations.deploy.processes import port_open
from simulations.deploy.worker_log import TASK_FINISHED, TASK_STARTED, Timings, iso_seconds

COMPONENT = "fedvault-clientapp-worker"  # what the SuperNode's version check logs
# The Runtime methods Flower's SuperExec signs (flwr/supercore/superexec/run_superexec.py
# `_SUPEREXEC_AUTH_METHODS`; tests/unit/test_flower_runtime_contract.py holds them equal).
SUPEREXEC_AUTH_METHODS = frozenset({"/flwr.proto.Runtime/AcquireTask",
                                    "/flwr.proto.Runtime/PullPendingTasks",
                                    "/flwr.proto.Runtime/ClaimTask"})
PRELOAD = ("torch", "numpy")  # third-party only: the app's own modules come from the FAB
POLL_MIN, POLL_MAX = 0.02, 0.25  # AcquireTask: fast after a task, backing off when idle
EXIT_ERROR = WORKER_EXIT_AFTER_TASK  # the worker stopped after an error; `fedvault node` starts a fresh one

def say(line: str) -> None:
    """One line to stderr in one write(): the node's log is shared with the SuperNode."""
    os.write(2, (line + "\n").encode())


class Stop(BaseException):
    """SIGTERM/SIGINT: not an Exception, so no ClientApp's `except Exception` swallows it."""


# ---- one task: what run_clientapp does, against a ClientApp loaded once per FAB ------------


class AppCache:
    """The ClientApp of the one FAB this process serves: installed and imported once."""

    def __init__(self) -> None:
        self.fab_hash: str | None = None
        self.app: ClientApp | None = None
        self._load = get_load_client_app_fn(default_app_ref="", app_path=None, multi_app=True)

    def get(self, run: Run, fab: Fab) -> ClientApp:
        if self.app is None:
            install_from_fab(fab.content, skip_prompt=True)  # no runtime dependency install
            self.app = self._load(run.fab_id, run.fab_version, fab.hash_str)
            self.fab_hash = fab.hash_str
        elif fab.hash_str != self.fab_hash:  # handed over before the pull; never reached
            raise LoadClientAppError(f"this worker serves FAB {self.fab_hash}, not {fab.hash_str}")
        return self.app


def task_client(address: str, token: str) -> tuple[RuntimeHttpClient, RetryInvoker]:
    """The client flwr-clientapp builds: version and task-token interceptors, Flower's
    HTTP retries (a 401 makes them raise SIGINT here, i.e. Stop)."""
    retry_invoker = make_simple_http_retry_invoker()
    client = RuntimeHttpClient.from_server_address(
        server_address=address, insecure=True, root_certificates=None,
        interceptors=[RuntimeVersionHttpInterceptor(component_name=COMPONENT),
                      RuntimeTokenHttpInterceptor(token)],
        retry_invoker=retry_invoker)
    return client, retry_invoker


class TaskAbandoned(Exception):
    """The SuperNode gave up on this task's message before storing all of it."""


class PatientRuntime:
    """The task's client as Flower's pull_task_input sees it, waiting in short steps
    where the SuperNode is still storing the message. The SuperNode creates the task
    first, then stores the message, then downloads its objects from the SuperLink: a
    worker that takes the task within milliseconds may find no message yet (pull_task_input
    would raise) or objects not yet there (Flower then backs off 1 s, then 2 s, ...).
    A fresh flwr-clientapp never meets either: its start takes seconds.

    While it waits it asks, once a second, whether another message is pending
    (`others_pending`): the SuperNode takes the next message only once this one is
    answered or given up, and Flower 1.39 gives one up without a word when its run stops
    during the download (the task stays claimable, the objects never come). One
    flwr-clientapp per message would then hang on its own while the next messages get
    theirs; the one worker must not, so it gives that task up (TaskAbandoned)."""

    def __init__(self, client: RuntimeHttpClient, others_pending: Callable[[], bool],
                 patience: float = PULL_MAX_TIME) -> None:
        self._client, self._others_pending, self._patience = client, others_pending, patience

    def __getattr__(self, name: str):  # PullTaskInput, ConfirmMessageReceived: as they are
        return getattr(self._client, name)

    def PullMessages(self, request):  # noqa: N802 - Flower's RPC name
        return self._until(lambda: self._client.PullMessages(request),
                           lambda res: bool(res.messages_list))

    def PullObject(self, request):  # noqa: N802
        return self._until(lambda: self._client.PullObject(request),
                           lambda res: res.object_available or not res.object_found)

    def _until(self, call, done):
        delay, start = 0.01, time.monotonic()
        next_look = start + 1.0
        while not done(res := call()) and time.monotonic() < start + self._patience:
            if time.monotonic() >= next_look:
                if self._others_pending():
                    raise TaskAbandoned("the SuperNode gave this message up (its run stopped "
                                        "while the node downloaded it) and took the next one")
                next_look = time.monotonic() + 1.0
            time.sleep(delay)
            delay = min(2 * delay, 0.2)
        return res  # after the patience: as it is, and Flower's own handling applies


def _error_reply(ex: Exception, message: Message | None) -> tuple[Message | None, str]:
    """run_clientapp's except branch: the error reply and the task's failure details."""
    e_code = ErrorCode.CLIENT_APP_RAISED_EXCEPTION
    reason = str(type(ex)) + ":<'" + str(ex) + "'>"
    if isinstance(ex, LoadClientAppError):
        reason = "An exception was raised when attempting to load `ClientApp`"
        e_code = ErrorCode.LOAD_CLIENT_APP_EXCEPTION
    log(ERROR, "%s raised an exception", "ClientApp", exc_info=ex)
    reply = Message(Error(code=e_code, reason=reason), reply_to=message) if message else None
    return reply, reason


def serve_task(address: str, token: str, apps: AppCache, timings: Timings,
               others_pending: Callable[[], bool] = lambda: False) -> Exception | None:
    """Serve the task `token` names; returns the error, if any (the worker ends after
    one, but for TaskAbandoned). Stop propagates after the task output is pushed."""
    client, retry_invoker = task_client(address, token)
    heartbeat, message, reply, context = None, None, None, None
    sub_status, details = SubStatus.FAILED, "ClientApp task failed due to unknown reason"
    error: Exception | None = None
    start = time.time()
    try:
        try:
            heartbeat = HeartbeatSender(make_task_heartbeat_fn_http(client))
            heartbeat.start()
            message, context, run, fab = pull_task_input(PatientRuntime(client, others_pending))
            timings.created_at = message.metadata.created_at
            timings.message_type = message.metadata.message_type
            start = timings.mark("input", start)
            app = apps.get(run, fab)
            start = timings.mark("load", start)
            reply = app(message=message, context=context)
            start = timings.mark("app", start)
            sub_status, details = SubStatus.COMPLETED, ""
        except TaskAbandoned as ex:  # no message, no app: nothing to answer
            error, details = ex, f"{type(ex).__name__}: {ex}"
        except Exception as ex:  # pylint: disable=broad-exception-caught
            error = ex
            reply, details = _error_reply(ex, message)
        finally:
            if reply and context:
                try:
                    push_message(client, reply, context)
                except Exception as ex:  # pylint: disable=broad-exception-caught
                    log(ERROR, "Failed to push reply message", exc_info=ex)
                    error = error or ex
            start = timings.mark("reply", start)
    except BaseException:  # Stop: as run_clientapp's exit handler, one try at the output
        retry_invoker.max_tries = 1
        raise
    finally:
        if heartbeat is not None and heartbeat.is_running:
            heartbeat.stop()
        push_task_output(client=client, context=context, sub_status=sub_status, details=details)
        timings.mark("output", start)
        client.close()
    return error


# ---- the loop: AcquireTask as Flower's SuperExec does, every task served here ----------


def acquire_client(address: str, secret: bytes | None) -> RuntimeHttpClient:
    """The client run_superexec builds: a version interceptor, and the SuperExec
    signature when the SuperNode holds a secret (`--superexec-auth-secret-file`)."""
    interceptors: list = [RuntimeVersionHttpInterceptor(component_name=COMPONENT)]
    if secret:
        interceptors.append(SuperExecAuthHttpInterceptor(
            master_secret=secret, protected_methods=SUPEREXEC_AUTH_METHODS))
    return RuntimeHttpClient.from_server_address(
        server_address=address, insecure=True, root_certificates=None,
        interceptors=interceptors, retry_invoker=make_simple_http_retry_invoker())


def acquire_request() -> AcquireTaskRequest:
    """Client-app tasks only (never a ServerApp's, an AgentApp's or a connector's)."""
    return AcquireTaskRequest(supported_task_types=[TaskType.CLIENT_APP])


@dataclass
class Worker:
    address: str  # the SuperNode's Runtime API, HOST:PORT
    secret: bytes | None
    argv: Sequence[str]  # how this process was started: a new FAB re-executes it
    apps: AppCache = field(default_factory=AppCache)
    served: int = 0
    acquirer: RuntimeHttpClient | None = None  # AcquireTask, PullPendingTasks (signed)

    def serve_forever(self, first_token: str | None = None, first_task: Task | None = None) -> int:
        self.acquirer = acquire_client(self.address, self.secret)
        if first_token:
            self.handle(first_task or Task(), first_token)
        interval = POLL_MIN
        while True:
            res = self.acquirer.AcquireTask(acquire_request())
            if res.HasField("task") and res.token:
                self.handle(res.task, res.token)  # raises SystemExit to end this process
                interval = POLL_MIN
            else:
                time.sleep(interval)
                interval = min(2 * interval, POLL_MAX)

    def handle(self, task: Task, token: str) -> None:
        if self.apps.fab_hash and task.fab_hash and task.fab_hash != self.apps.fab_hash:
            self.hand_over(task, token)
        self.served += 1
        timings = Timings(pending_at=iso_seconds(task.pending_at))
        pid, n = os.getpid(), self.served
        say(TASK_STARTED.format(pid=pid, task_id=task.task_id, n=n, run_id=task.run_id))
        error = serve_task(self.address, token, self.apps, timings,
                           lambda: self.others_pending(task.task_id))
        say(TASK_FINISHED.format(pid=pid, task_id=task.task_id, n=n, run_id=task.run_id,
                                 status="FAILED" if error else "COMPLETED",
                                 type=timings.message_type, **timings.figures()))
        if error is not None and not isinstance(error, TaskAbandoned):  # (no app code ran)
            say(f"fedvault-worker[{pid}]: exiting after {type(error).__name__}: a fresh "
                f"worker serves the next message")
            raise SystemExit(EXIT_ERROR)

    def others_pending(self, task_id: int) -> bool:
        """Whether a client-app task other than `task_id` waits on the SuperNode."""
        res = self.acquirer.PullPendingTasks(PullPendingTasksRequest())
        return any(t.type == TaskType.CLIENT_APP and t.task_id != task_id for t in res.tasks)

    def hand_over(self, task: Task, token: str) -> None:
        """A task of another FAB: renew its claim (a claimed task not started within 30 s
        goes back to pending; a beat gives 60 s), then serve it from a fresh interpreter."""
        client, _ = task_client(self.address, token)
        make_task_heartbeat_fn_http(client)()
        client.close()
        say(f"fedvault-worker[{os.getpid()}]: task {task.task_id} is FAB {task.fab_hash[:12]}, "
            f"not {self.apps.fab_hash[:12]}: re-executing to serve it with fresh modules")
        read_fd = secret_pipe(self.secret) if self.secret else None
        argv = _without(list(self.argv), ("--token", "--task", "--secret-fd"))
        argv += ["--token", token, "--task", task.SerializeToString().hex()]
        argv += ["--secret-fd", str(read_fd)] if read_fd is not None else []
        sys.stdout.flush()
        sys.stderr.flush()
        os.execv(sys.executable, [sys.executable, *argv])


def _without(argv: list[str], options: tuple[str, ...]) -> list[str]:
    """`argv` less each `--option VALUE` pair named in `options`."""
    kept, skip = [], False
    for arg in argv:
        if skip:
            skip = False
        elif arg in options:
            skip = True
        else:
            kept.append(arg)
    return kept


def read_secret(fd: int | None) -> bytes | None:
    if fd is None:
        return None
    with os.fdopen(fd, "rb") as pipe:
        return pipe.read() or None


# ---- the process -------------------------------------------------------------------------


def _on_signal(signum: int, frame: object) -> None:
    signal.signal(signal.SIGTERM, signal.SIG_IGN)  # one Stop: a second signal must not
    signal.signal(signal.SIGINT, signal.SIG_IGN)   # interrupt the task output's push
    raise Stop(signum)


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m simulations.deploy.clientapp_worker",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("--runtime-api-address", required=True, help="the SuperNode's HOST:PORT")
    parser.add_argument("--secret-fd", type=int, help="read the SuperExec secret from this fd")
    parser.add_argument("--parent-pid", type=int, help="stop when this process ends")
    parser.add_argument("--token", help=argparse.SUPPRESS)  # a task handed over (new FAB)
    parser.add_argument("--task", help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    if sys.path and sys.path[0] == os.getcwd():  # `python -m` put it there; flwr-clientapp's
        del sys.path[0]  # ClientApp cannot import from its working directory either
    secret = read_secret(args.secret_fd)
    signal.signal(signal.SIGTERM, _on_signal)
    signal.signal(signal.SIGINT, _on_signal)
    if args.parent_pid is not None:
        start_parent_process_monitor(args.parent_pid)  # SIGINT here when it is gone
    try:
        for name in PRELOAD:  # while the SuperNode starts: the first message waits less
            importlib.import_module(name)
        host, _, port = args.runtime_api_address.rpartition(":")
        while not port_open(int(port), host):
            time.sleep(0.1)
        say(f"fedvault-worker[{os.getpid()}]: serving the ClientApp tasks of the SuperNode at "
            f"{args.runtime_api_address}")
        task = Task.FromString(bytes.fromhex(args.task)) if args.task else None
        own_argv = ["-m", "simulations.deploy.clientapp_worker",
                    *(argv if argv is not None else sys.argv[1:])]
        return Worker(args.runtime_api_address, secret, own_argv).serve_forever(args.token, task)
    except Stop:
        return 0


if __name__ == "__main__":
    sys.exit(main())
