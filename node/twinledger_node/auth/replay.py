"""Replay cache: each (signer, nonce) is accepted once while its signature could still verify.

A bounded in-memory set answers most replays without touching disk; a SQLite file (WAL) is the authority, so a
node restarted within the time window still refuses a nonce it already accepted. Entries are dropped once
their signature has expired (plus clock skew): after that the time-window check refuses the request anyway.
Without a database path the cache is memory only; then it refuses new nonces when full rather than forget live
ones.
"""

from __future__ import annotations

import hashlib
import heapq
import sqlite3
import threading
from pathlib import Path
from typing import Final

from twinledger.errors import Unavailable
from twinledger.identity.errors import ReplayedNonce
from twinledger_node.private import private_sqlite

DB_NAME: Final = "replay-cache.sqlite3"


class ReplayCacheFull(Unavailable):
    """A memory-only cache holds ``max_entries`` live nonces; accepting more would mean forgetting one."""

    code = "replay-cache-full"
    http_status = 503


class ReplayCache:
    def __init__(self, directory: Path | None, *, max_entries: int = 100_000) -> None:
        self._max_entries = max_entries
        self._live: dict[bytes, int] = {}
        self._expiries: list[tuple[int, bytes]] = []
        self._lock = threading.Lock()
        self._db: sqlite3.Connection | None = None
        if directory is not None:
            path = private_sqlite(directory / DB_NAME)
            self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
            self._db.execute("PRAGMA journal_mode=WAL")
            # NORMAL under WAL survives a crash of the node process (what a replay attacker can provoke); only
            # an
            # OS crash could lose the last commits, and those nonces expire within the window anyway.
            self._db.execute("PRAGMA synchronous=NORMAL")
            self._db.execute(
                "CREATE TABLE IF NOT EXISTS nonces (id BLOB PRIMARY KEY, expires_at INTEGER NOT NULL) WITHOUT ROWID"
            )
            self._db.execute("CREATE INDEX IF NOT EXISTS nonces_expiry ON nonces (expires_at)")

    @staticmethod
    def _entry_id(signer: str, nonce: str) -> bytes:
        return hashlib.sha256(f"{signer}\x00{nonce}".encode()).digest()

    def check_and_store(self, signer: str, nonce: str, *, expires_at: int, now: int) -> None:
        """Record the nonce; raise :class:`ReplayedNonce` if ``signer`` used it before within the window."""
        entry = self._entry_id(signer, nonce)
        with self._lock:
            self._prune(now)
            if entry in self._live:
                raise ReplayedNonce(f"nonce already used by {signer}", hint="use a fresh nonce for every request")
            if self._db is not None:
                try:
                    self._db.execute("INSERT INTO nonces (id, expires_at) VALUES (?, ?)", (entry, expires_at))
                except sqlite3.IntegrityError as exc:
                    raise ReplayedNonce(
                        f"nonce already used by {signer}", hint="use a fresh nonce for every request"
                    ) from exc
            elif len(self._live) >= self._max_entries:
                raise ReplayCacheFull("the replay cache is full", hint="configure a replay database directory")
            if len(self._live) >= self._max_entries:
                # SQLite holds the entry; memory keeps the soonest-expiring ones out to stay bounded.
                self._evict_one()
            self._live[entry] = expires_at
            heapq.heappush(self._expiries, (expires_at, entry))

    def __len__(self) -> int:
        return len(self._live)

    def _evict_one(self) -> None:
        while self._expiries:
            _, entry = heapq.heappop(self._expiries)
            if self._live.pop(entry, None) is not None:
                return

    def _prune(self, now: int) -> None:
        while self._expiries and self._expiries[0][0] < now:
            _, entry = heapq.heappop(self._expiries)
            self._live.pop(entry, None)
        if self._db is not None:
            self._db.execute("DELETE FROM nonces WHERE expires_at < ?", (now,))

    def close(self) -> None:
        if self._db is not None:
            self._db.close()
            self._db = None
