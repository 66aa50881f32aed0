"""TWINLEDGER_DATABASE_URL: a node on PostgreSQL, and the clear refusals when the URL is wrong or unreachable."""

from __future__ import annotations

import json
import subprocess
import sys
import time

import httpx
import psycopg
import pytest
from pydantic import ValidationError

from twinledger.chain.localchain import free_port
from twinledger.errors import Unavailable
from twinledger.identity import DidKey
from twinledger_node.db.database import QUERY_THREADS
from twinledger_node.db.migrations import latest, postgres_version
from twinledger_node.indexer.db import IndexDB
from twinledger_node.settings import NodeSettings


def test_a_database_url_must_be_postgresql(tmp_path):
    with pytest.raises(ValidationError, match="must be a postgresql:// URL"):
        NodeSettings(data_dir=tmp_path, database_url="mysql://db/twins")  # type: ignore[arg-type]


def test_an_unreachable_database_is_named_without_its_password():
    url = f"postgresql://operator:hunter2-secret@127.0.0.1:{free_port()}/twins"
    with pytest.raises(Unavailable) as refused:
        IndexDB(url)
    assert "operator@127.0.0.1" in refused.value.message and "/twins" in refused.value.message
    assert "refused" in refused.value.message.lower()
    assert "hunter2" not in refused.value.message + (refused.value.hint or "")


def test_node_up_refuses_an_unreachable_database_with_one_clear_line(tmp_path, anvil):
    url = f"postgresql://operator:hunter2-secret@127.0.0.1:{free_port()}/twins"
    done = subprocess.run(
        [sys.executable, "-m", "twinledger.cli", "node", "up", "--workers", "0", "--port", str(free_port()),
         "--data-dir", str(tmp_path)],
        env={"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "TWINLEDGER_DATABASE_URL": url,
             "TWINLEDGER_RPC_URL": anvil},
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    output = done.stdout + done.stderr
    assert done.returncode != 0
    assert "cannot reach the PostgreSQL database operator@127.0.0.1" in output, output
    assert "Traceback" not in output and "hunter2" not in output, output


def _node_cli(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "twinledger.cli", "node", *args], env={"PATH": "/usr/bin:/bin", **env},
                          capture_output=True, text=True, timeout=120, check=False)  # fmt: skip


def test_node_migrate_brings_both_databases_to_this_schema(tmp_path, postgres_url):
    done = _node_cli("migrate", "--json", env={"HOME": str(tmp_path), "TWINLEDGER_DATABASE_URL": postgres_url})
    assert done.returncode == 0, done.stdout + done.stderr
    assert json.loads(done.stdout) == {"engine": "postgresql", "index": latest("index"), "state": latest("state")}
    # the replicas of this version now start on it without migrating
    with psycopg.connect(postgres_url) as conn:
        assert [postgres_version(conn, kind) for kind in ("index", "state")] == [latest("index"), latest("state")]
    done = _node_cli("migrate", "--json", "--data-dir", str(tmp_path / "data"), env={"HOME": str(tmp_path)})
    assert json.loads(done.stdout) == {"engine": "sqlite", "index": latest("index"), "state": latest("state")}


def test_a_lost_database_connection_is_answered_503_then_the_node_recovers(
    anvil, deployment, accounts, tmp_path, postgres_url
):
    from tests.node.conftest import start_node

    node = start_node(tmp_path / "node", anvil, deployment, accounts[9], database_url=postgres_url)
    try:
        with httpx.Client(base_url=node.url, timeout=10) as http:
            assert [http.get("/v1/twins/999").status_code for _ in range(8)] == [404] * 8  # the index answers
            # The database drops every session of the node (a failover, a restart, an administrator)
            with psycopg.connect(postgres_url, autocommit=True) as admin:
                ended = admin.execute(
                    "SELECT COUNT(pg_terminate_backend(pid)) FROM pg_stat_activity "
                    "WHERE datname = current_database() AND pid <> pg_backend_pid()"
                ).fetchone()
            assert ended is not None and ended[0] >= 1
            answers = [http.get("/v1/twins/999") for _ in range(8)]
        failed = [r for r in answers if r.status_code != 404]
        assert failed, "no request saw the lost connection"
        for response in failed:  # refused with a clear problem, never a 500
            assert response.status_code == 503, response.text
            assert response.json()["type"].endswith("database-unavailable") and "retry-after" in response.headers
        assert answers[-1].status_code == 404  # reconnected by itself
    finally:
        node.stop()


def test_pushes_recover_after_the_database_drops_the_committers_session(
    anvil, deployment, accounts, tmp_path, postgres_url
):
    """The group committer asks for its connection for each group: a session the database ended is replaced, so
    pushes (and the receipts of reads, committed the same way) get 503 while each connection finds its session
    gone, then succeed again."""
    from tests.node.conftest import owner_at, start_node

    node = start_node(tmp_path / "node", anvil, deployment, accounts[9], database_url=postgres_url)
    try:
        owner, device = owner_at(node, anvil, deployment, accounts[3]), DidKey.generate()
        twin = owner.ledger.register("asset", device_did=device.did)[0]
        with httpx.Client(base_url=node.url, timeout=10) as http:
            for _ in range(400):
                if http.get(f"/v1/twins/{twin}").status_code == 200:
                    break
                time.sleep(0.025)
        with node.client(device) as http:
            assert http.post(f"/v1/twins/{twin}/snapshots", content=b"before").status_code == 202
            with psycopg.connect(postgres_url, autocommit=True) as admin:
                admin.execute(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                    "WHERE datname = current_database() AND pid <> pg_backend_pid()"
                )
            statuses: list[int] = []
            # each of the query threads and the committer finds its own session gone once: a 503 apiece at most
            while statuses[-3:] != [202] * 3 and len(statuses) < QUERY_THREADS + 1 + 3:
                pushed = http.post(f"/v1/twins/{twin}/snapshots", content=b"after %d" % len(statuses))
                statuses.append(pushed.status_code)
        assert set(statuses) <= {202, 503} and statuses[-3:] == [202] * 3, statuses
    finally:
        node.stop()
