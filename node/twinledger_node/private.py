"""The node's own files are readable by its user alone: the state and index databases with their WAL and
shared-memory companions, the replay cache and the node key. State files hold owners' recovery-key bindings and
every read's receipt; nobody else on the machine has a reason to read them."""

from __future__ import annotations

import os
from pathlib import Path

# SQLite creates a database's -wal, -shm and -journal files with the database file's own mode.
SQLITE_COMPANIONS = ("", "-wal", "-shm", "-journal")


def private_dir(path: Path) -> Path:
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    path.chmod(0o700)  # also when an earlier version created it readable by everyone
    return path


def private_sqlite(path: Path) -> Path:
    """Before SQLite opens `path`: create it with mode 0600, and tighten the files an earlier version left open."""
    private_dir(path.parent)
    os.close(os.open(path, os.O_RDWR | os.O_CREAT, 0o600))
    for suffix in SQLITE_COMPANIONS:
        companion = path.with_name(path.name + suffix)
        if companion.exists():
            companion.chmod(0o600)
    return path
