"""The embedded block store's pins in the node's state database on PostgreSQL (replicas share one block store
directory and one database): the `pins` table of the state schema, written in each snapshot's group commit as on
SQLite, where the pins are a table of state.sqlite."""

from __future__ import annotations

from typing import Any

from twinledger.ipfs.pins import PinIndex
from twinledger.ipfs.store import REMOTE_PINS
from twinledger_node.db.database import Database


class DatabasePins(PinIndex):
    def __init__(self, database: Database) -> None:  # no super().__init__: the state's migrations made the table
        self.database = database
        self.path = database.path  # type: ignore[assignment]  # None: no file of its own

    def connection(self) -> Any:
        return self.database.connection()

    def location(self) -> str:
        if self.database.url is None:
            return super().location()
        from twinledger_node.db.postgres import describe

        return f"{REMOTE_PINS}postgresql {describe(self.database.url)}"  # never the password


def pins_live_in(pins: PinIndex, database: Database) -> bool:
    """Whether `pins` is the `pins` table of `database` (so pins can commit in its transactions)."""
    if isinstance(pins, DatabasePins):
        return pins.database is database
    return database.path is not None and pins.path == database.path
