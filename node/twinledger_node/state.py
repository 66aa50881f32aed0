"""What only this node knows (never rebuilt from the chain): snapshots it stored, reads it served, the batches
it anchored, owners' recovery keys, who opened each federated task here and the gas spent for each DID. Kept apart
from the index, which `node reindex` may wipe (SQLite, or a schema of the operators' PostgreSQL database)."""

from __future__ import annotations

from pathlib import Path

from twinledger_node.db.database import Database


class NodeState(Database):
    def __init__(self, location: Path | str) -> None:
        super().__init__(location, "state")
