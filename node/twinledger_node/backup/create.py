"""Take a backup of a node, running or not.

Consistency: the databases first, as snapshots (SQLite's online backup of each file, or one pg_dump of both
schemas); then the blocks. A snapshot's blocks are written (and synced) before the rows that reference them commit,
and blocks leave the store only through gc or an explicit delete, which take the store's gc lock exclusively: this
holds it shared from before the database snapshot to the end of the block copy, so every block a row of the
snapshot references is still there to be copied. Blocks written after the snapshot may be copied too: unreferenced,
harmless."""

from __future__ import annotations

import contextlib
import fcntl
import os
import sqlite3
import tempfile
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import twinledger
from twinledger.errors import NotFound, Unavailable
from twinledger.identity import DidKey
from twinledger_node.backup.archive import FORMAT, ArchiveWriter, Progress
from twinledger_node.db.migrations import current_version
from twinledger_node.keys import _read_secret
from twinledger_node.runtime import account_key_path
from twinledger_node.settings import NodeSettings

# What never goes into an archive from the block store: staging files, lock files, SQLite's companions (the
# databases are copied through the backup API), and the pointer to the pins (restore writes it for its target).
_STORE_SKIP = {"tmp", "gc.lock", "pins-index"}
_SQLITE_COMPANIONS = ("-wal", "-shm", "-journal")


def sqlite_snapshot(source: Path, copy: Path) -> int:
    """A consistent copy of the SQLite database `source` (while others write it) into `copy`, as a single file;
    returns its schema version (0 when it records none, as the block store's files)."""
    if not source.is_file():
        raise NotFound(f"no database at {source}", hint="pass the node's --data-dir (or TWINLEDGER_DATA_DIR)")
    os.close(os.open(copy, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
    src = sqlite3.connect(source.as_uri() + "?mode=rw", uri=True, timeout=30)  # never creates a missing file
    dst = sqlite3.connect(copy)
    try:
        src.backup(dst)  # all pages in one step: one read transaction, so one point in time
        dst.execute("PRAGMA journal_mode=DELETE")  # the archive's copy needs no -wal beside it
        return current_version(dst)
    finally:
        dst.close()
        src.close()


@contextlib.contextmanager
def _no_gc(store: Path) -> Iterator[None]:
    """Hold the block store's gc lock shared: writers go on, gc and deletes wait."""
    fd = os.open(store / "gc.lock", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_SH)
        yield
    finally:
        os.close(fd)


def _store_files(store: Path) -> tuple[list[Path], list[Path]]:
    """The block store's SQLite databases and its other files (block files), in a stable order."""
    databases: list[Path] = []
    files: list[Path] = []
    for path in sorted(store.rglob("*")):
        relative = path.relative_to(store)
        if relative.parts[0] in _STORE_SKIP or not path.is_file() or path.name.endswith(_SQLITE_COMPANIONS):
            continue
        (databases if path.suffix == ".sqlite" else files).append(path)
    return databases, files


def create_backup(settings: NodeSettings, target: Path, *, force: bool = False,
                  progress: Progress | None = None) -> dict[str, Any]:  # fmt: skip
    try:
        return _create(settings, target, force=force, progress=progress)
    except OSError as error:  # a full disk, an unreadable file: FILE.tmp is gone already
        where = f" ({error.filename})" if error.filename else ""
        raise Unavailable(
            f"the backup failed: {error.strerror or error}{where}",
            hint="free disk space or fix the permissions, then run it again; nothing was written",
        ) from error


def _create(settings: NodeSettings, target: Path, *, force: bool, progress: Progress | None) -> dict[str, Any]:
    started = time.monotonic()
    data = settings.data_dir
    node_key = data / "node" / "node-key.json"
    # Replicas get the node's identity from the operator's secrets (TWINLEDGER_NODE_KEY): kept there, not here.
    configured_key = settings.node_key.get_secret_value() if settings.node_key else None
    key_text = configured_key or _read_secret(node_key)
    if key_text is None:
        raise NotFound(f"no node key at {node_key}: {data} is not a node's data directory",
                       hint="pass the node's --data-dir (or TWINLEDGER_DATA_DIR / --config)")  # fmt: skip
    url = settings.database_url.get_secret_value() if settings.database_url else None
    embedded = settings.ipfs_backend == "embedded"
    store = settings.block_store_path
    summary: dict[str, Any] = {"file": str(target), "engine": "postgresql" if url else "sqlite"}
    manifest: dict[str, Any] = {
        "format": FORMAT, "twinledger": twinledger.__version__, "engine": summary["engine"],
        "created": datetime.now(UTC).isoformat(timespec="seconds"), "node_did": DidKey.from_jwk(key_text).did,
        "ipfs_backend": settings.ipfs_backend,
    }  # fmt: skip
    target = target.absolute()
    with (
        ArchiveWriter(target, force=force) as archive,
        tempfile.TemporaryDirectory(dir=target.parent, prefix=f".{target.name}.") as scratch_dir,
        _no_gc(store) if embedded and store.is_dir() else contextlib.nullcontext(),
    ):
        scratch = Path(scratch_dir)
        database_bytes = 0
        if url is None:
            manifest["schema"] = {}
            # state before index: the state's rows name index rows (periods), and the index only grows
            for database in ("state", "index"):
                copy = scratch / f"{database}.sqlite"
                manifest["schema"][database] = sqlite_snapshot(data / "node" / f"{database}.sqlite", copy)
                database_bytes += archive.add_file(f"databases/{database}.sqlite", copy)
                copy.unlink()
        else:
            from twinledger_node.backup import postgres

            copy = scratch / "postgresql.dump"
            manifest["schema"], manifest["pg_dump"] = postgres.dump(url, copy)
            database_bytes += archive.add_file("databases/postgresql.dump", copy)
            copy.unlink()
        summary["schema"] = {database: manifest["schema"][database] for database in ("index", "state")}
        summary["database bytes"] = database_bytes
        keys = [account_key_path(data)] + ([] if configured_key else [node_key])
        summary["keys"] = sum(1 for key in keys if key.is_file())
        for key in keys:
            if key.is_file():
                archive.add_bytes(f"keys/{key.name}", (_read_secret(key) or "").encode())
        # the default deployments directory: a local chain's node would otherwise deploy new contracts at start
        deployments = data / "deployments"
        for path in sorted(deployments.glob("*.json")) if settings.deployments_file is None else ():
            archive.add_file(f"deployments/{path.name}", path)
        if embedded and store.is_dir():
            databases, files = _store_files(store)
            for path in databases:
                copy = scratch / path.name
                sqlite_snapshot(path, copy)
                archive.add_file(f"ipfs/{path.relative_to(store)}", copy)
                copy.unlink()
            total = sum(path.stat().st_size for path in files)
            advance = progress(total, len(files)) if progress is not None else None
            for path in files:
                archive.add_file(f"ipfs/{path.relative_to(store).as_posix()}", path, advance)
            summary["block files"] = len(files)
            summary["block store bytes"] = sum(
                entry["size"] for name, entry in archive.members.items() if name.startswith("ipfs/")
            )
        elif embedded:
            summary["block store"] = f"none at {store}"
        else:
            summary["block store"] = "not included: the blocks are in Kubo (back up its repository apart)"
        summary["bytes"] = archive.finish(manifest)
    summary["node did"] = manifest["node_did"]
    summary["seconds"] = round(time.monotonic() - started, 2)
    return summary
