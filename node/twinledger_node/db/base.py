"""What the node's databases share whatever the engine: write transactions and the meta table, over the engine's
`connection()` (one per thread) and `writer()` (the queue writers wait in before `BEGIN IMMEDIATE`)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from typing import Any, Generic, Protocol, TypeVar


class Executes(Protocol):
    def execute(self, sql: str, parameters: Any = ..., /) -> Any: ...


Connection = TypeVar("Connection", bound=Executes)


class Transactions(Generic[Connection]):
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
