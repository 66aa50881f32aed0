"""The same migrations on PostgreSQL: one schema for both engines, replicas that refuse a schema they do not match."""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path

import psycopg
import pytest

from twinledger_node.db import migrations as mig
from twinledger_node.db.migrations import (
    Migration,
    SchemaTooNew,
    SchemaTooOld,
    latest,
    migrate_postgres,
    postgres_schema,
    postgres_version,
)
from twinledger_node.indexer.db import IndexDB
from twinledger_node.state import NodeState

# SQLite's declared types and what the dialect makes of them
TYPES = {"INTEGER": "bigint", "TEXT": "text", "REAL": "double precision", "BLOB": "bytea"}
KINDS = [("index", IndexDB), ("state", NodeState)]


def sqlite_shape(path: Path) -> tuple[dict[str, list[tuple[str, str, bool]]], set[str]]:
    with sqlite3.connect(path) as conn:
        tables = [r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
        columns = {t: [(c[1], TYPES[c[2]], bool(c[3] or c[5])) for c in conn.execute(f"PRAGMA table_info({t})")]
                   for t in tables}  # fmt: skip
        indexes = {
            r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'index' AND sql IS NOT NULL")
        }
    return columns, indexes


def postgres_shape(url: str, kind: str) -> tuple[dict[str, list[tuple[str, str, bool]]], set[str]]:
    schema = postgres_schema(kind)
    with psycopg.connect(url) as conn:
        rows = conn.execute(
            "SELECT table_name, column_name, data_type, is_nullable = 'NO' FROM information_schema.columns "
            "WHERE table_schema = %s ORDER BY table_name, ordinal_position", (schema,),
        ).fetchall()  # fmt: skip
        # the indexes CREATE INDEX made (not those of PRIMARY KEY and UNIQUE constraints, as SQLite's autoindexes)
        indexes = {r[0] for r in conn.execute(
            "SELECT indexname FROM pg_indexes i WHERE schemaname = %s AND NOT EXISTS "
            "(SELECT 1 FROM pg_constraint c WHERE c.conname = i.indexname)", (schema,))}  # fmt: skip
    columns: dict[str, list[tuple[str, str, bool]]] = {}
    for table, column, kind_, not_null in rows:
        columns.setdefault(table, []).append((column, kind_, not_null))
    return columns, indexes


@pytest.mark.parametrize(("kind", "opener"), KINDS)
def test_both_engines_get_the_same_tables_columns_and_indexes(
    kind: str, opener: type, tmp_path: Path, postgres_url: str
):
    opener(tmp_path / "db.sqlite").close()
    with psycopg.connect(postgres_url) as conn:
        assert migrate_postgres(conn, kind) == latest(kind)
    assert postgres_shape(postgres_url, kind) == sqlite_shape(tmp_path / "db.sqlite")


def test_a_receipt_id_is_assigned_by_postgres_as_by_sqlite(postgres_url: str):
    with psycopg.connect(postgres_url) as conn:
        migrate_postgres(conn, "state")
        conn.execute("SET search_path TO " + postgres_schema("state"))
        ids = [conn.execute(
            "INSERT INTO receipts (twin_id, seq, reader, purpose, digest, body, created) "
            "VALUES (1, 1, 'did:key:z', '0x', %s, '{}', 0) RETURNING id", (f"d{i}",)).fetchone()
            for i in range(2)]  # fmt: skip
    assert ids == [(1,), (2,)]


def add_migration(monkeypatch: pytest.MonkeyPatch, kind: str, sql: str) -> tuple[Migration, ...]:
    """Make the code one migration newer than the files; returns the real migrations."""
    known = mig.migrations(kind)
    monkeypatch.setattr(mig, "migrations", lambda database: (*known, Migration(len(known) + 1, "added", sql)))
    return known


def test_replicas_refuse_a_schema_they_do_not_match(postgres_url: str, monkeypatch: pytest.MonkeyPatch):
    with psycopg.connect(postgres_url, autocommit=True) as conn:
        migrate_postgres(conn, "index")
        known = add_migration(monkeypatch, "index", "CREATE TABLE added_later (x INTEGER);")
        # code newer than the database: a replica does not migrate a shared database by itself
        with pytest.raises(SchemaTooOld) as old:
            migrate_postgres(conn, "index")
        assert "twinledger node migrate" in (old.value.hint or "")
        assert migrate_postgres(conn, "index", upgrade=True) == len(known) + 1
        # the database newer than the code
        monkeypatch.setattr(mig, "migrations", lambda database: known)
        with pytest.raises(SchemaTooNew):
            migrate_postgres(conn, "index")


def test_a_failing_migration_leaves_nothing(postgres_url: str, monkeypatch: pytest.MonkeyPatch):
    with psycopg.connect(postgres_url, autocommit=True) as conn:
        migrate_postgres(conn, "state")
        known = add_migration(monkeypatch, "state", "CREATE TABLE half_done (x INTEGER); SELECT * FROM nowhere;")
        with pytest.raises(psycopg.errors.UndefinedTable):
            migrate_postgres(conn, "state", upgrade=True)
        assert postgres_version(conn, "state") == len(known)
        assert conn.execute("SELECT to_regclass(%s)", (postgres_schema("state") + ".half_done",)).fetchone() == (None,)


def test_replicas_starting_together_create_the_schema_once(postgres_url: str):
    results: list[object] = []

    def start() -> None:
        try:
            with psycopg.connect(postgres_url, autocommit=True) as conn:
                results.append(migrate_postgres(conn, "state"))
        except Exception as error:
            results.append(error)

    threads = [threading.Thread(target=start) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert results == [latest("state")] * 6
    with psycopg.connect(postgres_url) as conn:
        applied = conn.execute(f"SELECT version FROM {postgres_schema('state')}.schema_migrations").fetchall()
    assert applied == [(v,) for v in range(1, latest("state") + 1)]
