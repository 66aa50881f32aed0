"""`twinledger node backup` / `restore` on the run's engine (--database): a backup taken while the node runs and
writes, restored into a fresh data directory (and database), serves the same snapshots and the same audit trail."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import tarfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.conftest import node_database_env, node_database_url
from tests.node.conftest import Owner, RunningNode, owner_at, start_node
from twinledger.chain.ledger import GrantRequest
from twinledger.identity import DidKey
from twinledger_node.db.migrations import latest

READINGS = [b"reading %d" % i for i in range(3)]


def node_cli(*args: str, data_dir: Path, env: dict[str, str | None] | None = None) -> subprocess.CompletedProcess[str]:
    """The CLI as a user runs it, on `data_dir`'s database of this run unless `env` says otherwise (None: unset)."""
    base = {k: v for k, v in os.environ.items() if not k.startswith("TWINLEDGER_")}
    merged: dict[str, str | None] = {**base, "HOME": str(data_dir.parent), **node_database_env(data_dir), **(env or {})}
    environment = {k: v for k, v in merged.items() if v is not None}
    return subprocess.run(
        [sys.executable, "-m", "twinledger.cli", "node", *args, "--data-dir", str(data_dir)],
        env=environment, capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip


def refused(done: subprocess.CompletedProcess[str], *words: str) -> str:
    assert done.returncode not in (0, 1), (done.returncode, done.stdout, done.stderr)  # a TwinledgerError's code
    assert "Traceback" not in done.stderr + done.stdout
    for word in words:
        assert word in done.stderr, done.stderr
    return done.stderr


def tree(root: Path) -> dict[str, bytes]:
    return (
        {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}
        if root.exists()
        else {}
    )


def wait_anchored(node: RunningNode) -> None:
    for _ in range(800):
        if node.runtime.anchors.queue_depth() == 0:
            return
        time.sleep(0.025)
    raise AssertionError("the anchor queue did not drain")


@dataclass
class Backup:
    archive: Path
    source: Path
    twin: int
    busy_twin: int
    owner: Owner
    researcher: DidKey
    audit: dict
    history: dict
    node_did: str
    summary: dict


@pytest.fixture(scope="module")
def backup(anvil, deployment, accounts, tmp_path_factory) -> Backup:
    """A node with snapshots, reads (receipts) and anchors, backed up while it runs and another twin is being
    pushed to; then stopped."""
    source = tmp_path_factory.mktemp("source")
    node = start_node(source, anvil, deployment, accounts[9])
    try:
        owner = owner_at(node, anvil, deployment, accounts[3])
        device, researcher = DidKey.generate(), DidKey.generate()
        twin, _ = owner.ledger.register("asset", device_did=device.did)
        busy_twin, _ = owner.ledger.register("asset", device_did=device.did)
        expiry = owner.ledger.client.chain_time() + 24 * 3600
        for granted in (twin, busy_twin):
            owner.ledger.grant(GrantRequest.of(granted, researcher.did, "research", "read", expiry))
        node.wait_indexed()
        with node.client(device) as http:
            for reading in READINGS:
                assert http.post(f"/v1/twins/{twin}/snapshots", content=reading).status_code == 202
        with node.client(researcher) as http:
            for seq, reading in enumerate(READINGS, 1):
                got = http.get(f"/v1/twins/{twin}/snapshots/{seq}", params={"purpose": "research"})
                assert got.status_code == 200 and got.content == reading
        wait_anchored(node)
        with node.client(owner.pkh) as http:
            audit = http.get(f"/v1/twins/{twin}/audit").json()
            history = http.get(f"/v1/twins/{twin}/snapshots").json()
        assert [s["anchor"]["tx"] is not None for s in history["snapshots"]] == [True] * len(READINGS)
        assert [e["kind"] for e in audit["entries"]].count("read") == len(READINGS)

        # pushes keep coming while the backup runs: what it holds must still be whole
        stop, pushed = threading.Event(), []

        def push() -> None:
            with node.client(device) as http:
                while not stop.is_set():
                    answer = http.post(f"/v1/twins/{busy_twin}/snapshots", content=os.urandom(20_000))
                    assert answer.status_code == 202, answer.text
                    pushed.append(answer.json()["seq"])

        pusher = threading.Thread(target=push)
        pusher.start()
        try:
            deadline = time.monotonic() + 60
            while len(pushed) < 3:
                assert pusher.is_alive() and time.monotonic() < deadline, "the pushes during the backup failed"
                time.sleep(0.01)
            archive = source.parent / "node.backup"
            done = node_cli("backup", str(archive), "--json", data_dir=source)
        finally:
            stop.set()
            pusher.join(timeout=60)
        assert done.returncode == 0, done.stderr
        summary = json.loads(done.stdout)
        return Backup(archive, source, twin, busy_twin, owner, researcher, audit, history, node.runtime.node_key.did,
                      summary)  # fmt: skip
    finally:
        node.stop()


def test_backup_archive_is_private_and_lists_what_it_holds(backup: Backup):
    assert backup.archive.stat().st_mode & 0o777 == 0o600
    assert not backup.archive.with_name(backup.archive.name + ".tmp").exists()
    with tarfile.open(backup.archive) as tar:
        names = tar.getnames()
        manifest = json.loads(tar.extractfile("manifest.json").read())
    engine = "postgresql" if node_database_url(backup.source) else "sqlite"
    assert manifest["engine"] == backup.summary["engine"] == engine
    assert manifest["node_did"] == backup.node_did
    assert manifest["schema"] == {"index": latest("index"), "state": latest("state")}
    databases = ["databases/postgresql.dump"] if engine == "postgresql" else ["databases/state.sqlite",
                                                                              "databases/index.sqlite"]  # fmt: skip
    assert [n for n in names if n.startswith("databases/")] == databases
    assert "keys/node-key.json" in names and "ipfs/blocks.sqlite" in names
    assert not any(n.startswith(("ipfs/tmp", "ipfs/gc.lock")) or n.endswith("-wal") for n in names)
    assert sorted(manifest["members"]) == sorted(n for n in names if n != "manifest.json")
    assert backup.summary["bytes"] == backup.archive.stat().st_size and backup.summary["keys"] == 1


def test_restored_node_serves_the_same_snapshots_and_audit_trail(backup: Backup, anvil, deployment, accounts,
                                                                 tmp_path):  # fmt: skip
    restored = tmp_path / "restored"
    done = node_cli("restore", str(backup.archive), "--json", data_dir=restored)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["node did"] == backup.node_did
    assert (restored / "node").stat().st_mode & 0o777 == 0o700
    assert (restored / "node" / "node-key.json").stat().st_mode & 0o777 == 0o600
    if node_database_url(restored) is None:
        assert (restored / "node" / "state.sqlite").stat().st_mode & 0o777 == 0o600
    assert not [p.name for p in tmp_path.iterdir() if p.name.startswith(".restored.restore-")]

    node = start_node(restored, anvil, deployment, accounts[9])
    try:
        assert node.runtime.node_key.did == backup.node_did
        node.wait_indexed()
        with node.client(backup.owner.pkh) as http:
            assert http.get(f"/v1/twins/{backup.twin}/audit").json() == backup.audit
            assert http.get(f"/v1/twins/{backup.twin}/snapshots").json() == backup.history
            busy = http.get(f"/v1/twins/{backup.busy_twin}/snapshots", params={"limit": 500}).json()["snapshots"]
        assert len(busy) >= 3
        with node.client(backup.researcher) as http:
            for seq, reading in enumerate(READINGS, 1):
                got = http.get(f"/v1/twins/{backup.twin}/snapshots/{seq}", params={"purpose": "research"})
                assert got.status_code == 200, got.text
                assert got.content == reading
            # every snapshot the restored state lists has its blocks: the block copy came after the database's
            for snapshot in busy:
                got = http.get(f"/v1/twins/{backup.busy_twin}/snapshots/{snapshot['seq']}",
                               params={"purpose": "research"})  # fmt: skip
                assert got.status_code == 200, got.text
                assert len(got.content) == 20_000
    finally:
        node.stop()


def test_restore_into_a_used_data_dir_is_refused_and_changes_nothing(backup: Backup, tmp_path):
    target = tmp_path / "used"
    (target / "node").mkdir(parents=True)
    (target / "node" / "state.sqlite").write_bytes(b"someone's state")
    before = tree(target)
    stderr = refused(node_cli("restore", str(backup.archive), data_dir=target), "not a fresh data directory")
    assert str(target / "node" / "state.sqlite") in stderr
    assert tree(target) == before and sorted(p.name for p in tmp_path.iterdir()) == ["used"]
    # the restored node's own data dir is refused the same way once it holds the backup
    again = tmp_path / "again"
    assert node_cli("restore", str(backup.archive), data_dir=again).returncode == 0
    before = tree(again)
    refused(node_cli("restore", str(backup.archive), data_dir=again), "not a fresh data directory", "node")
    assert tree(again) == before


def test_restore_into_a_database_with_the_schemas_is_refused(backup: Backup, tmp_path):
    if node_database_url(backup.source) is None:
        pytest.skip("PostgreSQL only: --database=postgres")
    # the source node's own database has both schemas
    stderr = refused(node_cli("restore", str(backup.archive), data_dir=tmp_path / "fresh",
                              env=node_database_env(backup.source)), "already has the schema twinledger_")  # fmt: skip
    assert not (tmp_path / "fresh").exists()
    assert "@127.0.0.1:" in stderr  # named by describe()


def _rewrite(archive: Path, out: Path, change) -> None:
    """A copy of `archive` with `change(name, data) -> data` applied to each member."""
    with tarfile.open(archive) as source, tarfile.open(out, "w") as target:
        for info in source:
            data = change(info.name, source.extractfile(info).read())
            info.size = len(data)
            target.addfile(info, io.BytesIO(data))


def test_a_tampered_archive_is_refused_before_anything_is_written(backup: Backup, tmp_path):
    tampered = tmp_path / "tampered.backup"
    tampered.write_bytes(backup.archive.read_bytes())
    with tarfile.open(tampered) as tar:
        member = tar.getmember("keys/node-key.json")
    with tampered.open("r+b") as handle:  # flip a byte inside the member's data, in place
        handle.seek(member.offset_data + 5)
        byte = handle.read(1)
        handle.seek(member.offset_data + 5)
        handle.write(bytes([byte[0] ^ 0x01]))
    target = tmp_path / "restored"
    stderr = refused(node_cli("restore", str(tampered), data_dir=target), "keys/node-key.json", "sha256")
    assert "nothing was written" in stderr
    assert not target.exists() and sorted(p.name for p in tmp_path.iterdir()) == ["tampered.backup"]
    url = node_database_url(target)
    if url is not None:  # the database the restore would have used has no schema
        import psycopg

        with psycopg.connect(url) as conn:
            assert conn.execute("SELECT count(*) FROM pg_namespace WHERE nspname LIKE 'twinledger%'").fetchone()[0] == 0


def test_a_newer_schema_or_another_engine_is_refused(backup: Backup, tmp_path):
    newer = tmp_path / "newer.backup"

    def bump(name: str, data: bytes) -> bytes:
        if name != "manifest.json":
            return data
        manifest = json.loads(data)
        manifest["schema"]["state"] = 99
        return json.dumps(manifest).encode()

    _rewrite(backup.archive, newer, bump)
    refused(node_cli("restore", str(newer), data_dir=tmp_path / "a"), "schema version 99", f"up to {latest('state')}")
    assert not (tmp_path / "a").exists()

    if node_database_url(backup.source) is None:  # a SQLite backup into a PostgreSQL database
        env = {"TWINLEDGER_DATABASE_URL": "postgresql://node:s3cret-pw@127.0.0.1:1/elsewhere"}
        stderr = refused(node_cli("restore", str(backup.archive), data_dir=tmp_path / "b", env=env), "not supported")
        assert "s3cret-pw" not in stderr
    else:  # a PostgreSQL backup with no database to restore into
        stderr = refused(node_cli("restore", str(backup.archive), data_dir=tmp_path / "b",
                                  env={"TWINLEDGER_DATABASE_URL": None}), "PostgreSQL schemas")  # fmt: skip
    assert not (tmp_path / "b").exists()


def test_backup_to_an_existing_file_is_refused_unless_forced(backup: Backup, tmp_path):
    existing = tmp_path / "existing.backup"
    existing.write_bytes(b"an earlier backup")
    refused(node_cli("backup", str(existing), data_dir=backup.source), "already exists", "--force")
    assert existing.read_bytes() == b"an earlier backup"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["existing.backup"]
    forced = node_cli("backup", str(existing), "--force", "--json", data_dir=backup.source)
    assert forced.returncode == 0, forced.stderr
    with tarfile.open(existing) as tar:
        assert "manifest.json" in tar.getnames()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["existing.backup"]


def test_backup_of_a_directory_without_a_node_is_refused(tmp_path):
    refused(node_cli("backup", str(tmp_path / "x.backup"), data_dir=tmp_path / "empty"), "no node key")
    assert sorted(p.name for p in tmp_path.iterdir()) == []


def test_with_kubo_the_blocks_are_not_in_the_backup_and_the_summary_says_so(backup: Backup, tmp_path):
    archive = tmp_path / "kubo.backup"
    done = node_cli("backup", str(archive), "--json", data_dir=backup.source, env={"TWINLEDGER_IPFS_BACKEND": "kubo"})
    assert done.returncode == 0, done.stderr
    assert "Kubo" in json.loads(done.stdout)["block store"]
    with tarfile.open(archive) as tar:
        assert not [name for name in tar.getnames() if name.startswith("ipfs/")]


def test_pg_tools_need_a_recent_enough_client_and_never_see_the_password(monkeypatch):
    from twinledger.errors import Unavailable
    from twinledger_node.backup import postgres

    program, version = postgres.find_tool("pg_dump", 1)
    assert Path(program).name == "pg_dump" and int(version.split(".")[0]) >= 1
    with pytest.raises(Unavailable, match="PostgreSQL 999 or newer") as refused_tool:
        postgres.find_tool("pg_dump", 999)
    assert "postgresql-client-999" in (refused_tool.value.hint or "")
    monkeypatch.setattr(postgres.shutil, "which", lambda name: None)
    monkeypatch.setattr(postgres, "_wheel_bin", lambda: None)
    with pytest.raises(Unavailable, match="no pg_restore of PostgreSQL 18 or newer on PATH"):
        postgres.find_tool("pg_restore", 18)
    conninfo, env = postgres._client("postgresql://node:s3cret-pw@db.example:5433/twins?sslmode=require")
    assert "s3cret-pw" not in conninfo and "db.example" in conninfo and "sslmode=require" in conninfo
    assert env["PGPASSWORD"] == "s3cret-pw"


def test_a_restore_that_fails_half_way_takes_back_what_it_placed(backup: Backup, tmp_path, monkeypatch):
    from twinledger_node.backup import restore
    from twinledger_node.settings import NodeSettings

    links = []
    real_link = os.link

    def failing_link(source, target):
        if len(links) == 5:
            raise OSError(28, "No space left on device")
        real_link(source, target)
        links.append(target)

    monkeypatch.setattr(restore.os, "link", failing_link)
    target = tmp_path / "half"
    settings = NodeSettings(data_dir=target, database_url=node_database_url(target))  # type: ignore[call-arg]
    from twinledger.errors import Unavailable

    with pytest.raises(Unavailable, match="No space left"):
        restore.restore_backup(settings, backup.archive)
    assert len(links) == 5 and not any(Path(p).exists() for p in links)
    assert not target.exists() and list(tmp_path.iterdir()) == []
