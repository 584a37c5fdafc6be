"""Record keys of LIRF's messages, shared by the server (server/lirf.py) and the
owner node (clients/lirf_owner.py). Payloads are protos (DepositRequest,
DepositReceipt, WithdrawRequest) under these ConfigRecord keys; the membership
audit's figures are plain lists and numbers.

    phase             request                              reply
    deposit           T_0 arrays, DEPOSIT_REQUEST          T's "shallow.*", MODULE_SHA256,
                                                           DEPOSIT_CLASSES, metrics
    deposit-commit    RECEIPT                              "committed"
    withdraw-request  DEPOSIT_ID                           WITHDRAW_REQUEST
    withdraw          RECEIPT                              T_r as "deposit.*", MODULE_SHA256
    withdraw-commit   RECEIPT                              "released"
    lirf-audit        model arrays, DEPOSIT_REQUEST,       DEPOSIT_CLASSES; metrics MIA_AUC,
                      NONMEMBER_LOSSES, NONMEMBER_LABELS   ROC_FPR, ROC_TPR, DEPOSIT_ACCURACY,
                                                           "num-examples"

lirf-audit: the non-members are the server's own test examples (losses of the audited
model, with their labels, so that the owner can keep those of its deposit classes);
the owner computes its members' losses on D_r and replies with the AUC and at most
MAX_ROC_POINTS points of the ROC curve, never a per-sample value of D_r.
"""

DEPOSIT_REQUEST = "deposit-request"
RECEIPT = "receipt"
DEPOSIT_ID = "deposit-id"
WITHDRAW_REQUEST = "withdraw-request"
MODULE_SHA256 = "module-sha256"
DEPOSIT_CLASSES = "deposit-classes"

NONMEMBER_LOSSES = "nonmember-losses"  # ConfigRecord list[float], the server's test set
NONMEMBER_LABELS = "nonmember-labels"  # ConfigRecord list[int], aligned with the losses
MIA_AUC = "mia-auc"  # MetricRecord float in [0, 1]
ROC_FPR = "mia-roc-fpr"  # MetricRecord list[float], non-decreasing, in [0, 1]
ROC_TPR = "mia-roc-tpr"  # MetricRecord list[float], aligned with ROC_FPR
DEPOSIT_ACCURACY = "deposit-accuracy"  # MetricRecord float in [0, 1]
MAX_ROC_POINTS = 64  # far fewer than |D_r|: the curve cannot list the members one by one
