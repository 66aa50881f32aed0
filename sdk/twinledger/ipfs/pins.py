"""Recursive pins as rows of one SQLite table (WAL), not a file rewritten on every pin.

A pin is one ``INSERT … ON CONFLICT DO NOTHING``, an unpin one ``DELETE``: the cost of pinning does not grow with
how many pins exist (a JSON file re-read and rewritten per pin made filling a store O(n²)). The table may live in
its own file (``pins.sqlite`` in the block store root, what the CLI's embedded store uses) or in a database the
caller already writes: the node keeps its pins in ``state.sqlite`` so that a snapshot's pins commit in the same
transaction as its row (:meth:`PinIndex.add` takes that transaction's connection). A crash then leaves either both
or neither, and start-up has nothing to reconcile.
"""

from __future__ import annotations

import json
import os
import sqlite3
from collections.abc import Iterable, Iterator
from pathlib import Path

from multiformats import CID

from twinledger.errors import IntegrityError
from twinledger.ipfs.cids import cid_text, parse_cid
from twinledger.ipfs.sqlite import ThreadConnections

SCHEMA = "CREATE TABLE IF NOT EXISTS pins (cid TEXT PRIMARY KEY) WITHOUT ROWID"


class PinIndex(ThreadConnections):
    """The recursive pins of a block store (a pin is acknowledged to the CLI user: on disk first)."""

    def __init__(self, path: Path) -> None:
        super().__init__(path, SCHEMA)

    def add(self, cids: Iterable[CID | str], conn: sqlite3.Connection | None = None) -> None:
        """Pin `cids`; inside the caller's open transaction when `conn` is given (committed with it), else at once."""
        rows = [(_text(cid),) for cid in cids]
        if conn is not None:
            conn.executemany("INSERT INTO pins (cid) VALUES (?) ON CONFLICT DO NOTHING", rows)
            return
        own = self.connection()
        own.execute("BEGIN IMMEDIATE")
        try:
            own.executemany("INSERT INTO pins (cid) VALUES (?) ON CONFLICT DO NOTHING", rows)
        except BaseException:
            own.execute("ROLLBACK")
            raise
        own.execute("COMMIT")

    def location(self) -> str:
        """Where the pins are, as a store's `pins-index` file names it: the SQLite file's absolute path."""
        return str(self.path.resolve())

    def remove(self, cid: CID | str) -> bool:
        """Unpin `cid`; False when it was not pinned."""
        return self.connection().execute("DELETE FROM pins WHERE cid = ?", (_text(cid),)).rowcount > 0

    def __contains__(self, cid: object) -> bool:
        if not isinstance(cid, CID | str):
            return False
        return self.connection().execute("SELECT 1 FROM pins WHERE cid = ?", (_text(cid),)).fetchone() is not None

    def __iter__(self) -> Iterator[CID]:
        """Every pin, in CID order; only gc and `pin ls` walk them all."""
        for (text,) in self.connection().execute("SELECT cid FROM pins ORDER BY cid"):
            yield parse_cid(text)

    def migrate_json(self, pins_file: Path) -> int:
        """Move the pins of an old ``pins.json`` into the table, once: the rows commit before the file goes, so a
        crash between the two only repeats an idempotent insert at the next open. Returns how many were moved."""
        try:
            raw = json.loads(pins_file.read_text())
        except FileNotFoundError:
            return 0
        except (OSError, ValueError) as error:
            raise IntegrityError(
                f"pin file {pins_file} is unreadable ({error})", hint="restore it from a backup, then open the store"
            ) from None
        cids = [parse_cid(text) for text in raw["recursive"]]
        self.add(cids)
        os.replace(pins_file, pins_file.with_name(pins_file.name + ".migrated"))
        return len(cids)


def _text(cid: CID | str) -> str:
    return cid if isinstance(cid, str) else cid_text(cid)
