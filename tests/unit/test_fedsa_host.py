"""Claims about a FedSA teacher node (clients/fedsa_host.py), phase by phase, without a server."""

import numpy as np
import pytest
import torch
from flwr.app import ArrayRecord, ConfigRecord, Context, MetricRecord, RecordDict

import clients.fedsa_host as host
from methods.fedsa.canvas import canvas_split
from methods.fedsa.nets import CanvasCNN
from methods.fedsa.saliency import grad_cam, saliency_similarity
from methods.fedsa.teacher import save_teacher, teacher_meta
from methods.registry import get_method
from protos import fedvault_pb2 as pb
from protos.codec import decode
from protos.contract import ARRAYS, CONFIG, METRICS, PROBE
from protos.records import from_array_record, round_header, to_array_record
from server.scenario import resolve

pytestmark = pytest.mark.unit

FAST = {"fedsa.teacher-epochs": "1", "fedsa.batch-size": "128"}


@pytest.fixture(scope="module")
def spec():
    torch.set_num_threads(1)
    return resolve("fedsa", FAST)


def _context(partition: int = 0, **node_config) -> Context:
    config = {"partition-id": partition, "num-partitions": 6, **node_config}
    return Context(run_id=1, node_id=7, node_config=config, state=RecordDict(), run_config={})


def _select_request(spec, n: int = 12) -> RecordDict:
    method = get_method("fedsa")
    torch.manual_seed(0)
    probe = method.probe_dataset(spec).x[:n]
    maps = grad_cam(method.build_model(spec), torch.from_numpy(probe)).numpy()
    return RecordDict({PROBE: to_array_record({"images": probe, "student-cam": maps})})


def _student_request(spec) -> RecordDict:
    method = get_method("fedsa")
    torch.manual_seed(0)
    return RecordDict({ARRAYS: to_array_record(method.shared_state(method.build_model(spec)))})


def test_the_teacher_is_trained_once_and_kept_in_node_state(spec, monkeypatch):
    context = _context()
    reply = host.teacher_phase(spec, round_header(spec, 0, "teacher"), RecordDict(), context)
    assert set(reply) == {METRICS}
    assert reply[METRICS]["num-examples"] == len(canvas_split(spec).nodes[0])
    assert host.TEACHER in context.state and host.TRANSLATOR not in context.state
    monkeypatch.setattr(host, "train_teacher", lambda *a: pytest.fail("the teacher was retrained"))
    again = host.teacher_phase(spec, round_header(spec, 0, "teacher"), RecordDict(), context)
    assert again[METRICS]["teacher-val-accuracy"] == reply[METRICS]["teacher-val-accuracy"]


def test_a_node_with_a_teacher_checkpoint_uses_it_and_trains_nothing(spec, tmp_path, monkeypatch):
    torch.manual_seed(3)
    teacher = CanvasCNN((16, 32, 48), 5).eval()  # another architecture than the nodes would train
    save_teacher(tmp_path / "t.npz", teacher, teacher_meta(teacher, "mine", "batch", (16, 32, 48)))
    monkeypatch.setattr(host, "train_teacher", lambda *a: pytest.fail("a teacher was trained"))
    request = _select_request(spec)
    reply = host.select_phase(spec, round_header(spec, 1, "select"), request,
                              _context(teacher=str(tmp_path / "t.npz")))
    report = decode(pb.SimilarityReport, reply[CONFIG][host.SIMILARITY])
    probe = from_array_record(request[PROBE])
    expected = saliency_similarity(torch.from_numpy(probe["student-cam"]),
                                   grad_cam(teacher, torch.from_numpy(probe["images"])))
    assert report.similarity == pytest.approx(expected)


def test_a_selection_reply_is_one_similarity_scalar(spec):
    reply = host.select_phase(spec, round_header(spec, 4, "select"), _select_request(spec, 12),
                              _context(partition=3))
    assert set(reply) == {CONFIG} and set(reply[CONFIG]) == {host.SIMILARITY}
    report = decode(pb.SimilarityReport, reply[CONFIG][host.SIMILARITY])
    assert (report.round, report.num_probe, report.teacher_task) == (4, 12, "")  # no task name
    assert 6.0 <= report.similarity <= 12.0  # each term 0.5 + 0.5·cos of non-negative maps


@pytest.mark.parametrize("damage, message", [
    (lambda p: p.pop("student-cam"), "needs arrays"),
    (lambda p: p.update({"student-cam": p["student-cam"][:, :-1]}), "student-cam must be"),
    (lambda p: p.update({"images": np.full_like(p["images"], np.nan)}), "finite"),
])
def test_a_malformed_probe_is_refused(spec, damage, message):
    probe = from_array_record(_select_request(spec)[PROBE])
    damage(probe)
    with pytest.raises(ValueError, match=message):
        host.select_phase(spec, round_header(spec, 1, "select"),
                          RecordDict({PROBE: to_array_record(probe)}), _context())


def test_a_distill_reply_carries_the_students_weights_only(spec):
    request = _student_request(spec)
    reply = host.distill_phase(spec, round_header(spec, 1, "distill"), request,
                               _context(partition=1))
    assert set(reply) == {ARRAYS, METRICS}
    sent = from_array_record(request[ARRAYS])
    returned = from_array_record(reply[ARRAYS])
    assert {k: v.shape for k, v in returned.items()} == {k: v.shape for k, v in sent.items()}
    assert not np.array_equal(returned["features.0.weight"], sent["features.0.weight"])
    assert reply[METRICS]["num-examples"] == len(canvas_split(spec).nodes[1])


def test_the_translator_persists_on_the_node_across_rounds(spec):
    kept, reset = _context(partition=2), _context(partition=2)
    for context in (kept, reset):
        host.distill_phase(spec, round_header(spec, 1, "distill"), _student_request(spec), context)
    assert host.TRANSLATOR in kept.state
    first = from_array_record(kept.state[host.TRANSLATOR])
    del reset.state[host.TRANSLATOR]  # as if the node had forgotten it
    replies = [host.distill_phase(spec, round_header(spec, 2, "distill"), _student_request(spec), c)
               for c in (kept, reset)]
    weights = [from_array_record(r[ARRAYS])["features.0.weight"] for r in replies]
    assert not np.array_equal(*weights)  # round 2 started from round 1's translator
    second = from_array_record(kept.state[host.TRANSLATOR])
    assert not np.array_equal(first["layers.0.weight"], second["layers.0.weight"])


def test_the_egress_guard_refuses_any_reply_holding_a_private_tensor(spec):
    context = _context()
    host.teacher_phase(spec, round_header(spec, 0, "teacher"), RecordDict(), context)
    teacher = from_array_record(context.state[host.TEACHER])
    private = host.private_arrays(context)
    honest = RecordDict({METRICS: MetricRecord({"num-examples": 3})})
    host.check_egress(honest, private)
    renamed = RecordDict({ARRAYS: to_array_record({"w": teacher["features.4.weight"]})})
    smuggled = RecordDict({CONFIG: ConfigRecord({"blob": teacher["head.2.weight"].tobytes()})})
    listed = RecordDict({ARRAYS: ArrayRecord([teacher["features.5.bias"].copy()])})
    for reply in (renamed, smuggled, listed):
        with pytest.raises(host.EgressViolation, match="never leave the node"):
            host.check_egress(reply, private)


def test_a_node_reading_its_own_image_folder_trains_a_teacher_for_that_folders_task(
        spec, tmp_path):
    from methods.common.datasets import MNIST_MEAN, MNIST_STD, write_image_folder

    own = canvas_split(spec).nodes[4].task("R:parity").subset(range(60))  # 2 classes
    write_image_folder(own, tmp_path / "mine", ["even", "odd"], normalize=(MNIST_MEAN, MNIST_STD))
    labelled, transfer, task = host.node_labelled_data(spec, {"data-dir": str(tmp_path / "mine")})
    assert task == "folder:mine" and labelled.num_classes == 2 and len(transfer) == 60
    assert labelled.x.shape == (60, 1, 14, 28)
    by_class = np.argsort(own.y, kind="stable")  # the folder is read class by class
    assert np.array_equal(labelled.y, own.y[by_class])
    assert np.abs(labelled.x - own.x[by_class]).max() < 0.02  # the same canvases, from 8-bit PNGs
    context = Context(run_id=1, node_id=9, node_config={"data-dir": str(tmp_path / "mine")},
                      state=RecordDict(), run_config={})
    reply = host.teacher_phase(spec, round_header(spec, 0, "teacher"), RecordDict(), context)
    assert reply[METRICS]["num-examples"] == 60
