"""summary.json of a LIRF run (server/lirf.py): the figures of each model, the receipt,
the timings and work counts, the module's sizes and whether it ever reached the server."""

from __future__ import annotations

from typing import Any

from methods.lirf.arch import split_name
from protos import fedvault_pb2 as pb
from server.lirf_retrain import HISTORY

MODELS = ("original", "target", "recovered", "retrain")
CURVE = "mia_roc"  # [[fpr, tpr], ...] of a model: in summary.json, not a metrics.jsonl figure


def run_summary(lirf: dict[str, Any], cfg, receipt: pb.DepositReceipt | None) -> dict[str, Any]:
    """`lirf`: the workflow's checkpointed state; `cfg`: the run's LIRFConfig."""
    models = {m: {k: v for k, v in lirf[m].items() if k not in ("mia_auc", CURVE)}
              for m in MODELS if m in lirf}
    final = models.get("recovered") or models.get("target") or {}
    dense, sparse = lirf.get("module_bytes", (None, None))
    return {
        **models,
        "accuracy": final.get("avg_acc"),
        "level": cfg.level, "arch": cfg.arch, "split_after": split_name(cfg),
        "validation": lirf.get("validation", {}),
        "mia_auc": {m: lirf[m]["mia_auc"] for m in MODELS if m in lirf},
        CURVE: {m: lirf[m][CURVE] for m in MODELS if CURVE in lirf.get(m, {})},
        "phase0_seconds": lirf.get("phase0_seconds"),
        "deposit_seconds": lirf.get("deposit_seconds"),
        "deposit_sample_steps": lirf.get("deposit_sample_steps"),
        "retrain_seconds": lirf.get("retrain_seconds"),
        HISTORY: lirf.get(HISTORY, []),
        "deposit_module_bytes_dense": dense, "deposit_module_bytes_sparse": sparse,
        "deposit_module_on_server": receipt is not None and any(
            r["deposit_keys"] or receipt.module_sha256 in r["digests"] for r in lirf["received"]),
        "receipt": None if receipt is None else {
            "deposit_id": receipt.deposit_id, "owner_node_id": receipt.owner_node_id,
            "classes": list(receipt.classes), "num_sample_ids": len(receipt.sample_ids),
            "module_sha256": receipt.module_sha256, "status": lirf["receipt_status"],
            "owner_public_key": lirf.get("owner_public_key"),
            "withdrawn_by_node_id": lirf.get("withdrawn_by")},
        "withdraw_refusals": lirf["refusals"],
        "deposit_report": lirf.get("deposit_report"),
    }
