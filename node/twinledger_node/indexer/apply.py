"""How each contract event changes the derived tables. The same function serves live indexing and replay."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from twinledger_node.db.base import Connection
from twinledger_node.db.statements import upsert

ZERO_ADDRESS = "0x0000000000000000000000000000000000000000"

Row = dict[str, Any]


def hexs(value: Any) -> str:
    return "0x" + bytes(value).hex() if isinstance(value, bytes | bytearray) else str(value)


def encode_args(args: dict[str, Any]) -> str:
    return json.dumps({k: hexs(v) if isinstance(v, bytes | bytearray) else v for k, v in args.items()}, sort_keys=True)


def _registered(db: Connection, a: Row, ev: Row) -> None:
    db.execute(
        upsert("twins", ("twin_id", "owner", "parent_id", "kind", "metadata_digest", "device_did", "device_did_hash",
                         "head_seq", "registered_block", "period"), ("twin_id",)),
        (a["twinId"], a["owner"], a["parentId"], a["kind"], a["metadataDigest"], a["deviceDid"],
         a["deviceDidHash"], 0, ev["block_number"], 0),
    )  # fmt: skip


def _transfer(db: Connection, a: Row, ev: Row) -> None:
    if a["from"] == ZERO_ADDRESS:
        return  # the mint: TwinRegistered (same transaction, next log) creates the row, in period 0
    # Every transfer starts a new ownership period, as TwinRegistry counts them: grants and snapshots of the period
    # that ends stay in it, also if the twin comes back.
    db.execute("UPDATE twins SET owner = ?, period = period + 1 WHERE twin_id = ?", (a["to"], a["tokenId"]))
    db.execute("DELETE FROM token_approvals WHERE twin_id = ?", (a["tokenId"],))


def _approval(db: Connection, a: Row, ev: Row) -> None:
    if a["approved"] == ZERO_ADDRESS:
        db.execute("DELETE FROM token_approvals WHERE twin_id = ?", (a["tokenId"],))
    else:
        db.execute(upsert("token_approvals", ("twin_id", "approved"), ("twin_id",)), (a["tokenId"], a["approved"]))


def _approval_for_all(db: Connection, a: Row, ev: Row) -> None:
    if a["approved"]:
        db.execute("INSERT INTO operators (owner, operator) VALUES (?, ?) ON CONFLICT DO NOTHING",
                   (a["owner"], a["operator"]))  # fmt: skip
    else:
        db.execute("DELETE FROM operators WHERE owner = ? AND operator = ?", (a["owner"], a["operator"]))


def _device(db: Connection, a: Row, ev: Row) -> None:
    db.execute("UPDATE twins SET device_did = ?, device_did_hash = ? WHERE twin_id = ?",
               (a["deviceDid"], a["deviceDidHash"], a["twinId"]))  # fmt: skip


def _parent(db: Connection, a: Row, ev: Row) -> None:
    db.execute("UPDATE twins SET parent_id = ? WHERE twin_id = ?", (a["newParentId"], a["twinId"]))


def _snapshot(db: Connection, a: Row, ev: Row) -> None:
    db.execute(upsert("snapshot_anchors", ("twin_id", "seq", "manifest_digest", "anchorer", "block_number", "tx_hash",
                                           "log_index"), ("twin_id", "seq")),
               (a["twinId"], a["seq"], a["manifestDigest"], a["anchorer"], ev["block_number"], ev["tx_hash"],
                ev["log_index"]))  # fmt: skip
    db.execute("UPDATE twins SET head_seq = ? WHERE twin_id = ? AND head_seq < ?", (a["seq"], a["twinId"], a["seq"]))


def _batch(db: Connection, a: Row, ev: Row) -> None:
    db.execute(upsert("batches", ("root", "kind", "anchorer", "count", "leaves_cid", "block_number", "tx_hash"),
                      ("anchorer", "root")),
               (a["root"], a["kind"], a["anchorer"], a["count"], a["leavesCid"], ev["block_number"],
                ev["tx_hash"]))  # fmt: skip


def _granted(db: Connection, a: Row, ev: Row) -> None:
    # Grantor and ownership period are not in the event (they cost gas): they are the twin's owner and period at
    # this log, which the index knows.
    twin = db.execute("SELECT owner, period FROM twins WHERE twin_id = ?", (a["twinId"],)).fetchone()
    db.execute(
        upsert("grants", ("twin_id", "did_hash", "purpose", "grantor", "scopes", "expiry", "granted_at", "did",
                          "block_number", "tx_hash", "revoked_block", "revoked_tx", "period"),
               ("twin_id", "did_hash", "purpose")),
        (a["twinId"], a["didHash"], a["purpose"], twin["owner"] if twin else ZERO_ADDRESS, a["scopes"],
         a["expiry"], ev["timestamp"], a["did"], ev["block_number"], ev["tx_hash"], None, None,
         twin["period"] if twin else -1),
    )  # fmt: skip


def _revoked(db: Connection, a: Row, ev: Row) -> None:
    # Kept, marked revoked, so a refused read can say "revoked" rather than "no grant".
    db.execute("UPDATE grants SET revoked_block = ?, revoked_tx = ? WHERE twin_id = ? AND did_hash = ? AND purpose = ?",
               (ev["block_number"], ev["tx_hash"], a["twinId"], a["didHash"], a["purpose"]))  # fmt: skip


def _task(db: Connection, a: Row, ev: Row) -> None:
    db.execute(upsert("tasks", ("task_id", "aggregator", "aggregator_did", "purpose", "initial_model_digest",
                                "open_round", "closed"), ("task_id",)),
               (a["taskId"], a["aggregator"], a["aggregatorDid"], a["purpose"], a["initialModelDigest"],
                1, 0))  # fmt: skip


def _update(db: Connection, a: Row, ev: Row) -> None:
    # A later commit of the same twin in the same round supersedes the earlier one.
    db.execute(upsert("model_updates", ("task_id", "round", "twin_id", "committer", "update_digest", "num_samples",
                                        "block_number", "tx_hash", "log_index"), ("task_id", "round", "twin_id")),
               (a["taskId"], a["round"], a["twinId"], a["committer"], a["updateDigest"], a["numSamples"],
                ev["block_number"], ev["tx_hash"], ev["log_index"]))  # fmt: skip


def _checkpoint(db: Connection, a: Row, ev: Row) -> None:
    db.execute(upsert("checkpoints", ("task_id", "round", "model_digest", "updates_root", "count", "total_samples",
                                      "block_number", "tx_hash"), ("task_id", "round")),
               (a["taskId"], a["round"], a["modelDigest"], a["updatesRoot"], a["count"], a["totalSamples"],
                ev["block_number"], ev["tx_hash"]))  # fmt: skip
    db.execute("UPDATE tasks SET open_round = ? WHERE task_id = ?", (a["round"] + 1, a["taskId"]))


def _task_closed(db: Connection, a: Row, ev: Row) -> None:
    db.execute("UPDATE tasks SET closed = 1 WHERE task_id = ?", (a["taskId"],))


APPLY: dict[str, Callable[[Connection, Row, Row], None]] = {
    "TwinRegistered": _registered,
    "Transfer": _transfer,
    "Approval": _approval,
    "ApprovalForAll": _approval_for_all,
    "DeviceBound": _device,
    "ParentChanged": _parent,
    "SnapshotAnchored": _snapshot,
    "BatchAnchored": _batch,
    "Granted": _granted,
    "Revoked": _revoked,
    "TaskCreated": _task,
    "UpdateCommitted": _update,
    "RoundCheckpointed": _checkpoint,
    "TaskClosed": _task_closed,
}


def twin_of_event(name: str, args: Row) -> int | None:
    """The twin an event is about (for the audit trail), if any."""
    for key in ("twinId", "tokenId"):
        if key in args:
            return int(args[key])
    return None


def apply(db: Connection, event: Row) -> None:
    """Apply one stored event row (args decoded from JSON, bytes as 0x-hex) to the derived tables."""
    handler = APPLY.get(event["name"])
    if handler is not None:
        handler(db, event["args"], event)
