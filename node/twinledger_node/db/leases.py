"""Locks held through the database, so that they hold across every process and replica that shares it.

A lease is held by a process until it releases it or dies: the kernel drops an flock with the process's file
descriptor, PostgreSQL drops a session's advisory lock with the session (a SIGKILLed replica's socket closes, so at
once; a replica cut off by the network, once its TCP connection times out). Two uses:

- leadership: one replica's background process is the indexer's writer and the anchor worker; the others wait,
  and one of them takes over within a poll interval of the leader's death (`workers._run_background`);
- the send lock: replicas send with the node's one account, each taking the nonce from the chain's pending count.

On SQLite the lock is an flock on a file beside the database (replicas of a SQLite node share one machine); on
PostgreSQL a session-level advisory lock on a connection of its own (psycopg's pool would hand the session, and
with it the lock, to other code).
"""

from __future__ import annotations

import fcntl
import os
import threading
import zlib
from pathlib import Path
from types import TracebackType
from typing import Any, Protocol


class Lease(Protocol):
    def acquire(self, *, wait: bool) -> bool:
        """Take the lease (blocking with `wait`); whether this process holds it now."""

    def held(self) -> bool:
        """Whether this process still holds the lease (a PostgreSQL session may have been lost)."""

    def release(self) -> None: ...


def lease_key(name: str) -> int:
    """The advisory lock key of the lease `name` (signed 64-bit, as PostgreSQL takes it)."""
    return zlib.crc32(f"twinledger.lease.{name}".encode())


class FileLease:
    def __init__(self, path: Path) -> None:
        self.path = path
        self._fd: int | None = None
        self._held = False

    def acquire(self, *, wait: bool) -> bool:
        if self._fd is None:
            self._fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(self._fd, fcntl.LOCK_EX if wait else fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return False
        self._held = True
        return True

    def held(self) -> bool:
        return self._held  # an flock is lost only with the process

    def release(self) -> None:
        if self._fd is not None and self._held:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
        self._held = False


class PostgresLease:
    def __init__(self, url: str, name: str) -> None:
        self.url, self.name, self.key = url, name, lease_key(name)
        self._conn: Any = None
        self._held = False

    def _session(self) -> Any:
        from twinledger_node.db.postgres import connect

        if self._conn is None or self._conn.closed or self._conn.broken:
            # named with the process, so an operator (or a test) sees in pg_stat_activity which process holds it
            self._conn = connect(self.url, application_name=f"twinledger {self.name} lease, pid {os.getpid()}")
            self._held = False
        return self._conn

    def acquire(self, *, wait: bool) -> bool:
        from twinledger_node.db.postgres import db_api_errors

        with db_api_errors():
            if wait:
                self._session().execute("SELECT pg_advisory_lock(%s)", (self.key,))
                self._held = True
            else:
                row = self._session().execute("SELECT pg_try_advisory_lock(%s)", (self.key,)).fetchone()
                self._held = bool(row[0])
        return self._held

    def held(self) -> bool:
        """A session-level advisory lock lasts as long as its session: the lease is held while the session answers."""
        if not self._held or self._conn is None or self._conn.closed:
            return False
        try:
            self._conn.execute("SELECT 1")
        except Exception:  # the session is gone, and the lock with it: another replica may hold it now
            self._held = False
            self._conn.close()
        return self._held

    def release(self) -> None:
        if self._held and self._conn is not None and not self._conn.broken:
            try:
                self._conn.execute("SELECT pg_advisory_unlock(%s)", (self.key,))
            except Exception:  # the session died: the server dropped the lock with it
                self._conn.close()
        self._held = False


class LeaseLock:
    """A lease as a context manager shared by the threads of this process: the threads queue on a thread lock,
    the processes and replicas on the lease."""

    def __init__(self, lease: Lease) -> None:
        self.lease = lease
        self._thread_lock = threading.Lock()

    def __enter__(self) -> LeaseLock:
        self._thread_lock.acquire()
        try:
            self.lease.acquire(wait=True)
        except BaseException:
            self._thread_lock.release()
            raise
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None, tb: TracebackType | None) -> None:
        try:
            self.lease.release()
        finally:
            self._thread_lock.release()
