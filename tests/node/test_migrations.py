"""The node's databases carry a schema version: numbered SQL files applied once each, in order, all or nothing; a
database written by a newer twinledger is refused; one from before versioning is adopted."""

from __future__ import annotations

import multiprocessing
import sqlite3
from pathlib import Path

import pytest

from twinledger.ipfs.pins import SCHEMA as PINS_SCHEMA
from twinledger_node.db import migrations as mig
from twinledger_node.db.migrations import Migration, SchemaTooNew, current_version, latest, migrate_sqlite
from twinledger_node.indexer.db import IndexDB
from twinledger_node.state import NodeState


def recorded(path: Path) -> list[int]:
    with sqlite3.connect(path) as conn:
        return [row[0] for row in conn.execute("SELECT version FROM schema_migrations ORDER BY version")]


@pytest.mark.parametrize(("kind", "opener"), [("index", IndexDB), ("state", NodeState)])
def test_a_fresh_database_gets_every_migration_once(tmp_path: Path, kind: str, opener: type):
    path = tmp_path / f"{kind}.sqlite"
    db = opener(path)
    assert db.schema_version == latest(kind)
    assert recorded(path) == list(range(1, latest(kind) + 1))
    db.close()
    # reopening a current database writes nothing: it even opens read-only
    readonly = sqlite3.connect(f"file:{path}?mode=ro", uri=True, isolation_level=None)
    assert migrate_sqlite(readonly, kind, lambda: pytest.fail("took the writer queue")) == latest(kind)  # type: ignore[arg-type,return-value]


def test_a_database_from_a_newer_twinledger_is_refused(tmp_path: Path):
    path = tmp_path / "state.sqlite"
    NodeState(path).close()
    with sqlite3.connect(path) as conn:
        conn.execute("INSERT INTO schema_migrations VALUES (?, 'from-the-future', 0)", (latest("state") + 1,))
    with pytest.raises(SchemaTooNew) as refused:
        NodeState(path)
    assert f"version {latest('state') + 1}" in refused.value.message and "upgrade twinledger" in (
        refused.value.hint or ""
    )


def test_a_state_file_from_before_versioning_is_adopted(tmp_path: Path):
    path = tmp_path / "state.sqlite"
    with sqlite3.connect(path) as conn:  # the recovery-keys table as it was before bindings were ordered
        conn.execute("CREATE TABLE recovery_keys (owner TEXT PRIMARY KEY, did TEXT NOT NULL, proof TEXT NOT NULL)")
        conn.execute("INSERT INTO recovery_keys VALUES ('0xowner', 'did:key:z6Mk', '{}')")
    state = NodeState(path)
    row = state.connection().execute("SELECT owner, issued FROM recovery_keys").fetchone()
    assert tuple(row) == ("0xowner", 0)
    assert recorded(path) == list(range(1, latest("state") + 1))


def test_a_failing_migration_leaves_the_database_as_it_was(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    path = tmp_path / "index.sqlite"
    IndexDB(path).close()
    known = mig.migrations("index")
    broken = Migration(len(known) + 1, "broken", "CREATE TABLE half_done (x INTEGER);\nSELECT * FROM no_such_table;\n")
    monkeypatch.setattr(mig, "migrations", lambda database: (*known, broken))
    with pytest.raises(sqlite3.OperationalError, match="no_such_table"):
        IndexDB(path)
    with sqlite3.connect(path) as conn:
        assert current_version(conn) == len(known)
        assert not conn.execute("SELECT 1 FROM sqlite_master WHERE name = 'half_done'").fetchone()


def _open_state(path: str) -> int:
    return NodeState(Path(path)).schema_version


def test_processes_starting_together_apply_each_migration_once(tmp_path: Path):
    path = tmp_path / "state.sqlite"
    with multiprocessing.get_context("spawn").Pool(4) as pool:
        versions = pool.map(_open_state, [str(path)] * 8)
    assert versions == [latest("state")] * 8
    assert recorded(path) == list(range(1, latest("state") + 1))


def test_the_state_schema_holds_the_block_stores_pins_table():
    # the node's pins live in state.sqlite (committed with each snapshot's row); PinIndex creates the same table
    assert PINS_SCHEMA + ";" in mig.migrations("state")[0].sql


def test_the_migration_files_ship_with_the_package():
    # an installed node (the Docker image's non-editable install) has only the files pyproject's package-data names
    import fnmatch
    import tomllib

    package = Path(mig.__file__).resolve().parents[1]
    patterns = tomllib.loads((package.parents[1] / "pyproject.toml").read_text())["tool"]["setuptools"]["package-data"]
    files = [p.relative_to(package).as_posix() for p in package.rglob("*.sql")]
    assert files and all(any(fnmatch.fnmatch(f, g) for g in patterns["twinledger_node"]) for f in files), files


def test_receipt_heads_are_filled_from_the_receipts_a_node_kept_before_them(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    """A node upgraded with receipts stored chains its next receipt of each twin to that twin's newest one, not to
    the genesis (which would fork every twin's chain)."""
    path = tmp_path / "state.sqlite"
    known = mig.migrations("state")
    monkeypatch.setattr(mig, "migrations", lambda database: tuple(m for m in known if m.version < 3))
    before = NodeState(path)
    with before.write() as conn:
        for twin, digest in ((1, "0xa1"), (2, "0xb1"), (1, "0xa2"), (2, "0xb2"), (1, "0xa3")):
            conn.execute("INSERT INTO receipts (twin_id, seq, reader, purpose, digest, body, created) "
                         "VALUES (?, 1, 'r', 'p', ?, '{}', 0)", (twin, digest))  # fmt: skip
    before.close()
    monkeypatch.setattr(mig, "migrations", lambda database: known)
    after = NodeState(path)
    heads = dict(after.connection().execute("SELECT twin_id, digest FROM receipt_heads").fetchall())
    assert heads == {1: "0xa3", 2: "0xb2"}
