"""Client-side phases: what a node does for each RoundHeader.phase it receives.

One line per phase. A phase function takes (spec, header, content, context)
and returns the reply's RecordDict; it is a plain function, testable without
Flower. The ClientApp (clients/app.py) only unpacks, dispatches and packs.
"""

from __future__ import annotations

from typing import Callable

from flwr.app import Context, MetricRecord, RecordDict

from clients.tasks import train_task
from methods.base import RunSpec
from protos import fedvault_pb2 as pb
from protos.records import ARRAYS, METRICS, from_array_record, to_array_record

Phase = Callable[[RunSpec, pb.RoundHeader, RecordDict, Context], RecordDict]


def train_phase(spec: RunSpec, header: pb.RoundHeader, content: RecordDict, context: Context) -> RecordDict:
    arrays, metrics = train_task(
        spec, header.round, from_array_record(content[ARRAYS]), context.node_config
    )
    return RecordDict({ARRAYS: to_array_record(arrays), METRICS: MetricRecord(metrics)})


PHASES: dict[str, Phase] = {
    "train": train_phase,
}
