"""The node as a federated aggregator: its chain account commits and checkpoints, its did:key is the aggregator DID
(so updates can be encrypted to it), its block store holds the updates and models, and its catalog lives in the
data directory (`<data>/fl`)."""

from __future__ import annotations

import sqlite3
from typing import Any

from twinledger.federated import Aggregator, DirectoryCatalog, Participant, Verifier
from twinledger.federated.context import FederatedContext
from twinledger_node.runtime import NodeRuntime


class FederatedService:
    def __init__(self, rt: NodeRuntime) -> None:
        self.rt = rt
        self.catalog = DirectoryCatalog(rt.settings.data_dir / "fl", rt.client.chain_id, rt.federated.address)
        parts = (rt.federated, rt.ledger, rt.store, self.catalog)
        self.aggregator = Aggregator(*parts)
        self.aggregator.key = rt.node_key
        self.participant = Participant(*parts)
        self.verifier = Verifier(*parts)
        self.verifier.key = rt.node_key

    @property
    def context(self) -> FederatedContext:
        return self.verifier

    def round_status(self, task_id: int, round_: int) -> dict[str, Any] | None:
        """The round as the index sees it: commits, checkpoint, and the round record's exclusions."""
        db = self.rt.index.connection()
        task: sqlite3.Row | None = db.execute("SELECT * FROM tasks WHERE task_id = ?", (task_id,)).fetchone()
        if task is None:
            return None
        updates = db.execute(
            "SELECT twin_id, update_digest, num_samples, block_number, tx_hash FROM model_updates "
            "WHERE task_id = ? AND round = ? ORDER BY twin_id",
            (task_id, round_),
        ).fetchall()
        checkpoint = db.execute(
            "SELECT * FROM checkpoints WHERE task_id = ? AND round = ?", (task_id, round_)
        ).fetchone()
        if checkpoint is not None:
            state = "checkpointed"
        elif round_ == task["open_round"] and not task["closed"]:
            state = "open"
        else:
            state = "closed" if task["closed"] else "future"
        record_cid = self.catalog.round(task_id, round_)
        excluded: list[dict[str, Any]] = []
        if record_cid is not None:
            _, record = self.context.round_record(task_id, round_)
            excluded = [{"twinId": e.twin_id, "reason": e.reason} for e in record.excluded]
        return {
            "taskId": task_id,
            "round": round_,
            "state": state,
            "openRound": task["open_round"],
            "aggregatorDid": task["aggregator_did"],
            "updates": [
                {
                    "twinId": u["twin_id"],
                    "digest": _hex(u["update_digest"]),
                    "numSamples": u["num_samples"],
                    "block": u["block_number"],
                    "tx": u["tx_hash"],
                }
                for u in updates
            ],
            "checkpoint": None
            if checkpoint is None
            else {
                "modelDigest": _hex(checkpoint["model_digest"]),
                "updatesRoot": _hex(checkpoint["updates_root"]),
                "count": checkpoint["count"],
                "totalSamples": checkpoint["total_samples"],
                "block": checkpoint["block_number"],
                "tx": checkpoint["tx_hash"],
            },
            "roundRecord": None if record_cid is None else str(record_cid),
            "excluded": excluded,
        }


def _hex(value: Any) -> str:
    if isinstance(value, bytes):
        return "0x" + value.hex()
    return str(value)
