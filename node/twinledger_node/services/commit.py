"""Group commit: what many concurrent requests write to the node's state is made durable together.

One committer thread per process takes everything queued (up to `max_group` items) and writes it in ONE
`BEGIN IMMEDIATE` transaction of state.sqlite, fsynced once (`synchronous=FULL` on its connection), after the
blocks of every push in the group were made durable by one syncfs round (`commit_together`). Each request waits
for its group: a push's 202 and a read's body are sent only once their rows are on disk, so nothing is ever
acknowledged that a crash could take back, and the cost of a sync is shared by everyone who arrived meanwhile.

What a group writes:
- pushes (`PushWork`): the snapshot row, its pins (when the block store keeps its pins in state.sqlite, in the same
  transaction: a snapshot and its pins exist together or not at all) and the push's replay nonce. The row names
  the head the push was built on; if another process moved that twin's head meanwhile, the push is refused with
  `HeadMoved` and its caller rebuilds it on the new head (its blocks, never pinned, are left to gc).
- receipts (`ReceiptWork`): each twin's head is read inside the transaction (so receipts chain correctly across
  processes sharing the file), the receipt is built, node-signed and inserted, and the read's nonce inserted. A
  refused read's denial record (services/denials.py) is a ReceiptWork too, in the same chain; nobody waits for it.
- nonces alone (`NonceWork`): a signed request that writes nothing else still spends its nonce durably.

Nonces: the `nonces` table's primary key is the durable replay check. An in-memory set in each process answers most
replays at once; the row inserted in the same transaction as the read's receipt is what refuses a replay that
races through another process or arrives after a restart. Expired rows are pruned in bulk, once per
`PRUNE_EVERY_S`, inside a group's transaction.

On PostgreSQL each statement the committer waits for is a network round trip, taken while the API process's event
loop competes for the same GIL; the careful transaction above takes two per group of reads and two more per push.
So a group is first tried in ONE pipelined round trip (`_in_one_trip`), built on what this process expects: each
receipt chained to the head its last commit left (`_heads`), every nonce new, every push's head unmoved. The
statements themselves check those expectations and abort the transaction when one is wrong (a nonce's primary key,
a snapshot's (twin, seq) key, a head guard that divides by zero), and the group is then done the careful way. Only
a surprise (another process appended to the twin, a replay that got past the in-memory check) pays the second try.

Overload: the queue is bounded (`capacity`); past it `submit` raises `Overloaded`, answered 503 with Retry-After,
so memory never grows without bound and nothing queued is ever dropped.
"""

from __future__ import annotations

import json
import logging
import queue
import sqlite3
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any

from twinledger.errors import Unavailable
from twinledger.identity.errors import ReplayedNonce
from twinledger.ipfs.store import FileBlockStore, Transaction, commit_together
from twinledger.provenance import RECEIPT_GENESIS, receipt_digest
from twinledger_node.auth.replay import PRUNE_EVERY_S, SPEND, Nonce
from twinledger_node.db.base import Connection
from twinledger_node.db.pins import pins_live_in
from twinledger_node.problem import Problem
from twinledger_node.services.cache import LRU
from twinledger_node.state import NodeState

log = logging.getLogger("twinledger.commit")
RETRY_AFTER_S = 1


class Overloaded(Problem):
    """The commit queue is full: the request is refused before anything of it is written."""

    def __init__(self, what: str, capacity: int) -> None:
        super().__init__(
            503, "overloaded", "Node overloaded",
            f"the node's commit queue holds {capacity} {what}s waiting to be made durable, its limit",
            hint=f"retry after {RETRY_AFTER_S} s; nothing of this request was stored",
        )  # fmt: skip
        self.retry_after = RETRY_AFTER_S


class HeadMoved(Exception):
    """Another process appended to the twin first: the push must be rebuilt on the new head."""


@dataclass
class PushWork:
    twin_id: int
    previous_seq: int  # the head the manifest was built on (0: none)
    row: tuple[Any, ...]  # the snapshots row, in SNAPSHOT_COLUMNS order
    pins: list[str]
    staged: Transaction | None
    nonce: Nonce | None
    future: Future[None] = field(default_factory=Future)


@dataclass
class ReceiptWork:
    twin_id: int
    build: Callable[[str], dict[str, Any]]  # the signed receipt, given the digest of the twin's previous one
    nonce: Nonce | None
    future: Future[dict[str, Any]] = field(default_factory=Future)


@dataclass
class NonceWork:
    nonce: Nonce
    future: Future[None] = field(default_factory=Future)


Work = PushWork | ReceiptWork | NonceWork
SNAPSHOT_COLUMNS = "twin_id, seq, manifest_cid, content_cid, manifest_digest, size, sha256, producer, created, period"


RECEIPT_HEAD = "SELECT digest FROM receipt_heads WHERE twin_id = ?"  # kept with the receipts (state migration 3)
# Aborts its transaction unless the twin's head is still the given digest: COUNT(*) is 0 then, and the division by it
# fails at run time (a subquery-free constant like 1/0 would be folded and fail at planning, whatever the head).
HEAD_UNCHANGED = "SELECT 1 / COUNT(*) FROM receipt_heads WHERE twin_id = ? AND digest = ?"
INSERT_RECEIPTS = (
    "INSERT INTO receipts (twin_id, seq, reader, purpose, digest, body, created) VALUES (?, ?, ?, ?, ?, ?, ?)"
)
UPSERT_HEADS = (
    "INSERT INTO receipt_heads (twin_id, digest) VALUES (?, ?) ON CONFLICT (twin_id) "
    "DO UPDATE SET digest = excluded.digest"
)
INSERT_SNAPSHOT = f"INSERT INTO snapshots ({SNAPSHOT_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"  # noqa: S608
HEADS_KEPT = 100_000  # twins whose receipt head this process remembers (about 100 bytes each)


def replayed(nonce: Nonce) -> ReplayedNonce:
    return ReplayedNonce(f"nonce already used by {nonce.signer}", hint="use a fresh nonce for every request")


class GroupCommitter:
    def __init__(
        self,
        state: NodeState,
        store: object,
        *,
        capacity: int = 1024,
        max_group: int = 256,
    ) -> None:
        self.state = state
        # Pins commit with the snapshot rows when the block store keeps them in this same database.
        self.pins_here = isinstance(store, FileBlockStore) and pins_live_in(store.pin_index, state)
        self.block_store = store if isinstance(store, FileBlockStore) else None
        self.capacity, self.max_group = capacity, max_group
        self._queue: queue.Queue[Work | None] = queue.Queue()
        self._in_flight = 0  # submitted and not yet answered: what the bound counts
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self._start_lock = threading.Lock()
        self._pruned = 0.0
        self._heads: LRU[int, str] = LRU(HEADS_KEPT)  # each twin's receipt head as this process's last commit left it
        self.one_trip = state.url is not None  # SQLite runs in-process: nothing to save
        self.on_commit: Callable[[str], None] = lambda path: None  # told each group's path (metrics)

    # ------------------------------------------------------------------ queue

    def submit(self, work: Work) -> Future[Any]:
        """Queue `work`; its future resolves once its group is durable. Raises `Overloaded` when the queue is full."""
        with self._lock:
            if self._in_flight >= self.capacity:
                kind = {PushWork: "push", ReceiptWork: "read", NonceWork: "request"}[type(work)]
                raise Overloaded(kind, self.capacity)
            self._in_flight += 1
        self._ensure_running()
        self._queue.put(work)
        return work.future

    def _ensure_running(self) -> None:
        if self._thread is not None and self._thread.is_alive():
            return
        with self._start_lock:
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._run, name="twinledger-commit", daemon=True)
                self._thread.start()

    def stop(self) -> None:
        """Commit what is queued, then end the thread."""
        with self._start_lock:
            thread, self._thread = self._thread, None
        if thread is not None:
            self._queue.put(None)
            thread.join(timeout=30)

    def in_flight(self) -> int:
        """Items submitted and not yet answered (queued, or in the group being committed)."""
        return self._in_flight

    # ------------------------------------------------------------------ the committer thread

    def _run(self) -> None:
        while True:
            first = self._queue.get()
            if first is None:
                return
            group: list[Work] = [first]
            stop = False
            while len(group) < self.max_group:
                try:
                    more = self._queue.get_nowait()
                except queue.Empty:
                    break
                if more is None:
                    stop = True
                    break
                group.append(more)
            try:
                # this connection's commits are what acknowledgements wait for; asked for each group, as a lost
                # PostgreSQL session is replaced by a new one
                self._commit(self.state.durable_connection(), group)
            except BaseException as error:  # never leave a waiter hanging
                log.exception("group commit failed")
                for work in group:
                    if not work.future.done():
                        work.future.set_exception(error)
            finally:
                with self._lock:
                    self._in_flight -= len(group)
            if stop:
                return

    def _commit(self, conn: Connection, group: list[Work]) -> None:
        pushes = [w for w in group if isinstance(w, PushWork)]
        staged = [w.staged for w in pushes if w.staged is not None]
        if staged and self.block_store is not None:
            try:
                commit_together(self.block_store, staged)
            except OSError as error:
                failure = Unavailable(
                    f"the block store could not write: {error.strerror or error}",
                    hint="free disk space or fix the store's permissions, then retry; nothing was added",
                )
                for work in pushes:
                    if work.staged is not None:
                        work.staged.rollback()
                    work.future.set_exception(failure)
                group = [w for w in group if not isinstance(w, PushWork)]
                pushes = []
        results: dict[int, Any] = {}
        failures: dict[int, BaseException] = {}
        try:
            with self.state.writer():
                self._transaction(conn, group, results, failures)
        except sqlite3.OperationalError as error:  # disk full, I/O error, a lock held past the timeout
            failure = Unavailable(f"the node's state could not be written: {error}", hint="retry shortly")
            for item in group:
                if not item.future.done():
                    item.future.set_exception(failure)
            return
        finally:
            for work in pushes:
                if work.staged is not None:
                    work.staged.close()  # blocks pinned (or refused): gc may run again
        for i, item in enumerate(group):
            if i in failures:
                item.future.set_exception(failures[i])
                continue
            if item.nonce is not None:
                item.nonce.spent = True
            item.future.set_result(results.get(i))  # type: ignore[arg-type]  # None for pushes and nonces

    def _transaction(
        self, conn: Connection, group: list[Work], results: dict[int, Any], failures: dict[int, BaseException]
    ) -> None:
        twins = list(dict.fromkeys(item.twin_id for item in group if isinstance(item, ReceiptWork)))
        if self.one_trip and self._in_one_trip(conn, group, twins, results):
            self.on_commit("one-trip")
            return
        for twin in twins:  # what follows reads them afresh
            self._heads.discard(twin)
        reads = [item for item in group if not isinstance(item, PushWork)]
        heads: dict[int, str] = {}
        try:
            # What the group needs to know first, asked in one round trip on PostgreSQL (SQLite is in-process):
            # the writer lock, every nonce of its reads and lone nonces spent in one statement, and the receipt head
            # of each twin read, inside the write transaction, so no other process can append meanwhile.
            with self.state.pipeline(conn):
                self._begin(conn)
                spending = self._spend_all(conn, [item.nonce for item in reads])
                asked = {twin: conn.execute(RECEIPT_HEAD, (twin,)) for twin in twins}
                unspent = spending()
                for twin, cursor in asked.items():
                    last = cursor.fetchone()
                    heads[twin] = last[0] if last else RECEIPT_GENESIS
            receipts: list[tuple[Any, ...]] = []
            for i, item in enumerate(group):
                # One item refused (a replayed nonce, a moved head) takes nothing of the others with it.
                if not isinstance(item, PushWork):
                    if item.nonce is not None and id(item.nonce) in unspent:
                        failures[i] = replayed(item.nonce)
                    elif isinstance(item, ReceiptWork):
                        results[i] = self._receipt(item, heads, receipts)
                    continue
                try:
                    self._push(conn, item)
                except (ReplayedNonce, HeadMoved, sqlite3.IntegrityError) as error:
                    conn.execute("ROLLBACK TO item")
                    conn.execute("RELEASE item")
                    failures[i] = error
            with self.state.pipeline(conn):
                self._append_receipts(conn, receipts, heads)
                conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        for twin in twins:
            self._heads.put(twin, heads[twin])
        self.on_commit("careful")

    def _append_receipts(self, conn: Connection, receipts: list[tuple[Any, ...]], heads: dict[int, str]) -> None:
        if receipts:
            conn.executemany(INSERT_RECEIPTS, receipts)
            conn.executemany(UPSERT_HEADS, [(twin, heads[twin]) for twin in dict.fromkeys(row[0] for row in receipts)])

    def _begin(self, conn: Connection) -> None:
        """The write transaction, with the bulk prune of expired nonces when it is due."""
        conn.execute("BEGIN IMMEDIATE")
        now = time.time()
        if now - self._pruned >= PRUNE_EVERY_S:
            conn.execute("DELETE FROM nonces WHERE expires_at < ?", (int(now),))
            self._pruned = now

    def _in_one_trip(
        self, conn: Connection, group: list[Work], twins: list[int], results: dict[int, Any]
    ) -> bool:  # fmt: skip
        """The whole group in one pipelined round trip, if it is what this process expects (module docstring);
        False, with nothing written, when it is not and the group needs the careful transaction."""
        heads: dict[int, str] = {}
        for twin in twins:
            known = self._heads.get(twin)
            if known is None:
                return False
            heads[twin] = known
        expected = dict(heads)  # `heads` moves on as receipts are chained
        nonces = [item.nonce for item in group if item.nonce is not None]
        if len({nonce.key for nonce in nonces}) != len(nonces):
            return False  # a replay inside the group: the careful way says whose
        built: dict[int, Any] = {}
        receipts: list[tuple[Any, ...]] = []
        for i, item in enumerate(group):
            if isinstance(item, ReceiptWork):
                built[i] = self._receipt(item, heads, receipts)
        try:
            with self.state.pipeline(conn):
                self._begin(conn)
                if nonces:
                    rows = ", ".join(["(?, ?)"] * len(nonces))
                    conn.execute(f"INSERT INTO nonces (id, expires_at) VALUES {rows}",  # noqa: S608
                                 [v for nonce in nonces for v in (nonce.key, nonce.expires_at)])  # fmt: skip
                for twin in twins:
                    conn.execute(HEAD_UNCHANGED, (twin, expected[twin]))
                for item in group:
                    if isinstance(item, PushWork):
                        self._insert_push(conn, item)
                self._append_receipts(conn, receipts, heads)
                conn.execute("COMMIT")
        except sqlite3.OperationalError:  # the database is away: the careful way would fail the same
            conn.execute("ROLLBACK")
            raise
        except Exception:  # an expectation the statements refused (each engine's own error class)
            conn.execute("ROLLBACK")
            return False
        results.update(built)
        for twin in twins:
            self._heads.put(twin, heads[twin])
        return True

    def _spend_all(self, conn: Connection, nonces: list[Nonce | None]) -> Callable[[], set[int]]:
        """Spend `nonces` in one statement, however many reads a group holds; returns what tells, once called, the
        ids (`id()`) of those refused: live already, or twice in the group (called after the statements sent with
        it, so that one round trip carries them all)."""
        fresh: dict[bytes, Nonce] = {}
        refused: set[int] = set()
        for nonce in nonces:
            if nonce is None:
                continue
            if nonce.key in fresh:
                refused.add(id(nonce))
            else:
                fresh[nonce.key] = nonce
        if not fresh:
            return lambda: refused
        rows = ", ".join(["(?, ?)"] * len(fresh))
        cursor = conn.execute(
            f"INSERT INTO nonces (id, expires_at) VALUES {rows} ON CONFLICT (id) DO UPDATE "  # noqa: S608
            "SET expires_at = excluded.expires_at WHERE nonces.expires_at < ? RETURNING id",
            [*(v for n in fresh.values() for v in (n.key, n.expires_at)), int(time.time())],
        )

        def refusals() -> set[int]:
            taken = {bytes(row[0]) for row in cursor.fetchall()}
            return refused | {id(nonce) for key, nonce in fresh.items() if key not in taken}

        return refusals

    def _push(self, conn: Connection, work: PushWork) -> None:
        """The push's nonce spent and its head checked in one round trip (PostgreSQL), its rows written in another,
        under a savepoint: a push refused after its nonce went in (HeadMoved) leaves nothing."""
        with self.state.pipeline(conn):
            conn.execute("SAVEPOINT item")
            spent = None
            if work.nonce is not None:
                spent = conn.execute(SPEND + " RETURNING id", (work.nonce.key, work.nonce.expires_at, int(time.time())))
            head = conn.execute("SELECT MAX(seq) FROM snapshots WHERE twin_id = ?", (work.twin_id,)).fetchone()[0]
            replay = spent is not None and not spent.fetchall()
        if replay:
            assert work.nonce is not None
            raise replayed(work.nonce)
        if (head or 0) != work.previous_seq:
            raise HeadMoved(f"twin {work.twin_id} is at #{head}, the push was built on #{work.previous_seq}")
        with self.state.pipeline(conn):
            self._insert_push(conn, work)
            conn.execute("RELEASE item")

    def _insert_push(self, conn: Connection, work: PushWork) -> None:
        """The push's snapshot row, and its pins when they live in this database."""
        conn.execute(INSERT_SNAPSHOT, work.row)
        if self.pins_here:
            conn.executemany("INSERT INTO pins (cid) VALUES (?) ON CONFLICT DO NOTHING", [(c,) for c in work.pins])

    def _receipt(self, work: ReceiptWork, heads: dict[int, str], rows: list[tuple[Any, ...]]) -> dict[str, Any]:
        """The signed receipt, chained to the twin's previous one (`heads`, read in the transaction); its row goes
        into `rows`."""
        signed = work.build(heads[work.twin_id])
        digest = "0x" + receipt_digest(signed).hex()
        # a denial record (services/denials.py) names no snapshot, and a twin-wide count no requester
        seq, who = signed.get("seq", 0), signed.get("reader", signed.get("requester")) or ""
        rows.append((work.twin_id, seq, who, signed.get("purpose", ""), digest, json.dumps(signed),
                     signed["time"]))  # fmt: skip
        heads[work.twin_id] = digest
        return signed
