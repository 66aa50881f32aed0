"""One of the node's databases (`index` or `state`) on the engine its location names: a path is a SQLite file (the
embedded default), a `postgresql://` URL a schema of that PostgreSQL database, shared by replicas."""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path
from typing import Any, TypeVar

from twinledger_node.db.base import Connection
from twinledger_node.db.leases import FileLease, Lease, PostgresLease

POSTGRES_SCHEMES = ("postgresql://", "postgres://")
# Threads (and so PostgreSQL sessions) per process for the queries of async routes: enough to keep the requests of a
# busy process in flight, few enough that replicas × API processes stay far below the server's max_connections.
QUERY_THREADS = 8
T = TypeVar("T")


@functools.cache
def _query_threads() -> ThreadPoolExecutor:
    return ThreadPoolExecutor(QUERY_THREADS, thread_name_prefix="twinledger-query")


def is_postgres_url(location: Path | str) -> bool:
    return isinstance(location, str) and location.startswith(POSTGRES_SCHEMES)


class Database:
    def __init__(self, location: Path | str, database: str, *, upgrade: bool = False) -> None:
        """Open `database` at `location`, at the newest schema: a SQLite file is migrated here; a PostgreSQL schema
        older than the code only with `upgrade` (`twinledger node migrate`), as replicas share it."""
        engine: Any
        if is_postgres_url(location):
            from twinledger_node.db.postgres import PostgresEngine  # psycopg loads only for PostgreSQL

            engine = PostgresEngine(str(location), database, upgrade=upgrade)
        else:
            from twinledger_node.db.sqlite import SQLiteEngine

            engine = SQLiteEngine(Path(location), database)
        self.engine = engine
        self.path: Path | None = engine.path  # the SQLite file; None on PostgreSQL
        self.url: str | None = engine.url  # the PostgreSQL URL; None on SQLite
        self.schema_version: int = engine.schema_version

    def connection(self) -> Connection:
        return self.engine.connection()

    async def run(self, fn: Callable[..., T], *args: Any) -> T:
        """`fn(*args)`, a few queries of this database, from an async route without stalling its event loop: inline
        on SQLite, where they run in-process in microseconds (a thread hop would cost more than the queries), in
        the query threads on PostgreSQL, where each is a network round trip that would hold up every request."""
        if self.url is None:
            return fn(*args)
        return await asyncio.get_running_loop().run_in_executor(_query_threads(), functools.partial(fn, *args))

    def durable_connection(self) -> Connection:
        """This thread's connection, each of its commits on disk when it returns (what acknowledgements wait for)."""
        return self.engine.durable_connection()

    def writer(self) -> AbstractContextManager[None]:
        return self.engine.writer()

    def pipeline(self, conn: Connection) -> AbstractContextManager[None]:
        """The statements `conn` runs inside sent together, their answers read at the first fetch or at the end:
        one round trip for several on PostgreSQL (its pipeline mode); nothing changes on SQLite, in-process."""
        return self.engine.pipeline(conn)

    @contextmanager
    def write(self) -> Iterator[Connection]:
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

    def get_meta(self, key: str, default: str | None = None) -> str | None:
        row = self.connection().execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return str(row["value"]) if row else default

    def lease(self, name: str) -> Lease:
        """The lock `name`, held across every process and replica on this database (db/leases)."""
        if self.url is not None:
            return PostgresLease(self.url, name)
        assert self.path is not None
        return FileLease(self.path.parent / f"{name}.lock")

    def close(self) -> None:
        self.engine.close()
