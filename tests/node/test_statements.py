"""Statements spelled once for both engines replace rows as SQLite's INSERT OR REPLACE did, on both."""

from __future__ import annotations

from twinledger_node.db.statements import upsert
from twinledger_node.indexer.db import IndexDB


def test_an_upsert_replaces_the_row_with_the_same_key_and_keeps_the_others(db: IndexDB):
    statement = upsert("token_approvals", ("twin_id", "approved"), ("twin_id",))
    with db.write() as conn:
        conn.execute(statement, (1, "0xaa"))
        conn.execute(statement, (2, "0xbb"))
        conn.execute(statement, (1, "0xcc"))
    rows = [tuple(r) for r in db.connection().execute("SELECT twin_id, approved FROM token_approvals ORDER BY 1")]
    assert rows == [(1, "0xcc"), (2, "0xbb")]


def test_an_upsert_of_key_columns_only_keeps_the_row():
    assert upsert("operators", ("owner", "operator"), ("owner", "operator")).endswith(
        "ON CONFLICT (owner, operator) DO NOTHING"
    )
