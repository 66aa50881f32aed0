"""The node's index (a SQLite file, or a schema of the operators' PostgreSQL database). `events` is the record of
what the chain said; every other table is derived from it by `apply` and can be rebuilt from it (after a reorg, or
on `twinledger node reindex`)."""

from __future__ import annotations

from pathlib import Path

from twinledger_node.db.base import Connection
from twinledger_node.db.database import Database

# Tables derived from `events`; cleared and replayed on a reorg or reindex.
DERIVED = (
    "twins", "grants", "operators", "token_approvals", "nonces", "batches", "snapshot_anchors", "tasks",
    "model_updates", "checkpoints",
)  # fmt: skip


class IndexDB(Database):
    """The chain index."""

    def __init__(self, location: Path | str) -> None:
        super().__init__(location, "index")


def set_meta(conn: Connection, key: str, value: object) -> None:
    conn.execute("INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value",
                 (key, str(value)))  # fmt: skip
