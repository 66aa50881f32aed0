"""The node's index: SQLite in WAL mode. `events` is the record of what the chain said; every other table is
derived from it by `apply` and can be rebuilt from it (after a reorg, or on `twinledger node reindex`)."""

from __future__ import annotations

import fcntl
import os
import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from twinledger_node.private import private_sqlite

SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS blocks (number INTEGER PRIMARY KEY, hash TEXT NOT NULL, timestamp INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS events (
    block_number INTEGER NOT NULL, log_index INTEGER NOT NULL, block_hash TEXT NOT NULL, tx_hash TEXT NOT NULL,
    address TEXT NOT NULL, name TEXT NOT NULL, twin_id INTEGER, args TEXT NOT NULL,
    PRIMARY KEY (block_number, log_index)
);
CREATE INDEX IF NOT EXISTS events_by_twin ON events (twin_id, block_number, log_index);
CREATE TABLE IF NOT EXISTS twins (
    twin_id INTEGER PRIMARY KEY, owner TEXT NOT NULL, parent_id INTEGER NOT NULL, kind INTEGER NOT NULL,
    metadata_digest TEXT NOT NULL, device_did TEXT NOT NULL, device_did_hash TEXT NOT NULL,
    head_seq INTEGER NOT NULL, registered_block INTEGER NOT NULL, period INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS twins_by_owner ON twins (owner);
CREATE INDEX IF NOT EXISTS twins_by_device ON twins (device_did_hash);
CREATE TABLE IF NOT EXISTS grants (
    twin_id INTEGER NOT NULL, did_hash TEXT NOT NULL, purpose TEXT NOT NULL, grantor TEXT NOT NULL,
    scopes INTEGER NOT NULL, expiry INTEGER NOT NULL, granted_at INTEGER NOT NULL, did TEXT NOT NULL,
    block_number INTEGER NOT NULL, tx_hash TEXT NOT NULL, revoked_block INTEGER, revoked_tx TEXT,
    period INTEGER NOT NULL, PRIMARY KEY (twin_id, did_hash, purpose)
);
CREATE INDEX IF NOT EXISTS grants_by_did ON grants (did_hash);
CREATE TABLE IF NOT EXISTS operators (owner TEXT NOT NULL, operator TEXT NOT NULL, PRIMARY KEY (owner, operator));
CREATE TABLE IF NOT EXISTS token_approvals (twin_id INTEGER PRIMARY KEY, approved TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS nonces (owner TEXT PRIMARY KEY, next INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS batches (
    root TEXT NOT NULL, kind INTEGER NOT NULL, anchorer TEXT NOT NULL, count INTEGER NOT NULL,
    leaves_cid TEXT NOT NULL, block_number INTEGER NOT NULL, tx_hash TEXT NOT NULL,
    PRIMARY KEY (anchorer, root)
);
CREATE TABLE IF NOT EXISTS snapshot_anchors (
    twin_id INTEGER NOT NULL, seq INTEGER NOT NULL, manifest_digest TEXT NOT NULL, anchorer TEXT NOT NULL,
    block_number INTEGER NOT NULL, tx_hash TEXT NOT NULL, log_index INTEGER NOT NULL, PRIMARY KEY (twin_id, seq)
);
CREATE TABLE IF NOT EXISTS tasks (
    task_id INTEGER PRIMARY KEY, aggregator TEXT NOT NULL, aggregator_did TEXT NOT NULL, purpose TEXT NOT NULL,
    initial_model_digest TEXT NOT NULL, open_round INTEGER NOT NULL, closed INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS model_updates (
    task_id INTEGER NOT NULL, round INTEGER NOT NULL, twin_id INTEGER NOT NULL, committer TEXT NOT NULL,
    update_digest TEXT NOT NULL, num_samples INTEGER NOT NULL, block_number INTEGER NOT NULL,
    tx_hash TEXT NOT NULL, log_index INTEGER NOT NULL, PRIMARY KEY (task_id, round, twin_id)
);
CREATE TABLE IF NOT EXISTS checkpoints (
    task_id INTEGER NOT NULL, round INTEGER NOT NULL, model_digest TEXT NOT NULL, updates_root TEXT NOT NULL,
    count INTEGER NOT NULL, total_samples INTEGER NOT NULL, block_number INTEGER NOT NULL, tx_hash TEXT NOT NULL,
    PRIMARY KEY (task_id, round)
);
"""

# Tables derived from `events`; cleared and replayed on a reorg or reindex.
DERIVED = (
    "twins", "grants", "operators", "token_approvals", "nonces", "batches", "snapshot_anchors", "tasks",
    "model_updates", "checkpoints",
)  # fmt: skip


class Database:
    """One SQLite file in WAL mode; a connection per thread (sqlite3 connections must not cross threads)."""

    def __init__(self, path: Path, schema: str) -> None:
        self.path = private_sqlite(Path(path))
        self._local = threading.local()
        self.connection().executescript(schema)  # executescript commits by itself

    def connection(self) -> sqlite3.Connection:
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            conn = sqlite3.connect(self.path, timeout=30, isolation_level=None, check_same_thread=True)
            conn.row_factory = sqlite3.Row
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=NORMAL")
            conn.execute("PRAGMA foreign_keys=ON")
            self._local.conn = conn
        return conn

    @contextmanager
    def write(self) -> Iterator[sqlite3.Connection]:
        """A write transaction: all or nothing."""
        conn = self.connection()
        with self.writer():
            conn.execute("BEGIN IMMEDIATE")
            try:
                yield conn
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            conn.execute("COMMIT")

    @contextmanager
    def writer(self) -> Iterator[None]:
        """Hold the file's writer queue around a write transaction. Writers in several processes (the API processes'
        group commits, the anchor worker) contend for one SQLite file, and SQLite's busy handler waits by polling
        with sleeps that grow to 100 ms: a second API process made reads slower, not faster. An flock queues the
        writers in the kernel and wakes the next one as soon as the lock is released. SQLite's own lock stays the
        authority; this only orders who asks for it."""
        fd: int | None = getattr(self._local, "writer_fd", None)
        if fd is None:
            fd = os.open(f"{self.path}.writers", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
            self._local.writer_fd = fd
        fcntl.flock(fd, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)

    def get_meta(self, key: str, default: str | None = None) -> str | None:
        row = self.connection().execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return str(row["value"]) if row else default

    def close(self) -> None:
        conn = getattr(self._local, "conn", None)
        if conn is not None:
            conn.close()
            self._local.conn = None
        fd = getattr(self._local, "writer_fd", None)
        if fd is not None:
            os.close(fd)
            self._local.writer_fd = None


class IndexDB(Database):
    """The chain index."""

    def __init__(self, path: Path) -> None:
        super().__init__(path, SCHEMA)


def set_meta(conn: sqlite3.Connection, key: str, value: object) -> None:
    conn.execute("INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value",
                 (key, str(value)))  # fmt: skip
