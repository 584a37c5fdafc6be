"""One training round under SecAgg+: Flower's SecAggPlusWorkflow inside fedvault's round loop.

Flower ships SecAgg+ (Bell et al., CCS 2020) as a workflow of its legacy API: it asks a
legacy Strategy for the round's (ClientProxy, FitIns) pairs, runs four stages over the
grid (setup, share keys, collect masked vectors, unmask) and hands the unmasked weighted
mean to `Strategy.aggregate_fit`. fedvault keeps its own round loop (seeded sampling,
reply checks, the DP ledger, checkpoints, resume; server/rounds.py) and runs the workflow
as one call per round, through two narrow adapters and no change to Flower:

- `_RoundNodes`, a legacy Strategy that names the nodes fedvault's seeded sampler drew and
  keeps the mean the workflow unmasks;
- `_ProtocolGrid`, the grid the workflow talks to. Every stage goes through
  `Federation.relay` (the round timeout; a silent node is logged and dropped). In the
  collect stage it puts fedvault's own training request for each node (RoundHeader,
  global weights, DP ledger history) beside Flower's SecAgg+ config record, and screens
  each reply as the round loop screens a plain one (an error, an implausible example
  count, a DP reply without its ledger entry, a record Flower cannot read). A node that
  sent nothing, or an error, is a dropout as SecAgg+ intends: its pairwise masks are
  rebuilt from its neighbours' shares and its update is left out of the sum. But a reply
  the server received and screened out is different: the server holds that masked
  vector, and rebuilding the node's pairwise masks would leave its update behind its
  self-mask alone, which Flower seeds with 32 bits. So such a round stops before
  unmasking and is skipped, as a round below the threshold is.

What the server holds after a round is exactly what SecAgg+ reveals: the weighted mean of
the surviving nodes' updates, each node's example count, and what the reply carries
beside the masked vector (METRICS, the DP ledger entry); the arrays of the reply are
cleared on the node by Flower's mod (clients/secure_aggregation.py). A checkpoint is
taken between rounds as in any run, so an interrupted round is run again from its start
on resume, with fresh keys.

Below the reconstruction threshold the workflow halts: the round is logged and skipped
(the global model stays as it was), and the replies that reached the server are handed
to `on_reject`, so the DP ledger still counts them as releases.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from typing import Any

import numpy as np
from flwr.app import ConfigRecord, Context, Error, Message, RecordDict
from flwr.common import FitIns, Parameters, parameters_to_ndarrays
from flwr.common.secure_aggregation.secaggplus_constants import RECORD_KEY_CONFIGS, Key, Stage
from flwr.server.compat.grid_client_proxy import GridClientProxy
from flwr.server.compat.legacy_context import LegacyContext
from flwr.server.strategy import Strategy
from flwr.server.workflow import SecAggPlusWorkflow
from flwr.server.workflow.constant import MAIN_CONFIGS_RECORD, MAIN_PARAMS_RECORD
from flwr.server.workflow.constant import Key as WorkflowKey
from flwr.supercore.primitives.asymmetric import bytes_to_public_key

from methods.base import RunSpec
from protos.records import to_array_record
from server.federation import Federation

Check = Callable[[Message], "str | None"]
OnReject = Callable[[Message, str], None]

# Flower's ErrorCode for a reply the server refused (any code makes the workflow drop it)
SCREENED_OUT = 0
# Pairwise masks per node below which a run is warned: each is seeded with 32 bits, and
# a search can meet in the middle, so k masks cost about 2^(32·ceil(k/2)) expansions
SAFE_NEIGHBOURS = 4


class SecureRound:
    """Runs one round's training exchange under SecAgg+ (server/rounds.py calls it)."""

    def __init__(self, fed: Federation, spec: RunSpec) -> None:
        self.fed, self.spec = fed, spec
        self.warned = False

    def __call__(self, rnd: int, requests: list[Message], arrays: dict[str, np.ndarray],
                 check: Check, on_reject: OnReject,
                 ) -> tuple[dict[str, np.ndarray] | None, list[Message]]:
        """(new global weights, or None if the round was skipped; the replies that count).

        Flower's workflow recovers a node lost in the collect or unmask stage, but one lost
        in setup or key sharing leaves it without that node's key shares at unmasking, so
        the round would halt after every node trained. Such a loss stops the attempt before
        anyone trains, and the protocol starts again with the nodes that answered (each
        restart drops at least one node; none of them has released anything yet)."""
        active = [m.metadata.dst_node_id for m in requests]
        while True:
            threshold = self.spec.secagg.threshold_for(len(active))
            if len(active) < max(2, threshold):
                self.fed.run.log_event(
                    f"round {rnd}: secure aggregation needs at least {max(2, threshold)} nodes "
                    f"(reconstruction threshold {threshold}), {len(active)} are left; "
                    "round skipped")
                return None, []
            try:
                return self._attempt(rnd, [m for m in requests if m.metadata.dst_node_id
                                           in active], arrays, check, on_reject, threshold)
            except _LostBeforeTraining as lost:
                active = [n for n in active if n not in lost.nodes]
                self.fed.run.log_event(
                    f"round {rnd}: {len(lost.nodes)} node(s) left secure aggregation before "
                    f"training ({', '.join(self.fed.label(n) for n in sorted(lost.nodes))}); "
                    f"the protocol starts again with the other {len(active)}")

    def _attempt(self, rnd: int, requests: list[Message], arrays: dict[str, np.ndarray],
                 check: Check, on_reject: OnReject, threshold: int,
                 ) -> tuple[dict[str, np.ndarray] | None, list[Message]]:
        nodes = [m.metadata.dst_node_id for m in requests]
        secagg = self.spec.secagg
        self._warn_weak_masking(len(nodes))
        grid = _ProtocolGrid(self.fed, rnd, requests, check, on_reject)
        strategy = _RoundNodes(nodes, grid)
        workflow = SecAggPlusWorkflow(
            # 1.0 = every sampled node (Flower's proportion form): an int must be >= 3
            num_shares=1.0 if secagg.shares_for(len(nodes)) == len(nodes) else secagg.num_shares,
            reconstruction_threshold=threshold,
            max_weight=secagg.max_weight or self._max_weight(nodes),
            clipping_range=secagg.clipping_range,
            quantization_range=secagg.quantization_range,
            modulus_range=secagg.modulus_range,
            timeout=self.spec.federation.round_timeout,
        )
        why = (f"halted (fewer live nodes than the reconstruction threshold {threshold})")
        try:
            workflow(grid, _legacy_context(rnd, strategy))
        except _LostBeforeTraining:
            raise
        except _ScreenedAfterTraining as screened:
            strategy.mean = None
            why = (f"stopped before unmasking: the server screened out the masked vector of "
                   f"{', '.join(self.fed.label(n) for n in sorted(screened.nodes))}, and "
                   "unmasking it as a dropout would leave that update behind its self-mask "
                   "alone")
        except Exception as exc:  # noqa: BLE001 - replies are untrusted input: a round, not the run
            strategy.mean, why = None, f"failed ({type(exc).__name__}: {exc})"
        if strategy.mean is not None and not all(np.all(np.isfinite(u)) for u in strategy.mean):
            strategy.mean, why = None, "unmasked to a non-finite mean"
        if strategy.mean is None:
            self.fed.run.log_event(f"round {rnd}: secure aggregation {why}; round skipped, the "
                                   "global model is unchanged")
            for reply in grid.masked:
                on_reject(reply, "secure aggregation stopped: the sum was never unmasked")
            return None, []
        new = {k: (arrays[k] + update).astype(arrays[k].dtype)
               for k, update in zip(arrays, strategy.mean, strict=True)}
        survivors = [r for r in grid.masked if r.metadata.src_node_id in strategy.summed]
        return new, self.fed.in_order(survivors)

    def _warn_weak_masking(self, sampled: int) -> None:
        """Once per run: how much search would unmask one update (docs/secure_aggregation.md).

        Flower expands every mask with numpy's MT19937 from its seed folded to 32 bits
        (flwr.common.secure_aggregation.secaggplus_utils.pseudo_rand_gen). The server
        rebuilds each live node's self-mask during unmasking, as SecAgg+ intends, so one
        update stays hidden behind its k pairwise masks only. The masks add up and the
        update's first coordinate (its weight) is sent in the clear, so a search can meet
        in the middle: about 2^(32·ceil(k/2)) seed expansions, not 2^(32·k)."""
        neighbours = self.spec.secagg.shares_for(sampled) - 1
        if neighbours >= SAFE_NEIGHBOURS or self.warned:
            return
        self.warned = True
        self.fed.run.log_event(
            f"warning: secure aggregation with {neighbours} neighbours per node: Flower's masks "
            f"are seeded with 32 bits each, so a server that searches about "
            f"2^{32 * math.ceil(neighbours / 2)} seeds (meeting in the middle) could unmask one "
            f"update; with >= {SAFE_NEIGHBOURS + 1} shares per round (secagg.num-shares, nodes "
            f"sampled) that search is at least 2^{32 * SAFE_NEIGHBOURS // 2}")

    def _max_weight(self, nodes: list[int]) -> float:
        """The largest example count a sampled node may claim (Flower's max_weight)."""
        return float(max(self.fed.example_bound(n, self.spec) for n in nodes))


def _legacy_context(rnd: int, strategy: Strategy) -> LegacyContext:
    """What SecAggPlusWorkflow reads: the round number (and an empty parameters record:
    the FitIns it sends are empty, fedvault's request carries the weights)."""
    state = RecordDict({
        MAIN_CONFIGS_RECORD: ConfigRecord({WorkflowKey.CURRENT_ROUND: rnd}),
        MAIN_PARAMS_RECORD: to_array_record({}),
    })
    context = Context(run_id=0, node_id=0, node_config={}, state=state, run_config={})
    return LegacyContext(context, strategy=strategy)


class _ScreenedAfterTraining(Exception):
    """Collect replies the server received and refused: it must not unmask this round."""

    def __init__(self, nodes: set[int]) -> None:
        super().__init__(f"{len(nodes)} masked vector(s) screened out")
        self.nodes = nodes


class _LostBeforeTraining(Exception):
    """Nodes lost in setup or key sharing: the attempt stops before anyone trains."""

    def __init__(self, nodes: set[int]) -> None:
        super().__init__(f"{len(nodes)} node(s) lost before training")
        self.nodes = nodes


class _RoundNodes(Strategy):
    """The legacy Strategy SecAggPlusWorkflow asks for a round's nodes and hands the mean."""

    def __init__(self, nodes: list[int], grid: Any) -> None:
        self.proxies = [GridClientProxy(node_id, grid, run_id=0) for node_id in nodes]
        self.mean: list[np.ndarray] | None = None
        self.summed: set[int] = set()

    def configure_fit(self, server_round, parameters, client_manager):
        empty = FitIns(Parameters(tensors=[], tensor_type=""), {})
        return [(proxy, empty) for proxy in self.proxies]

    def aggregate_fit(self, server_round, results, failures):
        # every result carries the same unmasked mean; the nodes it came from are the
        # ones whose masked vectors were summed
        if results:
            self.mean = parameters_to_ndarrays(results[0][1].parameters)
            self.summed = {proxy.node_id for proxy, _ in results}
        return None, {}

    # The workflow calls only the two above; the rest of the interface is not used.
    def initialize_parameters(self, client_manager):
        return None

    def configure_evaluate(self, server_round, parameters, client_manager):
        return []

    def aggregate_evaluate(self, server_round, results, failures):
        return None, {}

    def evaluate(self, server_round, parameters):
        return None


class _ProtocolGrid:
    """The grid SecAggPlusWorkflow sends its four stages through (see the module doc)."""

    def __init__(self, fed: Federation, rnd: int, requests: list[Message],
                 check: Check, on_reject: OnReject) -> None:
        self.fed, self.rnd, self.check, self.on_reject = fed, rnd, check, on_reject
        self.requests = {m.metadata.dst_node_id: m for m in requests}
        self.masked: list[Message] = []  # the collect stage's accepted replies

    def send_and_receive(self, messages: Iterable[Message], *,
                         timeout: float | None = None) -> list[Message]:
        messages = list(messages)
        if not messages:
            return []
        stage = messages[0].content.config_records[RECORD_KEY_CONFIGS][Key.STAGE]
        collect = stage == Stage.COLLECT_MASKED_VECTORS
        if collect:
            messages = [self._with_request(m) for m in messages]
        replies = self.fed.relay(messages, self.rnd, f"secagg {stage}")
        sent = {m.metadata.dst_node_id: m for m in messages}
        shared_keys = _shared_public_keys(replies) if stage == Stage.SETUP else {}
        screened, refused = [], set()
        for reply in replies:
            node = reply.metadata.src_node_id
            if reply.has_error():  # the workflow drops a node whose reply is an error
                screened.append(reply)
            elif collect and self.fed.accept(reply, self.rnd, "secagg collect", self.check,
                                             self.on_reject):
                self.masked.append(reply)
                screened.append(reply)
            elif not collect and (reason := shared_keys.get(node) or malformed(
                    stage, reply, set(self.requests), sent[node])) is None:
                screened.append(reply)
            else:
                if collect:
                    refused.add(node)
                else:
                    self.fed.run.log_event(f"round {self.rnd} secagg {stage}: "
                                           f"{self.fed.label(node)} rejected: {reason}")
                screened.append(Message(Error(SCREENED_OUT, "reply screened out by the server"),
                                        reply_to=sent[node]))
        self.fed.note_devices(self.masked)
        if refused:  # see the module doc: the server holds these masked vectors
            raise _ScreenedAfterTraining(refused)
        if stage in (Stage.SETUP, Stage.SHARE_KEYS):
            lost = set(sent) - {r.metadata.src_node_id for r in screened if not r.has_error()}
            if lost:  # see SecureRound.__call__: start again without them
                raise _LostBeforeTraining(lost)
        return screened

    def _with_request(self, message: Message) -> Message:
        """fedvault's training request for the node, with Flower's SecAgg+ configs added."""
        node = message.metadata.dst_node_id
        content = RecordDict(dict(self.requests[node].content.items()))
        content[RECORD_KEY_CONFIGS] = message.content.config_records[RECORD_KEY_CONFIGS]
        return Message(content, dst_node_id=node, message_type=message.metadata.message_type,
                       group_id=message.metadata.group_id)


# What each stage's reply must hold for Flower's workflow to read it: {stage: {key: type}}
_STAGE_REPLY = {
    Stage.SETUP: {Key.PUBLIC_KEY_1: bytes, Key.PUBLIC_KEY_2: bytes},
    Stage.SHARE_KEYS: {Key.DESTINATION_LIST: int, Key.CIPHERTEXT_LIST: bytes},
    Stage.UNMASK: {Key.NODE_ID_LIST: int, Key.SHARE_LIST: bytes},
}
# the pair of lists of a stage whose lengths must agree, the first naming nodes
_PAIRED = {Stage.SHARE_KEYS: (Key.DESTINATION_LIST, Key.CIPHERTEXT_LIST),
           Stage.UNMASK: (Key.NODE_ID_LIST, Key.SHARE_LIST)}
_LISTED = {key for pair in _PAIRED.values() for key in pair}  # the keys whose value is a list
_PUBLIC_KEYS = (Key.PUBLIC_KEY_1, Key.PUBLIC_KEY_2)  # a setup reply's two keys


def malformed(stage: str, reply: Message, nodes: set[int],
              request: Message | None = None) -> str | None:
    """Why a setup, share-keys or unmask reply cannot be handed to Flower's workflow, which
    trusts its shape (a missing key, a scalar for a list, a repeated or unknown node id
    there would stop the round with an exception, and a public key its neighbours cannot
    decode would fail them all); None when it can. `request`: the message it answers (an
    unmask reply may name only the nodes its request named). The rest of its
    cryptographic content is Flower's to check."""
    configs = reply.content.config_records.get(RECORD_KEY_CONFIGS)
    if configs is None:
        return f"no {RECORD_KEY_CONFIGS} record"
    for key, kind in _STAGE_REPLY.get(stage, {}).items():
        value = configs.get(key)
        if value is None or isinstance(value, list) != (key in _LISTED):
            return f"{key!r} is missing or not a {'list' if key in _LISTED else kind.__name__}"
        items = value if isinstance(value, list) else [value]
        if not all(isinstance(v, kind) and not isinstance(v, bool) for v in items):
            return f"{key!r} holds something other than {kind.__name__}"
    if stage == Stage.SETUP:
        if configs[Key.PUBLIC_KEY_1] == configs[Key.PUBLIC_KEY_2]:
            return "its two public keys are the same (every neighbour would refuse them)"
        for key in _PUBLIC_KEYS:
            try:  # Flower's own decoder: what every neighbour will do with it
                bytes_to_public_key(configs[key])
            except Exception:  # noqa: BLE001 - untrusted bytes
                return f"{key!r} is not a public key"
    if stage in _PAIRED:
        ids, payloads = (configs[k] for k in _PAIRED[stage])
        if len(ids) != len(payloads):
            return f"{len(ids)} node ids for {len(payloads)} payloads"
        if not set(ids) <= nodes:
            return "names nodes outside this round"
        if len(set(ids)) != len(ids):
            return "names a node twice"
    if stage == Stage.UNMASK and request is not None:
        asked = request.content.config_records[RECORD_KEY_CONFIGS]
        named = set(asked.get(Key.ACTIVE_NODE_ID_LIST, [])) | set(asked.get(Key.DEAD_NODE_ID_LIST, []))
        if not set(configs[Key.NODE_ID_LIST]) <= named:
            return "sends shares of nodes its request did not name"
    return None


def _shared_public_keys(replies: list[Message]) -> dict[int, str]:
    """{node: why} for setup replies whose public key another node of the round also sent
    (a copied key makes every neighbour of both refuse the pair; which one copied cannot
    be told, so both are left out)."""
    owners: dict[bytes, set[int]] = {}
    for reply in replies:
        configs = None if reply.has_error() else reply.content.config_records.get(RECORD_KEY_CONFIGS)
        if configs is None:
            continue
        for value in (configs.get(key) for key in _PUBLIC_KEYS):
            if isinstance(value, bytes):
                owners.setdefault(value, set()).add(reply.metadata.src_node_id)
    return {node: "sent a public key another node of this round also sent"
            for holders in owners.values() if len(holders) > 1 for node in holders}
