"""What the node's code sees of a database, whatever the engine: connections that run `?`-placeholder statements
and give rows by position or column name (sqlite3's interface, which `postgres.PgConnection` gives psycopg too),
write transactions, and the meta table."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from contextlib import AbstractContextManager, contextmanager
from typing import Any, Protocol


class Row(Protocol):
    def __getitem__(self, key: Any, /) -> Any: ...

    def keys(self) -> list[str]: ...


class Cursor(Protocol):
    @property
    def rowcount(self) -> int: ...

    def fetchone(self) -> Any: ...

    def fetchall(self) -> list[Any]: ...

    def __iter__(self) -> Iterator[Any]: ...


class Connection(Protocol):
    def execute(self, sql: str, parameters: Any = ..., /) -> Cursor: ...

    def executemany(self, sql: str, parameters: Iterable[Any], /) -> Cursor: ...


class Transactions:
    def connection(self) -> Connection:
        raise NotImplementedError

    def writer(self) -> AbstractContextManager[None]:
        raise NotImplementedError

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
