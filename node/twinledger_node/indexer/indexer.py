"""Follows the chain into the index: eth_getLogs from a stored cursor (in pages a provider accepts, see
`twinledger.chain.logs`), a configurable confirmation depth, reorgs detected by block hash and rolled back to the
fork point, and a full rebuild on request."""

from __future__ import annotations

import json
import logging
import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from web3 import Web3

from twinledger.chain.client import ChainClient, EventDecoder
from twinledger.chain.logs import LogScanner
from twinledger_node.db.base import Connection
from twinledger_node.db.statements import upsert
from twinledger_node.indexer.apply import apply, encode_args, hexs, twin_of_event
from twinledger_node.indexer.db import DERIVED, IndexDB, set_meta

log = logging.getLogger("twinledger.indexer")
UNKNOWN_CHAIN_TIME = 2**63 - 1  # after every expiry and deadline (and still a SQLite integer)
KEEP_BLOCKS = 256  # recent block hashes kept beyond those holding events, to find fork points


@dataclass(frozen=True)
class SyncResult:
    from_block: int
    to_block: int
    events: int
    reorg_depth: int


@dataclass(frozen=True)
class HeadView:
    """What the indexer last saw of the chain head: for freshness and for estimating chain time now.

    `seen_monotonic` is when a poll last saw the head (freshness); `changed_monotonic` is a time at which the chain
    did not yet have this head: the previous poll, which still saw the head before it. Re-seeing an unchanged head
    moves only the first, so chain time keeps advancing while no block is mined (anvil mines only on transactions).
    """

    number: int = -1
    timestamp: int = 0
    seen_monotonic: float = 0.0
    indexed_to: int = -1
    changed_monotonic: float = 0.0

    def age(self) -> float:
        return time.monotonic() - self.seen_monotonic if self.seen_monotonic else float("inf")

    def observed(self, number: int, timestamp: int, indexed_to: int, *, asked_at: float) -> HeadView:
        """The view after a poll that asked for the head at `asked_at` (monotonic) and got this block."""
        if (number, timestamp) == (self.number, self.timestamp):
            changed = self.changed_monotonic
        else:  # the block was mined after the previous poll saw the head before it (or, at the first poll, now)
            changed = self.seen_monotonic or asked_at
        return HeadView(number, timestamp, asked_at, indexed_to, changed)

    def chain_now(self) -> int:
        """Chain time now: the head's timestamp plus the wall-clock time since the head changed, rounded up. The
        change is dated to the poll before it was seen, so the estimate runs ahead rather than behind: expiry errs
        towards refusal (after an RPC outage, by up to the outage, until the next block)."""
        if not self.changed_monotonic:  # no head seen yet: chain time is unknown, so every expiry counts as passed
            return UNKNOWN_CHAIN_TIME
        return self.timestamp + math.ceil(time.monotonic() - self.changed_monotonic)


class Indexer:
    def __init__(
        self,
        db: IndexDB,
        client: ChainClient,
        decoder: EventDecoder,
        addresses: list[str],
        *,
        start_block: int = 0,
        confirmations: int = 0,
        log_chunk: int = 2000,
        on_head: Callable[[HeadView], None] | None = None,
    ) -> None:
        self.db = db
        self.on_head = on_head  # told every head a sync saw (the node publishes it to its API processes)
        self.client = client
        self.decoder = decoder
        self.addresses = [Web3.to_checksum_address(a) for a in addresses]
        self.start_block = start_block
        self.confirmations = confirmations
        self.scanner = LogScanner(client.w3, page=log_chunk)
        self.head = HeadView()
        self._lock = threading.Lock()
        identity = json.dumps({"chain": client.chain_id, "contracts": sorted(a.lower() for a in addresses)})
        stored = db.get_meta("identity")
        if stored is not None and stored != identity:
            log.warning("index was built for other contracts or chain; rebuilding")
            self.rebuild()
        with db.write() as conn:
            set_meta(conn, "identity", identity)

    @staticmethod
    def _prune_blocks(conn: Connection, low: int, high: int) -> None:
        """Forget the hashes of blocks `low`..`high` - 1 (those a page moved out of the kept window) that hold no
        event. Only that range: older blocks were pruned by the pages before, and a condition on every older block
        (or NOT IN over all events, which PostgreSQL answered by hashing every event) read them all at each page.
        Two range reads of primary keys and deletes by key, whatever plan a planner would pick for a join."""
        stored = conn.execute("SELECT number FROM blocks WHERE number >= ? AND number < ?", (low, high)).fetchall()
        if not stored:
            return
        holding = conn.execute(
            "SELECT DISTINCT block_number FROM events WHERE block_number >= ? AND block_number < ?", (low, high)
        ).fetchall()
        keep = {row[0] for row in holding}
        conn.executemany("DELETE FROM blocks WHERE number = ?", [(row[0],) for row in stored if row[0] not in keep])

    @property
    def cursor(self) -> int:
        return int(self.db.get_meta("cursor", str(self.start_block - 1)) or self.start_block - 1)

    # ------------------------------------------------------------------ sync

    def sync_once(self) -> SyncResult:
        """Catch up to head - confirmations. Raises on RPC errors (the caller retries; freshness lapses)."""
        with self._lock:
            w3 = self.client.w3
            asked_at = time.monotonic()  # the head returned existed no later than the answer; err towards "older"
            head_block = w3.eth.get_block("latest")
            head_number = int(head_block["number"])
            target = head_number - self.confirmations
            reorg_depth = self._check_reorg()
            first = self.cursor + 1
            count = 0
            block_cache: dict[int, Any] = {}
            for page in self.scanner.pages({"address": self.addresses}, first, target):
                rows = []
                for entry in page.logs:
                    number = int(entry["blockNumber"])
                    block = block_cache.get(number) or block_cache.setdefault(number, w3.eth.get_block(number))
                    if bytes(block["hash"]) != bytes(entry["blockHash"]):
                        raise RuntimeError(f"block {number} changed during sync (reorg in progress); retrying")
                    event = self.decoder.decode(entry)
                    if event is not None:
                        rows.append((event, int(block["timestamp"])))
                end = page.to_block
                end_block = block_cache.get(end) or w3.eth.get_block(end)
                with self.db.write() as conn:
                    for event, timestamp in rows:
                        self._store_event(conn, event, timestamp)
                    for number, block in block_cache.items():
                        self._store_block(conn, number, hexs(block["hash"]), int(block["timestamp"]))
                    self._store_block(conn, end, hexs(end_block["hash"]), int(end_block["timestamp"]))
                    set_meta(conn, "cursor", end)
                    self._prune_blocks(conn, page.from_block - KEEP_BLOCKS, end - KEEP_BLOCKS)
                count += len(rows)
                block_cache.clear()
            self.head = self.head.observed(head_number, int(head_block["timestamp"]), target, asked_at=asked_at)
            if self.on_head is not None:
                self.on_head(self.head)
            return SyncResult(first, target, count, reorg_depth)

    def _store_block(self, conn: Connection, number: int, block_hash: str, timestamp: int) -> None:
        conn.execute(upsert("blocks", ("number", "hash", "timestamp"), ("number",)), (number, block_hash, timestamp))

    def _store_event(self, conn: Connection, event: Any, timestamp: int) -> None:
        args = json.loads(encode_args(event.args))
        conn.execute(
            upsert("events", ("block_number", "log_index", "block_hash", "tx_hash", "address", "name", "twin_id",
                              "args"), ("block_number", "log_index")),
            (event.block_number, event.log_index, event.block_hash, event.tx_hash, event.address, event.name,
             twin_of_event(event.name, args), json.dumps(args, sort_keys=True)),
        )  # fmt: skip
        row = {
            "name": event.name, "args": args, "block_number": event.block_number, "tx_hash": event.tx_hash,
            "log_index": event.log_index, "timestamp": timestamp,
        }  # fmt: skip
        apply(conn, row)

    # ------------------------------------------------------------------ reorgs

    def _check_reorg(self) -> int:
        """Roll back to the fork point when stored block hashes no longer match the chain; returns the depth."""
        cursor = self.cursor
        if cursor < self.start_block:
            return 0
        conn = self.db.connection()
        stored = conn.execute("SELECT number, hash FROM blocks WHERE number <= ? ORDER BY number DESC", (cursor,))
        fork = self.start_block - 1
        for row in stored.fetchall():
            block = self.client.w3.eth.get_block(int(row["number"]))
            if hexs(block["hash"]) == row["hash"]:
                fork = int(row["number"])
                break
        if fork == cursor:
            return 0
        log.warning("chain reorganised: rolling back the index from block %d to %d", cursor, fork)
        self.rollback(fork)
        return cursor - fork

    def rollback(self, fork_block: int) -> None:
        """Forget everything after `fork_block` and re-derive the tables from the events that remain."""
        with self.db.write() as conn:
            conn.execute("DELETE FROM events WHERE block_number > ?", (fork_block,))
            conn.execute("DELETE FROM blocks WHERE number > ?", (fork_block,))
            self._replay(conn)
            set_meta(conn, "cursor", fork_block)

    def rebuild(self) -> None:
        """Forget everything: the next sync indexes from the deployment block."""
        with self.db.write() as conn:
            conn.execute("DELETE FROM events")
            conn.execute("DELETE FROM blocks")
            for table in DERIVED:
                conn.execute(f"DELETE FROM {table}")  # noqa: S608 - table names are constants
            set_meta(conn, "cursor", self.start_block - 1)

    @staticmethod
    def _replay(conn: Connection) -> None:
        for table in DERIVED:
            conn.execute(f"DELETE FROM {table}")  # noqa: S608 - table names are constants
        rows = conn.execute(
            "SELECT e.*, b.timestamp FROM events e JOIN blocks b ON b.number = e.block_number "
            "ORDER BY e.block_number, e.log_index"
        ).fetchall()
        for row in rows:
            event = dict(row)
            event["args"] = json.loads(row["args"])
            apply(conn, event)

    # ------------------------------------------------------------------ loop

    def run(self, stop: threading.Event, interval: float) -> None:
        """Sync until `stop` is set; an RPC failure is logged and retried (the guard sees the index go stale)."""
        while not stop.is_set():
            try:
                self.sync_once()
            except Exception as error:  # any RPC or decoding failure: keep the loop alive, freshness lapses
                log.warning("index sync failed: %s", error.__class__.__name__ + ": " + str(error)[:200])
            stop.wait(interval)
