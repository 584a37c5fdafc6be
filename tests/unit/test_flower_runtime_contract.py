"""The contract between fedvault's long-lived ClientApp worker and pinned Flower 1.39.0:
every Runtime API call, function, signature, request field and SuperNode flag the
worker (simulations/deploy/clientapp_worker.py) and `fedvault node`'s supervisor
(node_supervisor.py) rely on. A Flower upgrade that changes one of them fails here,
loudly and by name, before a deployment hangs on it. Nothing is started."""

from __future__ import annotations

import ast
import inspect
import re
import textwrap

import pytest

pytestmark = pytest.mark.unit


def _params(fn) -> list[str]:
    return list(inspect.signature(fn).parameters)


def _calls(fn) -> set[str]:
    """The names a function calls (`f(...)`, `a.b(...)`), from its source."""
    tree = ast.parse(textwrap.dedent(inspect.getsource(fn)))
    return {ast.unparse(n.func) for n in ast.walk(tree) if isinstance(n, ast.Call)}


def test_flower_is_the_pinned_version():
    import flwr

    assert flwr.__version__ == "1.39.0"


def test_the_task_functions_the_worker_calls_keep_their_signatures():
    from flwr.supernode.runtime import run_clientapp as r

    assert _params(r.pull_task_input) == ["client"]
    assert _params(r.push_message) == ["client", "message", "context"]
    assert _params(r.push_task_output) == ["client", "context", "sub_status", "details"]
    from flwr.app import Context, Message
    from flwr.supercore.fab import Fab
    from flwr.supercore.run import Run

    # the four results the worker unpacks
    assert inspect.signature(r.pull_task_input).return_annotation == tuple[Message, Context, Run, Fab]


def test_pull_task_input_calls_only_the_methods_the_patient_client_knows():
    """PatientRuntime wraps PullMessages and PullObject and passes the rest through."""
    from flwr.supernode.runtime import run_clientapp as r

    called = set(re.findall(r"client\.(\w+)", inspect.getsource(r.pull_task_input)))
    assert called == {"PullTaskInput", "PullMessages", "PullObject", "ConfirmMessageReceived"}


def test_a_flwr_clientapp_task_still_does_what_the_worker_mirrors():
    """A new step in run_clientapp (a new call) is a step the worker may be missing."""
    from flwr.supernode.runtime.run_clientapp import run_clientapp

    assert _calls(run_clientapp) == {
        "Error", "HeartbeatSender", "Message", "RuntimeHttpClient.from_server_address",
        "RuntimeTokenHttpInterceptor", "RuntimeVersionHttpInterceptor",
        "cleanup_app_runtime_environment", "client.close", "client_app", "event", "flwr_exit",
        "get_load_client_app_fn", "get_project_dir", "heartbeat_sender.start",
        "heartbeat_sender.stop", "install_app_dependencies", "install_from_fab", "isinstance",
        "load_client_app_fn", "log", "make_simple_http_retry_invoker",
        "make_task_heartbeat_fn_http", "pull_task_input", "push_message", "push_task_output",
        "register_signal_handlers", "start_parent_process_monitor", "str", "type"}


def test_loading_and_installing_a_fab_keep_their_signatures():
    from flwr.cli.install import install_from_fab
    from flwr.clientapp.utils import get_load_client_app_fn

    assert _params(get_load_client_app_fn) == ["default_app_ref", "app_path", "multi_app"]
    assert _params(install_from_fab)[:3] == ["fab_file", "install_dir", "skip_prompt"]
    assert _params(get_load_client_app_fn("", None, True)) == ["fab_id", "fab_version", "fab_hash"]


def test_the_runtime_http_client_has_every_rpc_the_worker_and_flower_send():
    from flwr.supercore.runtime import RuntimeHttpClient

    rpcs = {"AcquireTask", "PullPendingTasks", "PullTaskInput", "PullMessages", "PullObject",
            "ConfirmMessageReceived", "PushMessages", "PushObject", "PushTaskOutput",
            "SendTaskHeartbeat"}
    assert rpcs <= set(dir(RuntimeHttpClient))
    assert _params(RuntimeHttpClient.from_server_address) == [
        "server_address", "insecure", "root_certificates", "interceptors", "retry_invoker"]


def test_the_interceptors_and_heartbeat_keep_their_signatures():
    from flwr.supercore.heartbeat import HeartbeatSender, make_task_heartbeat_fn_http
    from flwr.supercore.interceptors import (RuntimeTokenHttpInterceptor,
                                             RuntimeVersionHttpInterceptor,
                                             SuperExecAuthHttpInterceptor)

    assert _params(RuntimeVersionHttpInterceptor) == ["component_name"]
    assert _params(RuntimeTokenHttpInterceptor) == ["token"]
    assert _params(SuperExecAuthHttpInterceptor) == ["master_secret", "protected_methods"]
    assert _params(HeartbeatSender) == ["heartbeat_fn"]
    assert _params(make_task_heartbeat_fn_http) == ["client"]
    assert {"start", "stop", "is_running"} <= set(dir(HeartbeatSender))


def test_the_acquire_request_and_the_task_have_the_fields_the_worker_reads():
    from flwr.proto.runtime_pb2 import AcquireTaskRequest, AcquireTaskResponse  # noqa: E0611
    from flwr.proto.task_pb2 import Task  # noqa: E0611
    from flwr.supercore.constant import TaskType

    from simulations.deploy.clientapp_worker import acquire_request

    assert set(AcquireTaskRequest.DESCRIPTOR.fields_by_name) == {"supported_task_types",
                                                                 "agentapp_fab_hashes"}
    assert {"task", "token"} <= set(AcquireTaskResponse.DESCRIPTOR.fields_by_name)
    assert {"task_id", "run_id", "type", "fab_hash", "pending_at"} <= set(Task.DESCRIPTOR.fields_by_name)
    assert TaskType.CLIENT_APP == "flwr-clientapp"
    assert list(acquire_request().supported_task_types) == ["flwr-clientapp"]


def test_the_patient_client_reads_the_response_fields_the_supernode_fills():
    from flwr.proto.message_pb2 import PullObjectResponse  # noqa: E0611
    from flwr.proto.runtime_pb2 import PullAppMessagesResponse  # noqa: E0611

    assert {"object_found", "object_available", "object_content"} <= set(
        PullObjectResponse.DESCRIPTOR.fields_by_name)
    assert "messages_list" in PullAppMessagesResponse.DESCRIPTOR.fields_by_name
    from flwr.proto.runtime_pb2 import PullPendingTasksResponse  # noqa: E0611

    assert "tasks" in PullPendingTasksResponse.DESCRIPTOR.fields_by_name


def test_the_supernode_handles_one_message_at_a_time_in_the_order_the_worker_assumes():
    """PatientRuntime's reasoning: the SuperNode creates the task, then stores the message,
    then downloads its objects; it takes the next message only after a reply or after
    giving this one up; a run stopped mid-download is given up without finishing the task.
    So another pending task while this one's objects are missing means it was given up."""
    from flwr.supernode import start_client_internal as loop

    pull = inspect.getsource(loop._pull_and_store_message)  # noqa: SLF001
    order = [pull.index(step) for step in ("state.create_task(", "state.store_message(message)",
                                           "pull_objects(", "except RunNotRunningException")]
    assert order == sorted(order)
    given_up = pull[pull.index("except RunNotRunningException"):]
    assert "finish_task" not in given_up and "return None" in given_up
    push = inspect.getsource(loop._push_messages)  # noqa: SLF001
    assert "while not (reply_messages := state.get_messages(is_reply=True))" in push


def test_the_worker_signs_exactly_what_flowers_superexec_signs():
    from flwr.supercore.superexec import run_superexec

    from simulations.deploy.clientapp_worker import SUPEREXEC_AUTH_METHODS

    assert SUPEREXEC_AUTH_METHODS == run_superexec._SUPEREXEC_AUTH_METHODS  # noqa: SLF001
    assert "SuperExecAuthHttpInterceptor" in _calls(run_superexec.run_superexec)


def test_the_error_codes_and_statuses_the_worker_reports_exist():
    from flwr.common.constant import ErrorCode, SubStatus

    assert ErrorCode.CLIENT_APP_RAISED_EXCEPTION != ErrorCode.LOAD_CLIENT_APP_EXCEPTION
    assert {SubStatus.COMPLETED, SubStatus.FAILED} == {"completed", "failed"}


def test_the_timing_constants_the_worker_works_around_are_the_ones_it_assumes():
    """hand_over renews a claim that lapses after HEARTBEAT_DEFAULT_INTERVAL (a beat gives
    PATIENCE x INTERVAL); PatientRuntime avoids PULL_INITIAL_BACKOFF's 1 s sleep."""
    from flwr.common.constant import HEARTBEAT_DEFAULT_INTERVAL, HEARTBEAT_PATIENCE
    from flwr.supercore.constant import PULL_INITIAL_BACKOFF

    assert (HEARTBEAT_DEFAULT_INTERVAL, HEARTBEAT_PATIENCE, PULL_INITIAL_BACKOFF) == (30, 2, 1)


def test_the_supernode_accepts_the_flags_fedvault_node_passes(tmp_path):
    from flwr.supernode.cli.flower_supernode import _parse_args_run_supernode

    from simulations.cli.node import NodeOptions, node_argv
    from simulations.deploy.node_supervisor import supervisor_command

    ca = tmp_path / "ca.crt"
    ca.write_text("x")
    argv = node_argv(NodeOptions("127.0.0.1:9092", root_certificates=ca, partition="0/2", port=9999))
    command = supervisor_command(argv, 9999)
    supernode = command[command.index("--") + 1:]  # what the supervisor starts, plus:
    args = _parse_args_run_supernode().parse_args(
        [*supernode[1:], "--superexec-auth-secret-file", "/dev/fd/3"])
    assert (args.isolation, args.host, args.port) == ("process", "127.0.0.1", 9999)
    assert args.superexec_auth_secret_file == "/dev/fd/3" and not args.runtime_dependency_install


def test_the_supernode_reads_the_superexec_secret_only_in_process_isolation():
    """So fedvault's worker must sign AcquireTask; Flower's own SuperExec of a SuperNode in
    subprocess isolation signs nothing (its secret is dropped there)."""
    import importlib

    from flwr.supernode.start_client_internal import start_client_internal

    # (the package exports a function of the module's name: import the module itself)
    flower_supernode = importlib.import_module("flwr.supernode.cli.flower_supernode")
    source = inspect.getsource(flower_supernode._parse_supernode_lifespan_config)  # noqa: SLF001
    assert "args.isolation == ISOLATION_MODE_PROCESS" in source
    assert "load_superexec_auth_secret" in source
    assert "superexec_auth_secret = None" in inspect.getsource(start_client_internal)
