"""Claims about where torch computes (docs/gpu.md): the one resolver, the run's record of it,
the simulation's client resources, and methods that follow their batches' device.

This machine has no GPU: CUDA's presence is faked where a claim needs it (the resolver only
asks torch whether CUDA is there), and "follows the device" is checked on torch's `meta`
device, where an op mixing in a CPU tensor fails as it would on a GPU."""

import json

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from methods.common.device import device_label, reported_label, resolve_device
from methods.config import ConfigError
from methods.registry import get_method, method_names
from methods.resolve import parse_run_spec
from server.runner import Job, run_job
from server.scenario import resolve
from simulations.cli.app import cli
from simulations.simulate import client_resources
from tests.inprocess_grid import InProcessGrid, partition_nodes

pytestmark = pytest.mark.unit

CARD = "NVIDIA H100 80GB HBM3"


@pytest.fixture
def cuda(monkeypatch):
    """Pretend torch sees `n` CUDA devices (the resolver asks nothing else)."""
    def with_devices(n: int) -> None:
        monkeypatch.setattr(torch.cuda, "is_available", lambda: n > 0)
        monkeypatch.setattr(torch.cuda, "device_count", lambda: n)
        monkeypatch.setattr(torch.cuda, "get_device_name", lambda index=None: CARD)
    return with_devices


@pytest.mark.parametrize("text", ["gpu", "CUDA", "cuda:", "cuda:x", "cuda0", "", "cpu "])
def test_a_malformed_device_is_refused_naming_the_valid_forms(text):
    valid = r"device must be one of auto, cpu, cuda, cuda:<index>, mps"
    with pytest.raises(ConfigError, match=valid):
        resolve_device(text)
    with pytest.raises(ConfigError, match="device must be one of"):
        parse_run_spec({"method": "fedavg", "device": text})  # every config parse checks the form


def test_auto_picks_cuda_when_torch_sees_it_and_the_cpu_otherwise(cuda):
    cuda(0)
    assert resolve_device("auto") == torch.device("cpu")
    cuda(2)
    assert resolve_device("auto") == torch.device("cuda", 0)
    assert resolve_device("cuda:1") == torch.device("cuda", 1)
    assert resolve_device("cpu") == torch.device("cpu")
    assert device_label(resolve_device("cuda")) == f"cuda:0 ({CARD})"


def test_cuda_the_machine_lacks_is_one_clear_error(cuda):
    cuda(0)
    with pytest.raises(ConfigError, match=r"device=cuda: CUDA is not available on this machine"):
        resolve_device("cuda")
    cuda(2)
    with pytest.raises(ConfigError, match=r"cuda:0\.\.cuda:1"):
        resolve_device("cuda:2")


def test_a_cpu_only_method_runs_on_the_cpu_under_auto_and_refuses_cuda(cuda):
    cuda(1)
    assert resolve_device("auto", cpu_only=True) == torch.device("cpu")
    with pytest.raises(ConfigError, match="runs on the CPU only"):
        resolve_device("cuda", cpu_only=True)


@pytest.mark.parametrize("value,kept", [
    ("cpu", True), ("cuda:0 (NVIDIA H100 80GB HBM3)", True), ("mps", True),
    ("cuda:0; rm -rf /", False), ("cpu (" + "x" * 200 + ")", False), (7, False), (None, False),
])
def test_a_nodes_reported_device_is_kept_only_when_it_reads_as_one(value, kept):
    assert reported_label(value) == (value if kept else None)


@pytest.mark.parametrize("key,value,needle", [
    ("num-gpus", "-1", "num-gpus must be >= 0"),
    ("num-gpus", "1.5", "whole number of GPUs"),
    ("num-cpus", "0", "num-cpus must be > 0"),
])
def test_client_resources_keys_are_range_checked(key, value, needle):
    with pytest.raises(ConfigError, match=needle):
        resolve("fedavg", {key: value})


def test_simulation_shares_the_gpu_among_concurrent_clients_unless_told(cuda, monkeypatch):
    monkeypatch.setattr("os.cpu_count", lambda: 16)
    cuda(1)
    assert client_resources(resolve("fedavg", {})) == (1.0, 1 / 16)  # auto -> cuda, 16 at once
    assert client_resources(resolve("fedavg", {"num-gpus": "0.25"})) == (1.0, 0.25)
    assert client_resources(resolve("fedavg", {"device": "cpu"})) == (1.0, 0.0)
    assert client_resources(resolve("ask-ac", {})) == (1.0, 0.0)  # a CPU-only method
    cuda(2)
    with pytest.raises(ConfigError, match="Ray gives each client its GPU"):
        client_resources(resolve("fedavg", {"device": "cuda:1"}))  # an actor's GPU is cuda:0
    cuda(0)
    with pytest.raises(ConfigError, match="num-gpus=0.25 needs CUDA devices; this machine has 0"):
        client_resources(resolve("fedavg", {"num-gpus": "0.25"}))
    with pytest.raises(ConfigError, match="this machine has 16 CPUs"):
        client_resources(resolve("fedavg", {"num-cpus": "32"}))
    on_a_cluster = client_resources(resolve("fedavg", {"num-gpus": "0.25"}), "ray://head:10001")
    assert on_a_cluster == (1.0, 0.25)  # this host's hardware proves nothing there


@pytest.mark.parametrize("name", [n for n in method_names() if not get_method(n).cpu_only])
def test_a_train_step_follows_its_batch_to_the_device(name):
    """The loop moves model and batch (clients/training.py); a step that makes a tensor on
    the CPU (no `device=`) would fail on a GPU. Methods that do are marked cpu_only."""
    method = get_method(name)
    spec = parse_run_spec({"method": name})
    torch.manual_seed(0)
    model = method.build_model(spec).to("meta")
    data = method.train_dataset(spec).subset(np.arange(8))
    batch = (torch.tensor(data.x).to("meta"), torch.tensor(data.y).to("meta"))
    assert method.train_step(model, batch, spec).device.type == "meta"


def test_a_run_records_the_requested_device_and_each_nodes_own(tmp_path, cuda):
    cuda(0)
    spec = resolve("fedavg", {"num-clients": "2", "num-server-rounds": "1", "device": "cpu",
                              "data.dataset": "digits", "data.partitioner": "iid"})
    nodes = partition_nodes(2)
    nodes[1]["device"] = "cuda"  # its own `fedvault node --device cuda`, on a host without
    summary = run_job(InProcessGrid(nodes), Job(spec=spec, run_dir=str(tmp_path / "run")))
    run = tmp_path / "run"
    assert json.loads((run / "config.json").read_text())["run"]["device"] == "cpu"
    assert summary["device"] == "cpu" and summary["node_devices"] == {"p0": "cpu"}
    assert json.loads((run / "summary.json").read_text())["node_devices"] == {"p0": "cpu"}
    assert "CUDA is not available" in (run / "events.log").read_text()  # p1 read its own flag


def test_cuda_without_cuda_exits_2_before_anything_starts(tmp_path, cuda, monkeypatch):
    cuda(0)
    monkeypatch.setattr("simulations.simulate.run_in_process", lambda *a, **k: pytest.fail("ran"))
    out = tmp_path / "run"
    result = CliRunner().invoke(cli, ["simulate", "fedavg", "--out", str(out),
                                      "--set", "device=cuda"])
    assert result.exit_code == 2 and "CUDA is not available" in result.output
    assert len(result.output.strip().splitlines()) == 1 and not out.exists()
    node = CliRunner().invoke(cli, ["node", "--superlink", "127.0.0.1:9", "--insecure",
                                    "--partition", "0/2", "--device", "cuda:0"])
    assert node.exit_code == 2 and "--device=cuda:0: CUDA is not available" in node.output


# --- the phases outside the shared loop: LIRF's owner and server, FedSA's nodes and server ---

@pytest.fixture
def meta_masks():
    """Boolean-mask indexing (LIRF's g/ḡ logit selection) needs nonzero(), which the meta
    device only fakes when told to: the mask is then taken as all-true, so shapes stay
    consistent while every op still checks its operands' devices."""
    from torch.fx.experimental import _config

    with _config.patch(meta_nonzero_assume_all_nonzero=True):
        yield


def _meta_batch(x: np.ndarray, y: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
    return torch.tensor(x).to("meta"), torch.tensor(y).to("meta")


@pytest.mark.parametrize("lambda_at", [0.0, 100.0])  # 100: the attention term's tensors too
def test_lirf_deposit_step_and_withdrawal_follow_their_batch_to_the_device(meta_masks, lambda_at):
    """The owner's deposit objective (random labels, KD over class masks, the pruned T_r)
    and the recovered model T̃ (logit concatenation) on torch's meta device."""
    from methods.lirf.withdraw import recovered_arrays, shallow_part

    method = get_method("lirf")
    spec = parse_run_spec({"method": "lirf", "lirf.lambda-at": str(lambda_at)})
    torch.manual_seed(0)
    original = method.shared_state(method.build_model(spec))
    data = method.train_dataset(spec).subset(np.arange(8))
    x, y = _meta_batch(data.x, data.y)
    net = method.build_deposit_net(spec, original, [0, 1, 2]).to("meta").train()  # pruned
    assert method.train_step(net, (x, y), spec).device.type == "meta"
    recovered = method.build_recovered(
        spec, recovered_arrays(original, shallow_part(original)), [0, 1, 2]).to("meta")
    assert recovered(x).device.type == "meta"


def test_fedsa_saliency_and_hint_step_follow_their_batch_to_the_device():
    """A node's Grad-CAM (its layer found by a dry run on the model's device) and one hint
    distillation step (teacher, student and translator) on torch's meta device; so is the
    server's Grad-CAM of the student."""
    from methods.fedsa.architectures import build_network, map_channels
    from methods.fedsa.canvas import CANVAS_SHAPES
    from methods.fedsa.hint import HintDistillation, StudentWithTranslator
    from methods.fedsa.nets import Translator
    from methods.fedsa.saliency import grad_cam

    method = get_method("fedsa")
    spec = parse_run_spec({"method": "fedsa"})
    cfg, shape = spec.method, CANVAS_SHAPES[spec.method.canvas]
    torch.manual_seed(0)
    student = method.build_model(spec).to("meta")
    teacher = build_network(cfg.teacher_arch, in_channels=shape[0], num_classes=5,
                            widths=cfg.teacher_widths).to("meta")
    x = torch.randn(4, *shape).to("meta")
    assert grad_cam(teacher, x).device.type == "meta"
    assert grad_cam(student, x, "features").device.type == "meta"
    translator = Translator(map_channels(student, "features", shape),
                            map_channels(teacher, "features", shape)).to("meta")
    step = HintDistillation(teacher, "features", "features")
    loss = step.train_step(StudentWithTranslator(student, translator).train(), (x,))
    assert loss.device.type == "meta"
