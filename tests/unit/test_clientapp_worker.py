"""Claims about the long-lived ClientApp worker (simulations/deploy/clientapp_worker.py)
and `fedvault node`'s supervisor of it (node_supervisor.py): one task is served as
flwr-clientapp serves it, errors end the process after the task's reply and output, a
new FAB is handed to a fresh interpreter, and the supervisor restarts the worker and
stops both children. Flower's Runtime API is faked here; tests/integration/
test_clientapp_worker_deploy.py runs the real one."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from types import SimpleNamespace

import pytest
from flwr.app import Context, Message, RecordDict
from flwr.clientapp.client_app import LoadClientAppError
from flwr.common.constant import ErrorCode, SubStatus
from flwr.proto.message_pb2 import Message as ProtoMessage  # pylint: disable=E0611
from flwr.proto.message_pb2 import PullObjectResponse  # pylint: disable=E0611
from flwr.proto.runtime_pb2 import PullAppMessagesResponse  # pylint: disable=E0611
from flwr.proto.task_pb2 import Task  # pylint: disable=E0611

from simulations.deploy import clientapp_worker as worker
from simulations.deploy import worker_log
from simulations.deploy.node_supervisor import (MAX_QUICK_EXITS, WORKER_EXIT_AFTER_TASK,
                                               NodeSupervisor, catches, secret_pipe)

pytestmark = pytest.mark.unit


class FakeRuntime:
    """What serve_task calls on its task client besides Flower's three functions."""

    def __init__(self):
        self.beats, self.closed = 0, False

    def SendTaskHeartbeat(self, request):  # noqa: N802
        self.beats += 1
        return SimpleNamespace(success=True)

    def close(self):
        self.closed = True


@pytest.fixture
def runtime(monkeypatch):
    """serve_task against a fake task client: records every reply and task output."""
    from flwr.supercore.task_identity import TaskIdentity

    TaskIdentity.run_id = TaskIdentity.node_id = TaskIdentity.task_id = 1
    message = Message(RecordDict(), dst_node_id=7, message_type="query.info")
    message.metadata.__dict__["_message_id"] = "m1"
    context = Context(run_id=1, node_id=7, node_config={}, state=RecordDict(), run_config={})
    fake, pushed = FakeRuntime(), {"replies": [], "outputs": []}
    fab = SimpleNamespace(hash_str="h1", content=b"")
    run = SimpleNamespace(fab_id="fedvault", fab_version="0.1.0")
    monkeypatch.setattr(worker, "task_client", lambda address, token: (fake, SimpleNamespace(max_tries=None)))
    monkeypatch.setattr(worker, "pull_task_input", lambda client: (message, context, run, fab))
    monkeypatch.setattr(worker, "push_message", lambda client, reply, ctx: pushed["replies"].append(reply))
    monkeypatch.setattr(worker, "push_task_output",
                        lambda client, context, sub_status, details: pushed["outputs"].append((context, sub_status, details)))
    return SimpleNamespace(fake=fake, pushed=pushed, message=message, context=context)


def _apps(app):
    cache = worker.AppCache.__new__(worker.AppCache)
    cache.fab_hash, cache.app = "h1", app
    return cache


def test_a_served_task_pushes_the_reply_then_the_context_as_completed(runtime):
    reply = Message(RecordDict(), reply_to=runtime.message)
    timings = worker_log.Timings()
    assert worker.serve_task("127.0.0.1:1", "tok", _apps(lambda message, context: reply), timings) is None
    assert runtime.pushed["replies"] == [reply]
    assert runtime.pushed["outputs"] == [(runtime.context, SubStatus.COMPLETED, "")]
    assert runtime.fake.beats >= 1 and runtime.fake.closed  # a heartbeat ran; the client is closed
    assert timings.message_type == "query.info" and set(timings.figures()) >= {"wait", "app", "reply"}


def test_a_raising_clientapp_gets_flowers_error_reply_and_ends_the_worker(runtime):
    def app(message, context):
        raise ZeroDivisionError("division by zero")

    error = worker.serve_task("127.0.0.1:1", "tok", _apps(app), worker_log.Timings())
    assert isinstance(error, ZeroDivisionError)
    [reply] = runtime.pushed["replies"]
    assert reply.has_error() and reply.error.code == ErrorCode.CLIENT_APP_RAISED_EXCEPTION
    assert reply.metadata.reply_to_message_id == "m1"
    [(context, status, details)] = runtime.pushed["outputs"]
    assert status == SubStatus.FAILED and details == "<class 'ZeroDivisionError'>:<'division by zero'>"


def test_a_clientapp_that_cannot_load_is_a_load_error(runtime):
    cache = worker.AppCache.__new__(worker.AppCache)
    cache.fab_hash, cache.app = "other-fab", object()
    assert isinstance(worker.serve_task("127.0.0.1:1", "tok", cache, worker_log.Timings()), LoadClientAppError)
    assert runtime.pushed["replies"][0].error.code == ErrorCode.LOAD_CLIENT_APP_EXCEPTION


def test_a_stop_signal_mid_task_still_pushes_the_task_output_once_and_propagates(runtime):
    def app(message, context):
        raise worker.Stop(signal.SIGTERM)

    with pytest.raises(worker.Stop):
        worker.serve_task("127.0.0.1:1", "tok", _apps(app), worker_log.Timings())
    assert runtime.pushed["replies"] == []  # as flwr-clientapp's exit handler: no reply
    assert [status for _, status, _ in runtime.pushed["outputs"]] == [SubStatus.FAILED]


def test_after_an_error_the_worker_logs_the_task_and_exits_for_a_fresh_one(monkeypatch, capfd):
    monkeypatch.setattr(worker, "serve_task", lambda *args: RuntimeError("boom"))
    w = worker.Worker("127.0.0.1:1", None, ["-m", "x"])
    with pytest.raises(SystemExit) as exit_info:
        w.handle(Task(task_id=5, run_id=9), "tok")
    assert exit_info.value.code == worker.EXIT_ERROR
    [task] = worker_log.parse_task_lines(capfd.readouterr().err)
    assert (task.task_id, task.run_id, task.n, task.status) == (5, 9, 1, "FAILED")


def test_a_task_of_a_new_fab_is_handed_to_a_fresh_interpreter_with_its_token(monkeypatch):
    handed = {}

    class Execd(Exception):
        pass

    def execv(path, argv):
        handed["argv"] = argv
        raise Execd

    monkeypatch.setattr(worker, "task_client", lambda address, token: (FakeRuntime(), None))
    monkeypatch.setattr(worker.os, "execv", execv)
    w = worker.Worker("127.0.0.1:1", b"secret", ["-m", "mod", "--runtime-api-address", "a",
                                                 "--secret-fd", "9", "--token", "old"])
    w.apps.fab_hash = "a" * 64
    with pytest.raises(Execd):
        w.handle(Task(task_id=5, run_id=9, fab_hash="b" * 64), "new-token")
    argv = handed["argv"]
    assert argv[argv.index("--token") + 1] == "new-token" and argv.count("--token") == 1
    assert Task.FromString(bytes.fromhex(argv[argv.index("--task") + 1])).fab_hash == "b" * 64
    fd = int(argv[argv.index("--secret-fd") + 1])
    assert worker.read_secret(fd) == b"secret"  # a fresh pipe, not the consumed one


def test_the_patient_client_waits_for_the_message_and_its_objects_the_supernode_still_stores():
    answers = {"PullMessages": [PullAppMessagesResponse(),
                                PullAppMessagesResponse(messages_list=[ProtoMessage()])],
               "PullObject": [PullObjectResponse(object_found=True, object_available=False),
                              PullObjectResponse(object_found=True, object_available=True, object_content=b"x")]}

    class Client:
        def PullMessages(self, request):  # noqa: N802
            return answers["PullMessages"].pop(0)

        def PullObject(self, request):  # noqa: N802
            return answers["PullObject"].pop(0)

        def PullTaskInput(self, request):  # noqa: N802
            return "as it is"

    patient = worker.PatientRuntime(Client(), others_pending=lambda: False)
    assert len(patient.PullMessages(None).messages_list) == 1
    assert patient.PullObject(None).object_content == b"x"
    assert patient.PullTaskInput(None) == "as it is"
    assert answers == {"PullMessages": [], "PullObject": []}


def test_a_task_whose_objects_never_come_is_given_up_once_the_supernode_takes_another():
    """Flower 1.39's SuperNode drops a message whose run stops mid-download, its task left
    claimable: the one worker must not wait for it while the next messages queue."""
    looks = []

    class Client:
        def PullObject(self, request):  # noqa: N802
            return PullObjectResponse(object_found=True, object_available=False)

    def others_pending():
        looks.append(time.monotonic())
        return len(looks) >= 2  # nothing else at the first look, the next message at the second

    started = time.monotonic()
    with pytest.raises(worker.TaskAbandoned):
        worker.PatientRuntime(Client(), others_pending).PullObject(None)
    assert len(looks) == 2 and 1.5 < time.monotonic() - started < 10


def test_an_abandoned_task_does_not_end_the_worker(monkeypatch):
    monkeypatch.setattr(worker, "serve_task", lambda *args: worker.TaskAbandoned("gone"))
    w = worker.Worker("127.0.0.1:1", None, ["-m", "x"])
    w.handle(Task(task_id=5, run_id=9), "tok")  # no SystemExit
    assert w.served == 1


def test_task_lines_read_back_what_the_worker_wrote():
    started = worker_log.TASK_STARTED.format(pid=11, task_id=22, n=3, run_id=44)
    finished = worker_log.TASK_FINISHED.format(pid=11, task_id=22, n=3, run_id=44, status="COMPLETED",
                                           type="train", delivery=1.5, wait=0.02, input=0.1,
                                           load=0.0, app=2.25, reply=0.05, output=0.01)
    [running] = worker_log.parse_task_lines("noise\n" + started)
    assert running.status is None
    [task] = worker_log.parse_task_lines(f"{started}\nINFO : other\n{finished}\n")
    assert (task.pid, task.task_id, task.n, task.run_id, task.status, task.type) == (11, 22, 3, 44, "COMPLETED", "train")
    assert task.figures == {"delivery": 1.5, "wait": 0.02, "input": 0.1, "load": 0.0, "app": 2.25,
                            "reply": 0.05, "output": 0.01}


# ---- the supervisor, with stand-in children (no Flower) ------------------------------------

SLEEPER = [sys.executable, "-c", "import time; time.sleep(60)"]


def _quick_worker(port: int, fd: int) -> list[str]:  # fails to start (exit 1)
    return [sys.executable, "-c", f"import os; assert os.read({fd}, 100); raise SystemExit(1)"]


def test_the_supervisor_restarts_an_exiting_worker_then_gives_up_and_stops_the_supernode():
    sup = NodeSupervisor(SLEEPER, 1, grace=2.0, worker_argv=_quick_worker)
    sup.backoff = 0.05  # (1 s, 2 s, 4 s, 8 s in a real node)
    started = time.monotonic()
    assert sup.run() == 1  # five quick exits: the worker cannot run here
    assert sup.quick_exits == 5 and time.monotonic() - started < 30
    assert sup.supernode.returncode is not None  # and the SuperNode was stopped with it


def test_a_worker_that_exits_after_failed_tasks_is_always_replaced():
    """A node whose app refuses every round (its DP policy, say) answers each task with an
    error and gets a fresh worker: it never stops itself, however often that happens."""
    sup = NodeSupervisor(SLEEPER, 1, grace=2.0, worker_argv=_quick_worker)
    sup.worker = type("Exited", (), {"pid": 123})()
    for _ in range(3 * MAX_QUICK_EXITS):
        sup.worker_started = time.monotonic()
        assert sup._worker_exited(WORKER_EXIT_AFTER_TASK) is not None
    assert sup.quick_exits == 0
    for _ in range(MAX_QUICK_EXITS - 1):  # while a worker that cannot start still counts
        assert sup._worker_exited(1) is not None
    assert sup._worker_exited(1) is None


def test_the_supervisor_ends_with_the_supernode_and_stops_the_worker():
    supernode = [sys.executable, "-c", "import time; time.sleep(0.5); raise SystemExit(7)"]
    sup = NodeSupervisor(supernode, 1, grace=2.0, worker_argv=lambda port, fd: SLEEPER)
    assert sup.run() == 7
    assert sup.worker.returncode == -signal.SIGTERM


def test_sigterm_to_the_supervisor_stops_both_children(tmp_path):
    script = tmp_path / "sup.py"
    script.write_text(
        "import sys\nfrom simulations.deploy.node_supervisor import NodeSupervisor\n"
        f"SLEEPER = {SLEEPER!r}\n"
        "sup = NodeSupervisor(SLEEPER, 1, grace=2.0, worker_argv=lambda port, fd: SLEEPER)\n"
        "sys.exit(sup.run())\n")
    proc = subprocess.Popen([sys.executable, str(script)], stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 20
    while len(_children(proc.pid)) < 2 and time.monotonic() < deadline:
        time.sleep(0.05)
    children = _children(proc.pid)
    assert len(children) == 2
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=20) == 1  # the stand-in SuperNode died of SIGTERM: not graceful
    assert not [pid for pid in children if os.path.exists(f"/proc/{pid}")]


def _children(pid: int) -> list[int]:
    from simulations.deploy.processes import all_processes

    return [p.pid for p in all_processes() if p.ppid == pid and p.state != "Z"]


def test_the_supervisor_can_tell_whether_a_child_still_has_a_signal_handler():
    assert catches(os.getpid(), signal.SIGTERM) == (signal.getsignal(signal.SIGTERM) not in
                                                    (signal.SIG_DFL, signal.SIG_IGN))
    assert catches(os.getpid(), signal.SIGINT)  # Python's own KeyboardInterrupt handler


def test_the_secret_travels_in_a_pipe():
    assert worker.read_secret(secret_pipe(b"s3cret")) == b"s3cret"


def test_the_deploy_bench_leaves_out_each_nodes_first_message_which_loads_the_app():
    from simulations.bench.deploy import ROUNDS, per_message

    def task(pid, n, app, load=0.0):
        figures = {"delivery": 1.5, "wait": 0.02, "input": 0.03, "load": load, "app": app,
                   "reply": 0.04, "output": 0.01}
        return {"pid": pid, "n": n, "status": "COMPLETED", "figures": figures}

    nodes = [[task(pid, 1, 9.0, load=2.0)] + [task(pid, n, 1.0) for n in range(2, ROUNDS + 2)]
             for pid in (11, 12, 13)]
    figures = per_message(nodes)
    assert figures["app_seconds"] == 1.0 and figures["first_message_load_seconds"] == 2.0
    assert figures["overhead_seconds"] == pytest.approx(0.10)  # wait + input + reply + output
    assert figures["messages_per_node_per_round"] == 1.0 and figures["processes_per_node"] == [1, 1, 1]
