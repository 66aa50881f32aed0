"""Replay cache: each (signer, nonce) is accepted once while its signature could still verify.

A bounded in-memory set answers most replays without touching disk; a SQLite file (WAL) is the authority, so a
node restarted within the time window still refuses a nonce it already accepted. Entries are dropped once
their signature has expired (plus clock skew): after that the time-window check refuses the request anyway.
Without a database path the cache is memory only; then it refuses new nonces when full rather than forget live
ones, unless another store is the authority (`evict=True`): the node writes each nonce in the group commit of what
the request wrote (services/commit.py), and this cache is only its fast path.
"""

from __future__ import annotations

import hashlib
import heapq
import sqlite3
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from twinledger.errors import Unavailable
from twinledger.identity.errors import ReplayedNonce
from twinledger_node.private import private_sqlite

DB_NAME: Final = "replay-cache.sqlite3"
PRUNE_EVERY_S: Final = 10.0  # expired rows go in bulk, not with a DELETE per request
# Insert a nonce's row, or take over an expired row not pruned yet; no row changed means it is live: a replay.
SPEND: Final = (
    "INSERT INTO nonces (id, expires_at) VALUES (?, ?) "
    "ON CONFLICT (id) DO UPDATE SET expires_at = excluded.expires_at WHERE nonces.expires_at < ?"
)


@dataclass
class Nonce:
    """A verified request's (signer, nonce) as the cache keys it, when its signature stops verifying, and whether
    the durable record of it has been committed (set by the group committer)."""

    key: bytes
    expires_at: int
    signer: str
    spent: bool = False


class ReplayCacheFull(Unavailable):
    """A memory-only cache holds ``max_entries`` live nonces; accepting more would mean forgetting one."""

    code = "replay-cache-full"
    http_status = 503


class ReplayCache:
    def __init__(self, directory: Path | None, *, max_entries: int = 100_000, evict: bool = False) -> None:
        self._max_entries, self._evict = max_entries, evict
        self._pruned = float("-inf")
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
    def entry_id(signer: str, nonce: str) -> bytes:
        return hashlib.sha256(f"{signer}\x00{nonce}".encode()).digest()

    def check_and_store(self, signer: str, nonce: str, *, expires_at: int, now: int) -> None:
        """Record the nonce; raise :class:`ReplayedNonce` if ``signer`` used it before within the window."""
        entry = self.entry_id(signer, nonce)
        with self._lock:
            self._prune(now)
            if entry in self._live:
                raise ReplayedNonce(f"nonce already used by {signer}", hint="use a fresh nonce for every request")
            if self._db is not None:
                if self._db.execute(SPEND, (entry, expires_at, now)).rowcount == 0:
                    raise ReplayedNonce(f"nonce already used by {signer}", hint="use a fresh nonce for every request")
            elif len(self._live) >= self._max_entries and not self._evict:
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
        if self._db is not None and now - self._pruned >= PRUNE_EVERY_S:
            self._db.execute("DELETE FROM nonces WHERE expires_at < ?", (now,))
            self._pruned = now

    def close(self) -> None:
        if self._db is not None:
            self._db.close()
            self._db = None
