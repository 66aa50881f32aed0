"""Restore a backup into a fresh data directory (and, on PostgreSQL, a database without the node's schemas).

Nothing is written until every member of the archive matches the manifest's sha256 and the target is found fresh.
The members are then extracted into a directory beside the data directory (the same filesystem), synced, and
linked into place one by one (a link never replaces a file that appeared meanwhile); on any failure what was
linked is removed again, and the PostgreSQL schemas are restored last, in one transaction."""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

from twinledger.errors import InvalidInput, Unavailable
from twinledger.ipfs.store import PIN_INDEX_POINTER, REMOTE_PINS, fsync_dir
from twinledger.libc import libc
from twinledger_node.backup.archive import Manifest, Progress, extract, read_verified
from twinledger_node.db.migrations import SchemaTooNew, latest
from twinledger_node.private import SQLITE_COMPANIONS, private_dir
from twinledger_node.settings import NodeSettings

# What makes a data directory a node's: its databases and keys (node/ also holds locks and metrics, which do not).
NODE_FILES = ("index.sqlite", "state.sqlite", "node-key.json", "account-key")


def _check_engine(manifest: Manifest, url: str | None) -> None:
    if manifest.engine == "sqlite" and url is not None:
        raise InvalidInput(
            "this backup holds SQLite databases; restoring them into PostgreSQL is not supported",
            hint="unset TWINLEDGER_DATABASE_URL to restore the SQLite files into the data directory",
        )
    if manifest.engine == "postgresql" and url is None:
        raise InvalidInput(
            "this backup holds PostgreSQL schemas, and no TWINLEDGER_DATABASE_URL names a database to restore them "
            "into (restoring them as SQLite files is not supported)",
            hint="create an empty PostgreSQL database and set TWINLEDGER_DATABASE_URL to it",
        )
    if manifest.engine not in ("sqlite", "postgresql"):
        raise InvalidInput(f"this backup's engine {manifest.engine!r} is not one twinledger knows")


def _check_schema(manifest: Manifest) -> None:
    for database, version in manifest.schema.items():
        if version > latest(database):
            raise SchemaTooNew(
                f"the backup's {database} database is at schema version {version}; this twinledger knows versions "
                f"up to {latest(database)}",
                hint="restore it with the twinledger version that wrote it (or a newer one)",
            )


def _destination(data: Path, store: Path, name: str) -> Path:
    """Where archive member `name` goes: the data directory, or the block store's (TWINLEDGER_IPFS_PATH)."""
    root, _, rest = name.partition("/")
    if root in ("databases", "keys"):
        return data / "node" / rest
    if root == "ipfs":
        return store / rest
    return data / root / rest  # deployments/…


def _check_fresh(data: Path, store: Path, manifest: Manifest) -> None:
    taken = [data / "node" / f"{name}{suffix}" for name in NODE_FILES for suffix in SQLITE_COMPANIONS]
    taken += [_destination(data, store, name) for name in manifest.members]
    for path in taken:
        if path.exists():
            raise InvalidInput(f"{data} is not a fresh data directory: {path} exists",
                               hint="restore into a new, empty data directory (--data-dir)")  # fmt: skip


def _sync(root: Path, files: list[Path]) -> None:
    """Everything extracted under `root` on disk: one syncfs, else an fsync per file and directory."""
    syncfs = getattr(libc(), "syncfs", None)
    fd = os.open(root, os.O_RDONLY | os.O_DIRECTORY)
    try:
        if syncfs is not None and syncfs(fd) == 0:
            return
    finally:
        os.close(fd)
    for path in files:
        with path.open("rb") as handle:
            os.fsync(handle.fileno())
    for directory in {path.parent for path in files}:
        fsync_dir(directory)


def _make_dirs(directory: Path, data: Path, made: list[Path]) -> None:
    """Create `directory` and its missing parents, noting each in `made` (removed again on failure)."""
    missing = []
    while not directory.exists():
        missing.append(directory)
        directory = directory.parent
    for path in reversed(missing):
        if path == data / "node":
            private_dir(path)
        else:
            path.mkdir()
        made.append(path)


def restore_backup(settings: NodeSettings, archive: Path, *, progress: Progress | None = None) -> dict[str, Any]:
    started = time.monotonic()
    data, store = settings.data_dir.absolute(), settings.block_store_path.absolute()
    url = settings.database_url.get_secret_value() if settings.database_url else None
    manifest = read_verified(archive)
    _check_engine(manifest, url)
    _check_schema(manifest)
    _check_fresh(data, store, manifest)
    if url is not None:
        from twinledger_node.backup import postgres
        from twinledger_node.db.postgres import describe

        present = postgres.existing_schemas(url)
        if present:
            raise InvalidInput(
                f"the PostgreSQL database {describe(url)} already has the schema {present[0]}",
                hint="restore into a new, empty database (createdb) named by TWINLEDGER_DATABASE_URL",
            )
    made: list[Path] = []
    placed: list[Path] = []
    scratch: Path | None = None
    try:
        _make_dirs(data.parent, data, made)
        scratch = Path(tempfile.mkdtemp(dir=data.parent, prefix=f".{data.name}.restore-"))
        sizes = [int(entry["size"]) for entry in manifest.members.values()]
        written = extract(archive, manifest, scratch, progress(sum(sizes), len(sizes)) if progress else None)
        _sync(scratch, written)
        for path in written:
            name = path.relative_to(scratch).as_posix()
            if name == "databases/postgresql.dump":
                continue
            target = _destination(data, store, name)
            _make_dirs(target.parent, data, made)
            os.link(path, target)  # FileExistsError rather than replacing a file that appeared since the check
            placed.append(target)
        if any(name.startswith("ipfs/") for name in manifest.members):
            # the store must name the database holding its pins, or `twinledger ipfs gc` would see none
            pointer = store / PIN_INDEX_POINTER
            if url is None:
                pointer.write_text(str((data / "node" / "state.sqlite").resolve()))
            else:
                pointer.write_text(f"{REMOTE_PINS}postgresql {describe(url)}")
            placed.append(pointer)
        _sync(data.parent, placed)
        if url is not None:
            postgres.restore(url, scratch / "databases" / "postgresql.dump", str(manifest.data.get("pg_dump", "0")))
    except BaseException as error:
        for path in reversed(placed):
            with contextlib.suppress(OSError):
                path.unlink()
        for directory in reversed(made):
            with contextlib.suppress(OSError):
                directory.rmdir()
        if isinstance(error, OSError):  # a full disk, a directory it may not write
            where = f" ({error.filename})" if error.filename else ""
            raise Unavailable(f"the restore into {data} failed: {error.strerror or error}{where}",
                              hint="free disk space or fix the permissions, then run it again; nothing was "
                              "restored") from error  # fmt: skip
        raise
    finally:
        if scratch is not None:
            shutil.rmtree(scratch, ignore_errors=True)
    return {
        "data dir": str(data), "engine": manifest.engine, "schema": manifest.schema, "node did":
        manifest.data.get("node_did"), "files": len(placed), "created": manifest.data.get("created"),
        "block store": "restored" if any(n.startswith("ipfs/") for n in manifest.members) else "not in the backup",
        "seconds": round(time.monotonic() - started, 2),
    }  # fmt: skip
