"""The node's database interface behaves the same on SQLite and on PostgreSQL: the code above it is written once."""

from __future__ import annotations

import sqlite3
import threading
import time
from typing import Any

import pytest

from twinledger_node.indexer.db import set_meta


def test_a_write_commits_all_or_nothing(db: Any):
    with db.write() as conn:
        set_meta(conn, "a", 1)

    def refused_halfway() -> None:
        with db.write() as conn:
            set_meta(conn, "b", 2)
            set_meta(conn, "a", 3)
            raise RuntimeError("refused halfway")

    with pytest.raises(RuntimeError):
        refused_halfway()
    assert (db.get_meta("a"), db.get_meta("b")) == ("1", None)


def test_rows_read_by_position_and_by_name(db: Any):
    with db.write() as conn:
        conn.execute("INSERT INTO blocks (number, hash, timestamp) VALUES (?, ?, ?)", (7, "0xab", 1_700_000_000))
        conn.executemany(
            "INSERT INTO blocks (number, hash, timestamp) VALUES (?, ?, ?)", [(8, "0xcd", 2), (9, "0xef", 3)]
        )
    row = db.connection().execute("SELECT number, hash, timestamp FROM blocks WHERE number = ?", (7,)).fetchone()
    assert (row[0], row["hash"], row["timestamp"], list(row.keys())) == (
        7,
        "0xab",
        1_700_000_000,
        ["number", "hash", "timestamp"],
    )
    assert [tuple(r) for r in db.connection().execute("SELECT number FROM blocks ORDER BY number")] == [
        (7,),
        (8,),
        (9,),
    ]
    # a literal % beside placeholders, and a 64-bit integer
    big = 2**62
    with db.write() as conn:
        conn.execute("INSERT INTO meta (key, value) VALUES (?, '100%')", ("pct",))
        conn.execute("INSERT INTO blocks (number, hash, timestamp) VALUES (?, ?, ?)", (big, "0x01", big))
    assert db.get_meta("pct") == "100%"
    assert db.connection().execute("SELECT timestamp FROM blocks WHERE number = ?", (big,)).fetchone()[0] == big


def test_a_constraint_violation_is_the_db_api_integrity_error(db: Any):
    with db.write() as conn:
        conn.execute("INSERT INTO blocks (number, hash, timestamp) VALUES (1, 'x', 0)")
    with pytest.raises(sqlite3.IntegrityError), db.write() as conn:
        conn.execute("INSERT INTO blocks (number, hash, timestamp) VALUES (1, 'y', 0)")
    assert [tuple(r) for r in db.connection().execute("SELECT hash FROM blocks")] == [("x",)]


def test_a_savepoint_takes_back_one_item_of_a_transaction(db: Any):
    with db.write() as conn:
        set_meta(conn, "kept", 1)
        conn.execute("SAVEPOINT item")
        set_meta(conn, "taken-back", 2)
        conn.execute("ROLLBACK TO item")
        conn.execute("RELEASE item")
        set_meta(conn, "after", 3)
    assert [db.get_meta(k) for k in ("kept", "taken-back", "after")] == ["1", None, "3"]


def test_writers_queue_one_after_another(db: Any):
    """The node reads a twin's receipt head and appends to it in one write transaction: a second writer must not
    start before the first commits, on either engine."""
    first_began, seen_by_second = threading.Event(), []

    def second() -> None:
        first_began.wait()
        with db.write() as conn:
            seen_by_second.append(conn.execute("SELECT COUNT(*) FROM blocks").fetchone()[0])
        db.close()

    thread = threading.Thread(target=second)
    thread.start()
    with db.write() as conn:
        conn.execute("INSERT INTO blocks (number, hash, timestamp) VALUES (1, 'x', 0)")
        first_began.set()
        time.sleep(0.3)  # the second writer, were it not queued, would read the table now, without this row
    thread.join()
    assert seen_by_second == [1]
