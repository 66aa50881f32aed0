"""Small blocks as rows of one SQLite table (``blocks.sqlite`` in the block store root), not one file each.

A node writes many blocks of a kilobyte or two: every access receipt is a block of its batch, every 1 KiB snapshot
a manifest and a ciphertext leaf. As files, each costs an inode allocation, a directory entry and a rename, and on
this project's machines the kernel's inode search was most of the anchor worker's CPU (perf: ``ext4_create`` →
``find_inode_bit`` → ``recently_deleted``). SQLite stores blobs of this size faster than the filesystem does
(sqlite.org/fasterthanfs.html), and a whole batch of them is one transaction with one fsync.

Blocks up to :data:`PACKED_BLOCK_BYTES` live here; larger ones stay files (blocks/). A block is in one or the other,
the store looks in both, and every read is checked against its CID whichever holds it.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable, Iterator
from pathlib import Path

from twinledger.ipfs.sqlite import ThreadConnections

PACKED_BLOCK_BYTES = 16 * 1024
SCHEMA = "CREATE TABLE IF NOT EXISTS blocks (key TEXT PRIMARY KEY, data BLOB NOT NULL) WITHOUT ROWID"


class PackedBlocks(ThreadConnections):
    """The small blocks of a store, by key (base32 of the multihash, as the files' names); durable before whatever
    names them commits."""

    def __init__(self, path: Path) -> None:
        super().__init__(path, SCHEMA)

    def get(self, key: str) -> bytes | None:
        row = self.connection().execute("SELECT data FROM blocks WHERE key = ?", (key,)).fetchone()
        return None if row is None else bytes(row[0])

    def has(self, key: str) -> bool:
        return self.connection().execute("SELECT 1 FROM blocks WHERE key = ?", (key,)).fetchone() is not None

    def size(self, key: str) -> int | None:
        row = self.connection().execute("SELECT length(data) FROM blocks WHERE key = ?", (key,)).fetchone()
        return None if row is None else int(row[0])

    def put(self, rows: Iterable[tuple[str, bytes]]) -> None:
        """Write `rows` in one transaction, on disk when this returns (an `OSError` if it could not be written:
        then none of them is)."""
        conn = self.connection()
        try:
            with conn:  # BEGIN … COMMIT, ROLLBACK on error
                conn.execute("BEGIN IMMEDIATE")
                conn.executemany("INSERT OR IGNORE INTO blocks (key, data) VALUES (?, ?)", rows)
        except sqlite3.OperationalError as error:  # disk full, I/O error: what the file path raises as OSError
            raise OSError(f"{self.path}: {error}") from error

    def delete(self, keys: Iterable[str]) -> int:
        conn = self.connection()
        with conn:
            conn.execute("BEGIN IMMEDIATE")
            return sum(conn.execute("DELETE FROM blocks WHERE key = ?", (key,)).rowcount for key in keys)

    def stored_keys(self) -> Iterator[str]:
        for (key,) in self.connection().execute("SELECT key FROM blocks ORDER BY key"):
            yield str(key)

    def replace_raw(self, key: str, data: bytes) -> bool:
        """Overwrite a stored row without any check: how tests simulate a corrupt store. False when absent."""
        conn = self.connection()
        with conn:
            conn.execute("BEGIN IMMEDIATE")
            return conn.execute("UPDATE blocks SET data = ? WHERE key = ?", (data, key)).rowcount > 0
