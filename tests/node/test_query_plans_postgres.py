"""The same promise on PostgreSQL: no statement a push, a read or an anchored batch runs scans a table that grows
with use. Every statement the node actually ran is explained with its generic plan (the one a prepared statement
keeps) over 100,000 rows of other twins' snapshots, receipts and nonces, statistics analyzed: a planner free to
choose must still choose an index (it once walked the receipts' primary key back, filtering by twin)."""

from __future__ import annotations

import re

import psycopg

from tests.node.conftest import start_node
from tests.node.test_query_plans import push_read_and_anchor
from twinledger_node.db import postgres as pg
from twinledger_node.db.dialect import to_postgres

PURPOSE = "research"
GROWING = ("snapshots", "receipts", "receipt_heads", "pins", "nonces", "batches", "blocks", "events", "grants")
ROWS = 100_000


def _record(monkeypatch, seen: list[tuple[str, str]]) -> None:  # type: ignore[no-untyped-def]
    """Put into `seen` the (search path, statement) of everything the node's PostgreSQL connections run from now."""
    execute, executemany = pg.PgConnection.execute, pg.PgConnection.executemany

    def traced(self, sql, params=None):  # type: ignore[no-untyped-def]
        seen.append((self.raw.info.parameter_status("search_path") or "", sql))
        return execute(self, sql, params)

    def traced_many(self, sql, rows):  # type: ignore[no-untyped-def]
        seen.append((self.raw.info.parameter_status("search_path") or "", sql))
        return executemany(self, sql, rows)

    monkeypatch.setattr(pg.PgConnection, "execute", traced)
    monkeypatch.setattr(pg.PgConnection, "executemany", traced_many)


def _grow(url: str) -> None:
    """Other twins' history, anchored: what a busy node holds besides the twin the test uses."""
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("SET search_path = twinledger_state")
        conn.execute(
            "INSERT INTO receipts (twin_id, seq, reader, purpose, digest, body, created, batch_root, anchor_tx) "
            "SELECT 999, 1, 'r', 'p', 'd' || g, '{}', g, 'root', 'tx' FROM generate_series(1, %s) g",
            (ROWS,),
        )
        conn.execute(
            "INSERT INTO snapshots (twin_id, seq, manifest_cid, content_cid, manifest_digest, size, sha256, producer,"
            " created, period, batch_root, anchor_tx) SELECT 999, g, 'm' || g, 'c', 'd', 1, 's', 'p', g, 0, 'root',"
            " 'tx' FROM generate_series(1, %s) g",
            (ROWS,),
        )
        conn.execute("INSERT INTO nonces (id, expires_at) SELECT decode(md5(g::text), 'hex'), 2000000000 "
                     "FROM generate_series(1, %s) g", (ROWS,))  # fmt: skip
        conn.execute("INSERT INTO pins (cid) SELECT 'bafy' || g FROM generate_series(1, %s) g", (ROWS,))
        conn.execute("INSERT INTO receipt_heads (twin_id, digest) SELECT 1000 + g, 'd' FROM generate_series(1, %s) g",
                     (ROWS,))  # fmt: skip
        conn.execute("INSERT INTO batches (root, kind, count, leaves_cid, status, tx_hash, block_number, created) "
                     "SELECT 'r' || g, 1, 1, 'c', 'anchored', 'tx', g, g FROM generate_series(1, %s) g",
                     (ROWS,))  # fmt: skip
        conn.execute("SET search_path = twinledger_index")
        conn.execute("INSERT INTO blocks (number, hash, timestamp) SELECT -g, 'h' || g, g "
                     "FROM generate_series(1, %s) g", (ROWS,))  # fmt: skip
        conn.execute("INSERT INTO events (block_number, log_index, block_hash, tx_hash, address, name, twin_id, args) "
                     "SELECT -g, 0, 'h', 't', 'a', 'Granted', 1000 + g, '{}' FROM generate_series(1, %s) g",
                     (ROWS,))  # fmt: skip
        conn.execute("INSERT INTO grants (twin_id, did_hash, purpose, grantor, scopes, expiry, granted_at, did, "
                     "block_number, tx_hash, period) SELECT 1000 + g, 'h', 'p', 'o', 1, 1, 1, 'd', 1, 't', 0 "
                     "FROM generate_series(1, %s) g", (ROWS,))  # fmt: skip
        conn.execute("ANALYZE")


def _generic(sql: str) -> str:
    """The statement as the node sends it, with numbered parameters so EXPLAIN (GENERIC_PLAN) takes it."""
    numbered = iter(range(1, 10_000))
    return re.sub(r"%s", lambda _: f"${next(numbered)}", to_postgres(sql)).replace("%%", "%")


def test_pushes_reads_and_anchoring_never_scan_a_growing_table(
    anvil, deployment, accounts, tmp_path, monkeypatch, postgres_url
):
    node = start_node(tmp_path / "node", anvil, deployment, accounts[9], anchor_batch_size=2,
                      database_url=postgres_url)  # fmt: skip
    statements: list[tuple[str, str]] = []
    try:
        push_read_and_anchor(node, anvil, deployment, accounts[3], lambda: _record(monkeypatch, statements))
    finally:
        node.stop()
        monkeypatch.undo()

    _grow(postgres_url)
    scans: dict[str, list[str]] = {}
    explained = 0
    with psycopg.connect(postgres_url, autocommit=True) as conn:
        for path, sql in sorted(set(statements)):
            if sql.lstrip().split(None, 1)[0].upper() not in ("SELECT", "INSERT", "UPDATE", "DELETE"):
                continue
            conn.execute(f"SET search_path = {path}")
            plan = [row[0] for row in conn.execute("EXPLAIN (GENERIC_PLAN) " + _generic(sql)).fetchall()]
            explained += 1
            text = "\n".join(plan)
            bad = [line.strip() for line in plan if re.search(rf"Seq Scan on ({'|'.join(GROWING)})\b", line)]
            if "receipts_pkey" in text and "Filter: (twin_id" in text:
                bad.append("the receipts' primary key walked, filtering by twin")
            if bad:
                scans[sql] = bad
    assert explained >= 10, f"only {explained} statements were explained"
    assert not scans, "statements scanning a growing table:\n" + "\n".join(f"{s}\n  {p}" for s, p in scans.items())
