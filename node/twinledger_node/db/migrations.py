"""Versioned schemas: numbered SQL files applied in order, each once, each in its own transaction.

`db/migrations/<database>/NNNN_name.sql` (database: `index` or `state`) holds the statements that take a database
from version NNNN-1 to NNNN; `schema_migrations` records what was applied. Plain SQL files rather than Alembic:
the node talks to its databases through the DB-API directly (no SQLAlchemy models for Alembic to diff), and a
migration is then the SQL itself, readable and reviewable as such.

A database whose recorded version is newer than the newest file is refused: it was written by a newer twinledger,
and this code would misread it. A database from before versioning (tables, no `schema_migrations`) is adopted:
brought to version 1 by `ADOPT` and recorded as such.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from dataclasses import dataclass
from functools import cache
from importlib import resources
from typing import TYPE_CHECKING, Any

from twinledger.errors import IntegrityError
from twinledger_node.db.dialect import schema_to_postgres

if TYPE_CHECKING:
    import psycopg

_CREATE_TABLE = (
    "CREATE TABLE IF NOT EXISTS schema_migrations "
    "(version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied REAL NOT NULL)"
)


class SchemaTooNew(IntegrityError):
    """The database was migrated by a newer twinledger than this one."""


class SchemaTooOld(IntegrityError):
    """A shared database (PostgreSQL) not yet migrated to this twinledger's schema."""


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    sql: str


@cache
def migrations(database: str) -> tuple[Migration, ...]:
    """The migrations of `database` in order; their numbers run 1, 2, 3, … without gaps."""
    found = []
    for entry in resources.files(__package__).joinpath("migrations", database).iterdir():
        stem = entry.name.removesuffix(".sql")
        if entry.name.endswith(".sql"):
            number, _, name = stem.partition("_")
            found.append(Migration(int(number), name, entry.read_text(encoding="utf-8")))
    found.sort(key=lambda m: m.version)
    if [m.version for m in found] != list(range(1, len(found) + 1)):
        raise IntegrityError(f"the {database} migrations are not numbered 1…n: {[m.version for m in found]}")
    return tuple(found)


def latest(database: str) -> int:
    return migrations(database)[-1].version


def statements(script: str) -> Iterator[str]:
    """The statements of a SQL script, one by one (sqlite3's executescript would commit the transaction)."""
    pending = ""
    for line in script.splitlines(keepends=True):
        pending += line
        if sqlite3.complete_statement(pending):
            if pending.strip(" \n;-"):
                yield pending
            pending = ""
    if pending.strip():
        raise IntegrityError(f"an incomplete SQL statement ends the migration: {pending.strip()[:80]}")


def _adopt_state(conn: sqlite3.Connection) -> None:
    columns = {row[1] for row in conn.execute("PRAGMA table_info(recovery_keys)")}
    if columns and "issued" not in columns:  # from before bindings were ordered: any new binding supersedes
        conn.execute("ALTER TABLE recovery_keys ADD COLUMN issued INTEGER NOT NULL DEFAULT 0")


# What a database from before versioning lacks of version 1 (its version-1 statements are all IF NOT EXISTS).
ADOPT: dict[str, Callable[[sqlite3.Connection], None]] = {"state": _adopt_state}


def refuse_newer(database: str, version: int) -> None:
    newest = latest(database)
    if version > newest:
        raise SchemaTooNew(
            f"the {database} database is at schema version {version}; this twinledger knows versions up to {newest}",
            hint="upgrade twinledger (every process that uses this data directory or database) to the version "
            "that wrote it",
        )


def current_version(conn: sqlite3.Connection) -> int:
    """The version recorded in `conn`'s database: 0 when none is."""
    exists = conn.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'schema_migrations'").fetchone()
    if not exists:
        return 0
    return int(conn.execute("SELECT COALESCE(MAX(version), 0) FROM schema_migrations").fetchone()[0])


def migrate_sqlite(conn: sqlite3.Connection, database: str, writer: Callable[[], AbstractContextManager[None]]) -> int:
    """Bring `conn`'s database (autocommit connection) to the newest version; returns it. `writer` queues this
    process with the database's other writers; each migration runs in a `BEGIN IMMEDIATE` transaction that reads
    the version again, so processes starting together apply each migration once."""
    known = migrations(database)
    newest = known[-1].version
    version = current_version(conn)
    refuse_newer(database, version)
    if version == newest:  # the start-up of a current database: two reads, no write
        return version
    for migration in known[version:]:
        with writer():
            conn.execute("BEGIN IMMEDIATE")
            try:
                conn.execute(_CREATE_TABLE)
                if current_version(conn) < migration.version:
                    if migration.version == 1 and database in ADOPT:
                        ADOPT[database](conn)
                    for statement in statements(migration.sql):
                        conn.execute(statement)
                    conn.execute("INSERT INTO schema_migrations (version, name, applied) VALUES (?, ?, ?)",
                                 (migration.version, migration.name, time.time()))  # fmt: skip
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            conn.execute("COMMIT")
    return newest


# ---------------------------------------------------------------------------------------------------- PostgreSQL


def postgres_schema(database: str) -> str:
    """The PostgreSQL schema (namespace) that holds `database`'s tables: the index and the state each have a
    `batches` and a `nonces` table, as their SQLite files do."""
    return f"twinledger_{database}"


def postgres_version(conn: psycopg.Connection[Any], database: str) -> int:
    schema = postgres_schema(database)
    table = conn.execute("SELECT to_regclass(%s)", (f"{schema}.schema_migrations",)).fetchone()
    if table is None or table[0] is None:
        return 0
    row = conn.execute(f"SELECT COALESCE(MAX(version), 0) FROM {schema}.schema_migrations").fetchone()  # noqa: S608
    return int(row[0]) if row else 0


def migrate_postgres(conn: psycopg.Connection[Any], database: str, *, upgrade: bool = False) -> int:
    """Bring `database`'s schema in the PostgreSQL database of `conn` to the newest version; returns it.

    Replicas share the database, and one that migrated it would pull it from under replicas still running the
    previous version: a replica creates the schema of an empty database, but one at an older version only with
    `upgrade` (`twinledger node migrate`), and refuses otherwise. Migrators queue on a transaction-scoped advisory
    lock; each migration is one transaction (PostgreSQL's DDL is transactional: a failure leaves nothing)."""
    schema = postgres_schema(database)
    version = postgres_version(conn, database)
    refuse_newer(database, version)
    newest = latest(database)
    if version == newest:
        return version
    if version > 0 and not upgrade:
        raise SchemaTooOld(
            f"the {database} schema of the PostgreSQL database is at version {version}; this twinledger needs {newest}",
            hint="stop the replicas that run an older twinledger, run `twinledger node migrate` once, then start "
            "the replicas again",
        )
    for migration in migrations(database)[version:]:
        with conn.transaction():
            conn.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", (schema,))
            conn.execute(f"CREATE SCHEMA IF NOT EXISTS {schema}")
            conn.execute(f"SET LOCAL search_path TO {schema}")
            conn.execute(schema_to_postgres(_CREATE_TABLE))
            if postgres_version(conn, database) < migration.version:
                conn.execute(schema_to_postgres(migration.sql))
                conn.execute("INSERT INTO schema_migrations (version, name, applied) VALUES (%s, %s, %s)",
                             (migration.version, migration.name, time.time()))  # fmt: skip
    return newest
