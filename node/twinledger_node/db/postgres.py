"""The node's databases on PostgreSQL, behind the interface its SQLite databases have (`db.database.Database`):
a connection per thread, write transactions, the same statements.

The node's code talks to a connection the way it talks to `sqlite3` with `isolation_level=None`: statements with `?`
placeholders, explicit `BEGIN IMMEDIATE` / `SAVEPOINT` / `COMMIT`, rows read by position or column name, the DB-API
`IntegrityError` and `OperationalError`. `PgConnection` gives a psycopg connection that face (in autocommit mode,
so `BEGIN` is explicit as with sqlite3), so every query is written once:

- `?` → `%s` (`dialect.to_postgres`), each statement prepared by psycopg after a few uses;
- `BEGIN IMMEDIATE` → `BEGIN` plus a transaction-scoped advisory lock per database: SQLite has one writer at a time
  and the node's code relies on it (a twin's receipt chain is read and extended inside one write transaction), so
  writers on PostgreSQL queue the same way, whichever replica they run in;
- psycopg's integrity and operational errors are raised as subclasses of sqlite3's (the DB-API classes the node
  catches), with the server's message.
"""

from __future__ import annotations

import sqlite3
import threading
import zlib
from collections.abc import Iterable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from functools import lru_cache
from typing import Any

import psycopg
from psycopg.conninfo import conninfo_to_dict

from twinledger.errors import Unavailable
from twinledger_node.db.dialect import to_postgres
from twinledger_node.db.migrations import migrate_postgres, postgres_schema


class IntegrityViolation(sqlite3.IntegrityError):
    """A constraint PostgreSQL refused (unique, not null, ...)."""


class OperationalFailure(sqlite3.OperationalError):
    """PostgreSQL could not do it now: connection lost, server shutting down, deadlock, disk full."""


@lru_cache(maxsize=512)
def _row_class(names: tuple[str, ...]) -> type[tuple[Any, ...]]:
    position = {name: i for i, name in enumerate(names)}

    class Row(tuple[Any, ...]):
        """A row read by position or by column name, as sqlite3.Row."""

        __slots__ = ()

        def __getitem__(self, key: Any) -> Any:
            return tuple.__getitem__(self, position[key] if isinstance(key, str) else key)

        def keys(self) -> list[str]:
            return list(names)

    return Row


def _rows(cursor: psycopg.Cursor[Any]) -> Any:
    return _row_class(tuple(column.name for column in cursor.description or ()))


@contextmanager
def db_api_errors() -> Iterator[None]:
    try:
        yield
    except psycopg.IntegrityError as error:
        raise IntegrityViolation(str(error).strip()) from error
    except psycopg.OperationalError as error:
        raise OperationalFailure(str(error).strip()) from error


class PgConnection:
    """A psycopg connection that the node's code uses as it uses an autocommit sqlite3 connection."""

    def __init__(self, raw: psycopg.Connection[Any], writer_key: int) -> None:
        self.raw = raw
        self._writer_key = writer_key
        self._pipelined = False

    @contextmanager
    def pipeline(self) -> Iterator[None]:
        """Statements sent without waiting for each answer, read at the first fetch or at the end: one round trip
        for several (psycopg's pipeline mode)."""
        with db_api_errors(), self.raw.pipeline():
            self._pipelined = True
            try:
                yield
            finally:
                self._pipelined = False

    def execute(self, sql: str, params: Sequence[Any] | None = None) -> psycopg.Cursor[Any]:
        with db_api_errors():
            if sql == "BEGIN IMMEDIATE" and self._pipelined:
                self.raw.execute("BEGIN")
                return self.raw.execute("SELECT pg_advisory_xact_lock(%s)", (self._writer_key,))
            if sql == "BEGIN IMMEDIATE":  # both in one round trip (a literal key: a simple query takes no parameters)
                return self.raw.execute(f"BEGIN; SELECT pg_advisory_xact_lock({int(self._writer_key)})".encode())
            # always with parameters, so that psycopg reads the doubled `%` the dialect wrote
            return self.raw.execute(to_postgres(sql), tuple(params or ()))

    def executemany(self, sql: str, rows: Iterable[Sequence[Any]]) -> psycopg.Cursor[Any]:
        cursor = self.raw.cursor()
        with db_api_errors():
            cursor.executemany(to_postgres(sql), [tuple(row) for row in rows])
        return cursor

    def close(self) -> None:
        self.raw.close()


def describe(url: str) -> str:
    """Where `url` points, without its password: user@host:port/database."""
    info = conninfo_to_dict(url)
    return f"{info.get('user', '')}@{info.get('host', 'localhost')}:{info.get('port', 5432)}/{info.get('dbname', '')}"


def connect(url: str, **options: Any) -> psycopg.Connection[Any]:
    try:
        return psycopg.connect(url, autocommit=True, connect_timeout=10, **options)
    except psycopg.OperationalError as error:
        # libpq: 'connection failed: connection to server at "h", port p failed: <why>' (never the password)
        first = (str(error).strip().splitlines() or [error.__class__.__name__])[0]
        reason = first.rsplit("failed: ", 1)[-1].strip()
        raise Unavailable(
            f"cannot reach the PostgreSQL database {describe(url)}: {reason}",
            hint="check TWINLEDGER_DATABASE_URL (host, port, user, password, database) and that the server accepts "
            "connections from this machine",
        ) from None


class PostgresEngine:
    """One of the node's databases (`index` or `state`) as a schema of a PostgreSQL database; a connection per
    thread, as the SQLite databases have, so that code written for one runs on the other."""

    path = None  # no file: the database is named by its URL

    def __init__(self, url: str, database: str, *, upgrade: bool = False) -> None:
        self.url = url
        self.schema = postgres_schema(database)
        self.writer_key = zlib.crc32(self.schema.encode())  # the advisory lock that queues this database's writers
        self._local = threading.local()
        self._opened: list[PgConnection] = []  # every thread's, so that close() ends every session
        self._opened_lock = threading.Lock()
        with connect(url) as conn:
            self.schema_version = migrate_postgres(conn, database, upgrade=upgrade)

    def connection(self) -> PgConnection:
        conn: PgConnection | None = getattr(self._local, "conn", None)
        if conn is None or conn.raw.closed or conn.raw.broken:
            raw = connect(self.url, row_factory=_rows, options=f"-c search_path={self.schema}")
            conn = self._local.conn = PgConnection(raw, self.writer_key)
            with self._opened_lock:
                self._opened = [c for c in self._opened if not c.raw.closed] + [conn]
        return conn

    def pipeline(self, conn: PgConnection) -> AbstractContextManager[None]:
        return conn.pipeline()

    @contextmanager
    def writer(self) -> Iterator[None]:
        """Writers queue on the advisory lock `BEGIN IMMEDIATE` takes; nothing to hold around it."""
        yield

    def durable_connection(self) -> PgConnection:
        return self.connection()  # a PostgreSQL commit returns once its WAL is flushed (synchronous_commit=on)

    def close(self) -> None:
        """End the sessions of every thread that used this database (the query threads', the committer's)."""
        with self._opened_lock:
            opened, self._opened = self._opened, []
        for conn in opened:
            conn.close()
        self._local.conn = None
