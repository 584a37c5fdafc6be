"""A FedSA teacher node: it hosts a private teacher and answers three phases.

- "teacher": make sure the node's teacher exists: trained on the node's own
  labelled canvases at its first request (architecture `fedsa.teacher-arch`), or
  read from the checkpoint named by node config `teacher` (`fedvault node
  --teacher CKPT`; any architecture, methods/fedsa/teacher.py). It lives in the
  node's `context.state` (per node, kept across rounds), never in a reply. Its
  Grad-CAM and hint layers are resolved here, so a bad name is this phase's error.
- "select": Grad-CAM of the teacher (at `fedsa.gradcam-layer`) on the server's
  probe images, compared with the student's maps; the reply is ONE
  SimilarityReport (a scalar).
- "distill": hint-distil the teacher into a copy of the student with the
  node's persistent translator (methods/fedsa/hint.py) through the shared local
  loop; the reply carries the student's weights only.

Every reply passes `check_egress` first: if any teacher or translator tensor
appears in its serialized bytes, the node refuses to send it.

Each phase computes on the node's device (clients/node_device.py, as the train phase
does): the teacher, the student and the translator are built and seeded on the CPU,
then moved there; what is kept in `context.state` or sent is copied back to the CPU.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Iterable

import numpy as np
import torch
from flwr.app import ConfigRecord, Context, MetricRecord, RecordDict
from flwr.common.serde import recorddict_to_proto

from clients.node_data import DATA_DIR, describe_node
from clients.node_device import node_device
from clients.tasks import local_seed, node_key
from clients.training import train_locally
from methods.base import RunSpec
from methods.common.datasets import MNIST_MEAN, MNIST_STD, ArrayDataset, load_image_folder
from methods.config import ConfigError
from methods.fedsa.architectures import build_network, map_channels, resolve_layer
from methods.fedsa.canvas import CANVAS_SHAPES, canvas_split, teacher_task_for
from methods.fedsa.hint import HintDistillation, StudentWithTranslator
from methods.fedsa.nets import Translator
from methods.fedsa.saliency import grad_cam, saliency_similarity
from methods.fedsa.student import fit_supervised
from methods.fedsa.teacher import build_teacher, load_teacher, teacher_meta
from methods.registry import get_method
from protos import fedvault_pb2 as pb
from protos.codec import encode
from protos.contract import (ARRAYS, CONFIG, METRICS, NUM_EXAMPLES, PROBE, PROBE_IMAGES, SIMILARITY,
                            STUDENT_CAM, TEACHER_VAL_ACCURACY)
from protos.records import from_array_record, to_array_record

TEACHER_NODE_CONFIG = "teacher"  # node config key: path of a teacher checkpoint
TEACHER = "fedsa.teacher"  # context.state: the teacher's weights (ArrayRecord)
TEACHER_INFO = "fedsa.teacher-info"  # context.state: its description (ConfigRecord)
TRANSLATOR = "fedsa.translator"  # context.state: translator_t (ArrayRecord)
MAX_PROBE = 4096  # a bound on the work one select request may ask of a node


class EgressViolation(RuntimeError):
    """A reply would carry a private tensor of this node; it is not sent."""


# --- the node's data and teacher ------------------------------------------------------------

def node_labelled_data(spec: RunSpec, node_config) -> tuple[ArrayDataset, ArrayDataset, str]:
    """(the teacher's labelled data, the unlabelled transfer set, the teacher task)."""
    pid, num_partitions, _ = describe_node(node_config)
    if pid < 0:  # a real node: its image folder is its own task (one subdirectory per class)
        root = Path(str(node_config[DATA_DIR]))
        channels, height, width = CANVAS_SHAPES[spec.method.canvas]
        own = load_image_folder(root, channels=channels, size=(height, width),
                                normalize=(MNIST_MEAN, MNIST_STD) if channels == 1 else None)
        return own, _unlabelled(own.x), f"folder:{root.name}"
    canvases = canvas_split(spec, num_partitions).nodes[pid]
    task = teacher_task_for(pid)
    return canvases.task(task), _unlabelled(canvases.x), task


def _unlabelled(x: np.ndarray) -> ArrayDataset:
    # Labels are zeros on purpose: distillation must not (and cannot) use them.
    return ArrayDataset(x, np.zeros(len(x), dtype=np.int64), 1, "unlabelled")


def train_teacher(spec: RunSpec, node_config,
                  device: torch.device) -> tuple[torch.nn.Module, dict[str, Any]]:
    """The node's own teacher: CE on 1 − val-fraction of its labelled data, on `device`.

    A private supervised fit with a cosine schedule (fit_supervised), not a
    federated update: nothing of it is ever sent, so it needs neither the
    shared loop's DP nor its constant learning rate (at a constant 3e-3 the
    last epoch's validation accuracy swung between 0.65 and 0.99).
    """
    cfg, method = spec.method, get_method(spec.method_name)
    labelled, _, task = node_labelled_data(spec, node_config)
    seed = local_seed(spec, 0, node_key(node_config) + "/teacher")
    order = np.random.default_rng(seed).permutation(len(labelled))
    n_val = max(1, int(round(cfg.teacher_val_fraction * len(labelled))))
    torch.manual_seed(seed)
    in_channels = CANVAS_SHAPES[cfg.canvas][0]
    teacher = build_network(cfg.teacher_arch, in_channels=in_channels,
                            num_classes=labelled.num_classes, widths=cfg.teacher_widths,
                            key="fedsa.teacher-arch").to(device)  # initialised on the CPU
    meta = teacher_meta(teacher, task, "batch", cfg.teacher_widths, arch=cfg.teacher_arch,
                        in_channels=in_channels)
    teacher_layers(spec, teacher, meta)  # a bad layer name fails before any training
    fit_supervised(teacher, labelled.subset(order[n_val:]), epochs=cfg.teacher_epochs,
                   lr=cfg.teacher_lr, batch_size=cfg.batch_size, seed=seed)
    meta["val-accuracy"] = method.evaluate(teacher, labelled.subset(order[:n_val]))["accuracy"]
    return teacher.eval(), meta


def teacher_layers(spec: RunSpec, teacher: torch.nn.Module,
                   meta: dict[str, Any]) -> tuple[str, str]:
    """(Grad-CAM layer, hint layer) of this teacher: the run's key, else the checkpoint's own,
    else its last spatial stage. A name it lacks is a ConfigError listing the valid ones."""
    cfg, shape = spec.method, CANVAS_SHAPES[spec.method.canvas]
    return (resolve_layer(teacher, shape, cfg.gradcam_layer, meta.get("gradcam-layer", ""),
                          key="fedsa.gradcam-layer"),
            resolve_layer(teacher, shape, cfg.hint_layer, meta.get("hint-layer", ""),
                          key="fedsa.hint-layer"))


def ensure_teacher(spec: RunSpec, context: Context,
                   device: torch.device) -> tuple[torch.nn.Module, dict[str, Any]]:
    """The node's teacher on `device`, from its state; trained or loaded (and kept, on the
    CPU) on first use."""
    if TEACHER in context.state:
        meta = json.loads(str(context.state[TEACHER_INFO]["meta"]))
        teacher = build_teacher(meta)
        teacher.load_state_dict(_torch_state(context.state[TEACHER]), strict=True)
        return teacher.to(device).eval(), meta
    checkpoint = context.node_config.get(TEACHER_NODE_CONFIG)
    if checkpoint:
        teacher, meta = load_teacher(str(checkpoint))
        channels = CANVAS_SHAPES[spec.method.canvas][0]
        if int(meta.get("in_channels", 1)) != channels:
            raise ConfigError(f"teacher checkpoint {checkpoint} takes {meta.get('in_channels', 1)}-"
                              f"channel images; this run's canvases ({spec.method.canvas}) have "
                              f"{channels}")
        teacher.to(device)  # read on the CPU (a checkpoint from any machine loads anywhere)
    else:
        teacher, meta = train_teacher(spec, context.node_config, device)
    context.state[TEACHER] = to_array_record(_numpy_state(teacher))
    context.state[TEACHER_INFO] = ConfigRecord({"meta": json.dumps(meta)})
    return teacher, meta


def _numpy_state(module: torch.nn.Module) -> dict[str, np.ndarray]:
    return {k: v.detach().cpu().numpy().copy() for k, v in module.state_dict().items()}


def _torch_state(record) -> dict[str, torch.Tensor]:
    # CPU tensors: load_state_dict copies each into the module's own, on its device
    return {k: torch.from_numpy(v.copy()) for k, v in from_array_record(record).items()}


# --- egress guard --------------------------------------------------------------------------

def private_arrays(context: Context) -> list[np.ndarray]:
    """Every tensor that must never leave this node: the teacher's and the translator's."""
    arrays: list[np.ndarray] = []
    for key in (TEACHER, TRANSLATOR):
        if key in context.state:
            arrays += list(from_array_record(context.state[key]).values())
    return arrays


def check_egress(reply: RecordDict, private: Iterable[np.ndarray]) -> None:
    """Refuse a reply whose serialized bytes contain a private tensor's bytes.

    Constant tensors (an untrained BatchNorm's ones and zeros, step counters)
    carry no learned knowledge and would match by chance, so they are skipped.
    """
    blob = recorddict_to_proto(reply).SerializeToString()
    for array in private:
        if array.size > 1 and array.min() != array.max() and array.tobytes() in blob:
            raise EgressViolation(
                f"refusing to send a reply containing a private {array.dtype} tensor of shape "
                f"{array.shape}: teacher and translator weights never leave the node"
            )


def _reply(content: RecordDict, context: Context) -> RecordDict:
    check_egress(content, private_arrays(context))
    return content


# --- phases (registered in clients/phases.py) ----------------------------------------------

def teacher_phase(spec: RunSpec, header: pb.RoundHeader, content: RecordDict,
                  context: Context) -> RecordDict:
    teacher, meta = ensure_teacher(spec, context, node_device(spec, context.node_config))
    teacher_layers(spec, teacher, meta)  # a checkpoint without the named layers fails here
    _, transfer, _ = node_labelled_data(spec, context.node_config)
    # A checkpointed teacher comes without a validation figure: -1 says "not measured".
    metrics = {NUM_EXAMPLES: len(transfer),
               TEACHER_VAL_ACCURACY: float(meta.get("val-accuracy", -1.0))}
    return _reply(RecordDict({METRICS: MetricRecord(metrics)}), context)


def read_probe(content: RecordDict) -> tuple[torch.Tensor, torch.Tensor]:
    if PROBE not in content:
        raise ValueError(f"select request has no ArrayRecord {PROBE!r}")
    probe = from_array_record(content[PROBE])
    images, maps = probe.get(PROBE_IMAGES), probe.get(STUDENT_CAM)
    if images is None or maps is None:
        raise ValueError(f"probe needs arrays {PROBE_IMAGES!r} and {STUDENT_CAM!r}")
    if images.ndim != 4 or not 1 <= len(images) <= MAX_PROBE:
        raise ValueError(f"probe images must be N×C×H×W, 1 <= N <= {MAX_PROBE}: {images.shape}")
    expected = (len(images), images.shape[2] * images.shape[3])
    if maps.shape != expected:
        raise ValueError(f"student-cam must be N×(H·W) = {expected}, got {maps.shape}")
    if not (np.isfinite(images).all() and np.isfinite(maps).all()):
        raise ValueError("probe images and maps must be finite")
    return torch.from_numpy(images.astype(np.float32)), torch.from_numpy(maps.astype(np.float32))


def select_phase(spec: RunSpec, header: pb.RoundHeader, content: RecordDict,
                 context: Context) -> RecordDict:
    device = node_device(spec, context.node_config)  # and 1 CPU thread on the CPU
    images, student_maps = read_probe(content)
    teacher, meta = ensure_teacher(spec, context, device)
    gradcam_layer, _ = teacher_layers(spec, teacher, meta)
    teacher_maps = grad_cam(teacher, images.to(device), gradcam_layer)
    similarity = saliency_similarity(student_maps.to(device), teacher_maps)
    report = pb.SimilarityReport(round=header.round, similarity=similarity, num_probe=len(images))
    return _reply(RecordDict({CONFIG: ConfigRecord({SIMILARITY: encode(report)})}), context)


def distill_phase(spec: RunSpec, header: pb.RoundHeader, content: RecordDict,
                  context: Context) -> RecordDict:
    device = node_device(spec, context.node_config)  # and 1 CPU thread on the CPU
    method = get_method(spec.method_name)
    teacher, meta = ensure_teacher(spec, context, device)
    _, hint_layer = teacher_layers(spec, teacher, meta)
    student = method.build_model(spec)
    method.load_shared_state(student, from_array_record(content[ARRAYS]))
    shape = CANVAS_SHAPES[spec.method.canvas]
    student_layer = resolve_layer(student, shape, spec.method.student_layer,
                                  key="fedsa.student-layer")
    translator = _translator(spec, context, map_channels(student, student_layer, shape),
                             map_channels(teacher, hint_layer, shape))
    _, transfer, _ = node_labelled_data(spec, context.node_config)
    seed = local_seed(spec, header.round, node_key(context.node_config))
    # the loop moves student and translator to the teacher's device, and each batch
    metrics = train_locally(HintDistillation(teacher, hint_layer, student_layer),
                            StudentWithTranslator(student, translator), transfer, spec, seed=seed,
                            device=device)
    context.state[TRANSLATOR] = to_array_record(_numpy_state(translator))
    reply = RecordDict({ARRAYS: to_array_record(method.shared_state(student)),
                        METRICS: MetricRecord(metrics)})
    return _reply(reply, context)


def _translator(spec: RunSpec, context: Context, student_channels: int,
                teacher_channels: int) -> Translator:
    """translator_t (C_s → C_t), persistent on the node across rounds (fresh and seeded the
    first time)."""
    torch.manual_seed(local_seed(spec, 0, node_key(context.node_config) + "/translator"))
    translator = Translator(student_channels, teacher_channels, spec.method.student_norm)
    if TRANSLATOR in context.state:
        translator.load_state_dict(_torch_state(context.state[TRANSLATOR]), strict=True)
    return translator
