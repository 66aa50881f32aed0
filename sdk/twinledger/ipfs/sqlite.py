"""The block store's SQLite files (pins, packed blocks): one connection per thread, WAL, durable commits."""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path


class ThreadConnections:
    """A connection per thread to one SQLite file (sqlite3 connections must stay in their thread); every commit is
    on disk when it returns (`synchronous=FULL`): what it holds is acknowledged, or named, by what commits next."""

    def __init__(self, path: Path, schema: str) -> None:
        self.path = Path(path)
        self._local = threading.local()
        self.connection().execute(schema)

    def connection(self) -> sqlite3.Connection:
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            conn = sqlite3.connect(self.path, timeout=30, isolation_level=None)
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=FULL")
            self._local.conn = conn
        return conn
