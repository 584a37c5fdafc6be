"""The node's side of SecAgg+: Flower's `secaggplus_mod`, for the messages that ask for it.

A round under `secagg.enabled` is Flower's four-stage SecAgg+ protocol
(server/secure_aggregation.py). Flower's mod does all the cryptography: it makes the
node's key pairs and mask seed from the OS's randomness (never from the run seed), shares
them, and in the "collect masked vectors" stage calls the training handler, quantizes
its update, adds the masks and clears the reply's ArrayRecords, so no weights leave the
node in the clear.

Two things are fedvault's here:

- Only a TRAIN message that carries Flower's SecAgg+ config record goes through the mod:
  the mod takes every TRAIN message for its own, and fedvault's other phases (FedSA,
  LIRF, the audit) are TRAIN messages too.
- The mod reads the update as a legacy FitRes. The handler's reply (fedvault's ARRAYS
  with the new weights, METRICS with the example count) gets one beside it whose
  parameters are the *update* (new weights − the request's weights, in the request's
  key order), so `secagg.clipping-range` bounds the change a node makes, not its
  weights; the server adds the unmasked mean update to its global weights. The rest of
  the reply (METRICS, the DP ledger entry in PRIVACY) travels as it would without
  secure aggregation: those are outside what SecAgg+ hides (docs/guarantees.md).
"""

from __future__ import annotations

import numpy as np
from flwr.app import Context, Message
from flwr.app.message_type import MessageType
from flwr.clientapp.typing import ClientAppCallable
from flwr.common import FitRes, Status, Code, ndarrays_to_parameters
from flwr.client.mod import secaggplus_mod
from flwr.common.secure_aggregation.secaggplus_constants import RECORD_KEY_CONFIGS
from flwr.compat.common import recorddict_compat as compat

from protos.contract import ARRAYS, METRICS, NUM_EXAMPLES
from protos.records import from_array_record, read_error


class RefusedUnderSecAgg(RuntimeError):
    """The handler answered with an ErrorReply: Flower reports it as the node's error."""


def secure_aggregation_mod(msg: Message, context: Context, call_next: ClientAppCallable) -> Message:
    """Flower's secaggplus_mod around the handler, for SecAgg+ messages only."""
    if (msg.metadata.message_type != MessageType.TRAIN
            or RECORD_KEY_CONFIGS not in msg.content.config_records):
        return call_next(msg, context)

    def train_with_update(request: Message, ctx: Context) -> Message:
        return with_update(request, call_next(request, ctx))

    return secaggplus_mod(msg, context, train_with_update)


def with_update(request: Message, reply: Message) -> Message:
    """The reply, plus the legacy FitRes whose parameters the mod masks: the update."""
    if reply.has_error():
        return reply
    error = read_error(reply.content)
    if error is not None:  # the mod needs a FitRes; the reason reaches the server as an error
        raise RefusedUnderSecAgg(error.reason)
    sent = from_array_record(request.content[ARRAYS])
    trained = from_array_record(reply.content[ARRAYS])
    update = [np.asarray(trained[k], dtype=np.float64) - np.asarray(sent[k], dtype=np.float64)
              for k in sent]
    fitres = FitRes(status=Status(Code.OK, ""), parameters=ndarrays_to_parameters(update),
                    num_examples=int(reply.content[METRICS][NUM_EXAMPLES]), metrics={})
    for key, record in compat.fitres_to_recorddict(fitres, keep_input=True).items():
        reply.content[key] = record
    return reply
