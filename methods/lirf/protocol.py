"""Record keys of LIRF's messages, shared by the server (server/lirf.py) and the
owner node (clients/lirf_owner.py). Payloads are protos (DepositRequest,
DepositReceipt, WithdrawRequest, AuditScores) under these ConfigRecord keys.

    phase             request                              reply
    deposit           T_0 arrays, DEPOSIT_REQUEST          T's "shallow.*", MODULE_SHA256,
                                                           DEPOSIT_CLASSES, metrics
    deposit-commit    RECEIPT                              "committed"
    withdraw-request  DEPOSIT_ID                           WITHDRAW_REQUEST
    withdraw          RECEIPT                              T_r as "deposit.*", MODULE_SHA256
    withdraw-commit   RECEIPT                              "released"
    lirf-audit        model arrays, DEPOSIT_REQUEST        SCORES, metrics
"""

DEPOSIT_REQUEST = "deposit-request"
RECEIPT = "receipt"
DEPOSIT_ID = "deposit-id"
WITHDRAW_REQUEST = "withdraw-request"
MODULE_SHA256 = "module-sha256"
DEPOSIT_CLASSES = "deposit-classes"
SCORES = "scores"
