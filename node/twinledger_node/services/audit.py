"""A twin's audit trail: what the chain says happened to it and what this node did with it (reads served and
refused), each with its proof."""

from __future__ import annotations

import json
from typing import Any

from twinledger.provenance import DENIAL_TYPE
from twinledger_node.indexer.db import IndexDB
from twinledger_node.state import NodeState

# Chain events worth showing an auditor, with the kind of entry they make.
CHAIN_KINDS = {
    "TwinRegistered": "registered", "Transfer": "ownership", "DeviceBound": "device", "ParentChanged": "parent",
    "Granted": "grant", "Revoked": "revocation", "SnapshotAnchored": "snapshot-anchor",
    "UpdateCommitted": "federated-use", "Approval": "approval",
}  # fmt: skip


def audit_trail(
    index: IndexDB, state: NodeState, twin_id: int, *, plaintext_facts: bool, after: int = 0, limit: int = 100
) -> dict[str, Any]:
    """Entries ordered by time (chain block time for chain events, the node's clock for its own records).

    A snapshot entry names the snapshot (sequence number, manifest CID), its producer and its anchor proof; its
    plaintext's sha256 and size and its ciphertext's CID only with `plaintext_facts` (see `sees_plaintext_facts`).
    `after` and the returned `next` are opaque positions in that order, for pagination.
    """
    entries: list[dict[str, Any]] = []
    for row in index.connection().execute(
        "SELECT e.*, b.timestamp FROM events e JOIN blocks b ON b.number = e.block_number "
        "WHERE e.twin_id = ? ORDER BY e.block_number, e.log_index",
        (twin_id,),
    ):
        kind = CHAIN_KINDS.get(row["name"])
        if kind is None:
            continue
        entries.append({
            "kind": kind, "event": row["name"], "time": row["timestamp"], "data": json.loads(row["args"]),
            "proof": {"chain": "event", "txHash": row["tx_hash"], "blockNumber": row["block_number"],
                      "blockHash": row["block_hash"], "logIndex": row["log_index"], "contract": row["address"]},
        })  # fmt: skip
    db = state.connection()
    for row in db.execute("SELECT * FROM snapshots WHERE twin_id = ? ORDER BY seq", (twin_id,)):
        data = {"seq": row["seq"], "manifestCid": row["manifest_cid"], "producer": row["producer"]}
        if plaintext_facts:
            data |= {"contentCid": row["content_cid"], "size": row["size"], "sha256": row["sha256"]}
        entries.append({
            "kind": "snapshot", "time": row["created"], "data": data,
            "proof": _batch_proof(row, "manifestDigest", row["manifest_digest"]),
        })  # fmt: skip
    for row in db.execute("SELECT * FROM receipts WHERE twin_id = ? ORDER BY twin_id, id", (twin_id,)):
        body = json.loads(row["body"])
        if body.get("type") == DENIAL_TYPE:  # a refused read, in the same chain (services/denials.py)
            entries.append({"kind": "denial", "time": row["created"], "data": denial_facts(body),
                            "proof": _batch_proof(row, "receiptDigest", row["digest"])})  # fmt: skip
            continue
        entries.append({
            "kind": "read", "time": row["created"],
            "data": {"seq": row["seq"], "reader": row["reader"], "purpose": row["purpose"], "receipt": body},
            "proof": _batch_proof(row, "receiptDigest", row["digest"]),
        })  # fmt: skip
    entries.sort(key=lambda e: e["time"])  # stable: chain events keep block and log order within a second
    page = entries[after : after + limit]
    return {"twinId": twin_id, "entries": page, "next": after + len(page) if after + len(page) < len(entries) else None}


def denial_facts(record: dict[str, Any]) -> dict[str, Any]:
    """Who was refused (None: the twin-wide count of many DIDs), how many times (1 for a record of its own), for
    which purposes and why, in which minute (a count's), and the signed record itself."""
    one = "count" not in record
    return {
        "requester": record.get("requester"), "count": 1 if one else record["count"],
        "purposes": [record["purpose"]] if one else record.get("purposes", []),
        "reasons": {record["reason"]: 1} if one else record.get("reasons", {}),
        "window": record.get("window"), "record": record,
    }  # fmt: skip


def _batch_proof(row: Any, digest_name: str, digest: str) -> dict[str, Any]:
    return {
        "chain": "merkle-batch", digest_name: digest, "batchRoot": row["batch_root"],
        "merkleProof": json.loads(row["proof"]) if row["proof"] else None,
        "txHash": row["anchor_tx"], "blockNumber": row["anchor_block"],
        "status": "anchored" if row["anchor_tx"] else ("batched" if row["batch_root"] else "pending"),
    }  # fmt: skip
