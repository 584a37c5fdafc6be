"""The wire contract: every name the server and the nodes must spell the same way.

Phase names (RoundHeader.phase), record keys (of a message's RecordDict and inside
its records), the ledger fields a node sends beside its LedgerEntry, and how a node
is named on both sides. The server (server/) and the nodes (clients/) import these
names from here and nowhere else; the payloads themselves are protos/fedvault.proto,
encoded and decoded only by protos/codec.py. Plain constants, no imports: the lowest
layer, which methods/ may read too.

    phase             request                              reply
    train             ARRAYS, CONFIG                       ARRAYS, METRICS (NUM_EXAMPLES,
                                                           TRAIN_LOSS), CONFIG[DEVICE]
    private-train     as train, PRIVACY[LEDGER_HISTORY]    as train, PRIVACY[LEDGER_ENTRY,
                                                           *LEDGER_EXTRA]
    audit             ARRAYS, CONFIG, PRIVACY              CONFIG[AUDIT_SCORES], METRICS
    teacher           CONFIG                               METRICS (TEACHER_VAL_ACCURACY)
    select            CONFIG, PROBE (PROBE_IMAGES,         CONFIG[SIMILARITY]
                      STUDENT_CAM)
    distill           ARRAYS, CONFIG                       ARRAYS, METRICS
    deposit           T_0 ARRAYS, DEPOSIT_REQUEST          T's "shallow.*", MODULE_SHA256,
                                                           OWNER_PUBLIC_KEY, DEPOSIT_CLASSES,
                                                           METRICS (MODULE_BYTES_*, SAMPLE_STEPS)
    deposit-commit    RECEIPT                              COMMITTED
    withdraw-request  DEPOSIT_ID, LIRF_RUN_ID,             WITHDRAW_REQUEST, WITHDRAW_SIGNATURE
                      WITHDRAW_CHALLENGE
    withdraw          RECEIPT                              T_r as "deposit.*" packed sparse
                                                           (methods/lirf/sparse.py), MODULE_SHA256
    withdraw-commit   RECEIPT                              RELEASED
    lirf-audit        model ARRAYS, DEPOSIT_REQUEST,       DEPOSIT_CLASSES; METRICS MIA_AUC,
                      NONMEMBER_LOSSES, NONMEMBER_LABELS   ROC_FPR, ROC_TPR, DEPOSIT_ACCURACY,
                                                           NUM_EXAMPLES
    evaluate          ARRAYS, CONFIG                       METRICS (NUM_EXAMPLES, ACCURACY,
                                                           LOSS) of the node's held-out split

Every request's CONFIG record carries the typed RoundHeader under HEADER; a node that
refuses replies with ERROR[ERROR_PAYLOAD] (an ErrorReply) instead. The membership
handshake (Flower message type "query.info") carries a header with phase INFO and is
answered with CONFIG[NODE_INFO]; it is not one of the PHASES a node dispatches.

Under secagg.enabled, train and private-train requests also carry Flower's SecAgg+ record
("secaggplus_configs", its key and fields are Flower's), and three more exchanges per round
carry that record alone (setup, share keys, unmask). The reply's ARRAYS are emptied on the
node; the masked update travels in that record (server/secure_aggregation.py).

lirf-audit: the non-members are the server's own test examples (losses of the audited
model, with their labels, so that the owner can keep those of its deposit classes);
the owner computes its members' losses on D_r and replies with the AUC and at most
MAX_ROC_POINTS points of the ROC curve, never a per-sample value of D_r.
"""

from __future__ import annotations


class Phase:
    """Every RoundHeader.phase a node dispatches (clients/phases.py), one constant each."""

    TRAIN = "train"
    PRIVATE_TRAIN = "private-train"  # train under the run's DP ledger and audit canaries
    AUDIT = "audit"  # privacy audit scores
    TEACHER = "teacher"  # FedSA
    SELECT = "select"  # FedSA
    DISTILL = "distill"  # FedSA
    DEPOSIT = "deposit"  # LIRF
    DEPOSIT_COMMIT = "deposit-commit"  # LIRF
    WITHDRAW_REQUEST = "withdraw-request"  # LIRF
    WITHDRAW = "withdraw"  # LIRF
    WITHDRAW_COMMIT = "withdraw-commit"  # LIRF
    LIRF_AUDIT = "lirf-audit"  # LIRF
    EVALUATE = "evaluate"  # federated evaluation (Flower message type "evaluate")


PHASES: tuple[str, ...] = (
    Phase.TRAIN, Phase.PRIVATE_TRAIN, Phase.AUDIT,
    Phase.TEACHER, Phase.SELECT, Phase.DISTILL,
    Phase.DEPOSIT, Phase.DEPOSIT_COMMIT, Phase.WITHDRAW_REQUEST, Phase.WITHDRAW,
    Phase.WITHDRAW_COMMIT, Phase.LIRF_AUDIT, Phase.EVALUATE,
)
INFO = "info"  # the header phase of the membership handshake (not dispatched by PHASES)

# --- records of a message's RecordDict ---------------------------------------------------
ARRAYS = "arrays"  # ArrayRecord: model weights
METRICS = "metrics"  # MetricRecord: reply figures
CONFIG = "config"  # ConfigRecord: HEADER on requests, payloads on replies
ERROR = "error"  # ConfigRecord: a node's structured refusal
PRIVACY = "privacy"  # ConfigRecord, DP runs: LEDGER_HISTORY on requests, LEDGER_ENTRY on replies
PROBE = "probe"  # ArrayRecord, FedSA select requests: PROBE_IMAGES and STUDENT_CAM

# --- keys inside CONFIG / ERROR / PRIVACY (bytes: protos/fedvault.proto payloads) ---------
HEADER = "header"  # RoundHeader, on every request
ERROR_PAYLOAD = "payload"  # ErrorReply
NODE_INFO = "info"  # NodeInfo, the reply to the membership handshake
LEDGER_HISTORY = "history"  # list of LedgerEntry: the node's own ledger lines so far
LEDGER_ENTRY = "ledger"  # LedgerEntry: this round's spend
AUDIT_SCORES = "scores"  # list of AuditScores ("loss" and "confidence")
SIMILARITY = "similarity"  # SimilarityReport, FedSA select replies
DEVICE = "device"  # str, train replies: where the node trained ("cpu", "cuda:0 (<card>)")

# --- keys inside METRICS ---------------------------------------------------------------
NUM_EXAMPLES = "num-examples"  # FedAvg's weight; bounded by the node's declared count
TRAIN_LOSS = "train-loss"  # mean local loss (not in DP replies)
TEACHER_VAL_ACCURACY = "teacher-val-accuracy"  # FedSA teacher replies; -1: not measured
ACCURACY = "accuracy"  # evaluate replies: the global model on the node's held-out split
LOSS = "loss"  # evaluate replies: its mean cross-entropy there
NOISE_PROBE_SUM_SQ = "noise-probe-sum-sq"  # audit replies of DP nodes (clients/noise_probe.py)
NOISE_PROBE_DOF = "noise-probe-dof"

# --- arrays inside PROBE (FedSA) ---------------------------------------------------------
PROBE_IMAGES = "images"  # N×1×H×W
STUDENT_CAM = "student-cam"  # N×(H·W): the student's Grad-CAM maps

# --- the ledger fields a node sends beside its LedgerEntry (PRIVACY of a private-train
# reply; the server writes them to ledger.jsonl in snake_case) ---------------------------
LEDGER_EXTRA: tuple[str, ...] = (
    "epsilon-next",  # the ε its next round would reach (the budget check)
    "max-grad-norm",  # C
    NUM_EXAMPLES,
    "expected-batch-size",
    "empty-batches",
    "poisson",
    "sampler",
    "grad-sample-mode",
    "model-compatible",
    "rng",  # where the node's DP randomness came from: RNG_SECRET or RNG_RUN_SEED
)
RNG_SECRET = "os-csprng"  # fresh OS secrets each round: private against the server
RNG_RUN_SEED = "run-seed"  # the test-only deterministic switch: the server can replay it

# --- LIRF (server/lirf.py ↔ clients/lirf_owner.py); payloads are DepositRequest,
# DepositReceipt, WithdrawRequest -------------------------------------------------------
DEPOSIT_REQUEST = "deposit-request"
RECEIPT = "receipt"
DEPOSIT_ID = "deposit-id"
WITHDRAW_REQUEST = "withdraw-request"
MODULE_SHA256 = "module-sha256"
DEPOSIT_CLASSES = "deposit-classes"
COMMITTED = "committed"  # deposit-commit reply: the deposit id the owner committed
RELEASED = "released"  # withdraw-commit reply: the deposit id the owner released
NONMEMBER_LOSSES = "nonmember-losses"  # ConfigRecord list[float], the server's test set
NONMEMBER_LABELS = "nonmember-labels"  # ConfigRecord list[int], aligned with the losses
MIA_AUC = "mia-auc"  # MetricRecord float in [0, 1]
ROC_FPR = "mia-roc-fpr"  # MetricRecord list[float], non-decreasing, in [0, 1]
ROC_TPR = "mia-roc-tpr"  # MetricRecord list[float], aligned with ROC_FPR
DEPOSIT_ACCURACY = "deposit-accuracy"  # MetricRecord float in [0, 1]
MAX_ROC_POINTS = 64  # far fewer than |D_r|: the curve cannot list the members one by one
OWNER_PUBLIC_KEY = "owner-public-key"  # deposit reply: bytes, the owner's Ed25519 key (raw 32)
LIRF_RUN_ID = "lirf-run-id"  # withdraw-request: str, the run the signature is bound to
WITHDRAW_CHALLENGE = "withdraw-challenge"  # withdraw-request: bytes, a fresh server nonce
WITHDRAW_SIGNATURE = "withdraw-signature"  # reply: bytes, Ed25519 (methods/lirf/possession.py)
MODULE_BYTES_DENSE = "module-bytes-dense"  # deposit reply MetricRecord int: T_r as dense arrays
MODULE_BYTES_SPARSE = "module-bytes-sparse"  # ... as stored and sent (nonzeros + positions)
SAMPLE_STEPS = "sample-steps"  # deposit reply MetricRecord int: examples the training processed


# --- node keys -------------------------------------------------------------------------
def partition_key(partition_id: int) -> str:
    """A partition node's name, stable across runs: "p<partition id>"."""
    return f"p{partition_id}"


def node_key(partition_id: int, data_source: str) -> str:
    """A node's name on both sides (ledger lines, audit scores, per-node seeds):
    "p<partition id>" for a partition node (simulation, `--partition i/n`), else its data
    source (`--data-dir`), as its NodeInfo states both."""
    return partition_key(partition_id) if partition_id >= 0 else data_source


def partition_of(key: str) -> int | None:
    """The partition id a `partition_key` names; None for any other key."""
    digits = key[1:]
    return int(digits) if key.startswith("p") and digits.isdigit() else None
