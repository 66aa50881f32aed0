"""A node database as one SQLite file in WAL mode (the embedded default)."""

from __future__ import annotations

import contextlib
import fcntl
import os
import sqlite3
import threading
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path

from twinledger_node.db.migrations import migrate_sqlite
from twinledger_node.private import private_sqlite


class SQLiteEngine:
    """A connection per thread (sqlite3 connections must not cross threads) to one file, created private."""

    url = None

    def __init__(self, path: Path, database: str) -> None:
        """Open (creating if needed) the file and bring it to the newest schema of `database` (db/migrations)."""
        self.path = private_sqlite(Path(path))
        self._local = threading.local()
        self.schema_version = migrate_sqlite(self.connection(), database, self.writer)

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

    def durable_connection(self) -> sqlite3.Connection:
        conn = self.connection()
        if getattr(self._local, "durable", None) is not conn:
            conn.execute("PRAGMA synchronous=FULL")  # WAL with NORMAL syncs at checkpoints only
            self._local.durable = conn
        return conn

    def pipeline(self, conn: sqlite3.Connection) -> AbstractContextManager[None]:
        return contextlib.nullcontext()  # in-process: no round trips to save

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

    def close(self) -> None:
        conn = getattr(self._local, "conn", None)
        if conn is not None:
            conn.close()
            self._local.conn = None
        fd = getattr(self._local, "writer_fd", None)
        if fd is not None:
            os.close(fd)
            self._local.writer_fd = None
