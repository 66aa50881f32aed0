"""What the node's code sees of a database connection, whatever the engine: `?`-placeholder statements and rows
by position or column name (sqlite3's interface, which `postgres.PgConnection` gives psycopg too)."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
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
