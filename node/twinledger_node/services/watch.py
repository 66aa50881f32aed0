"""Who is watching which twin: the open snapshot streams of this API process, and the one task that wakes them.

A stream (api/watch.py) re-decides consent and reads new snapshot rows only when woken; this hub decides when, so an
idle stream costs no query of its own. One ticker task per process, running only while a stream is open, looks once
per `poll_interval` and wakes the streams concerned:
- a snapshot pushed through this process wakes its twin's streams at once (`pushed`, called by the push route);
- a push through another API process or replica shows in ONE indexed query for all watched twins' newest seq;
- a revocation, a new grant replacing one, a transfer (the index applied events of the twin, or of the ancestor
  whose INHERIT grant let the stream in) shows in one range query over the newly indexed blocks' events, asked
  only when the indexed block moved;
- a grant's expiry is compared with chain time in memory;
- a stale index wakes every stream, whose consent check then fails closed (503 index-stale).
Shutdown (`shutdown`, called as the HTTP server begins to stop) ends every stream at once: uvicorn waits for open
responses before it runs the app's lifespan shutdown, so a stream left open would hold a SIGTERM for the server's
whole graceful timeout.

Caps (`streams_per_did`, `streams_total`, per process) bound what open connections cost; only a caller the consent
check let in holds a slot, so a DID needs a live grant (or a twin) for each slot it takes.
"""

from __future__ import annotations

import asyncio
import logging
from collections import Counter
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from twinledger_node.consent.decision import MAX_DEPTH
from twinledger_node.problem import Problem

if TYPE_CHECKING:
    from twinledger_node.db.database import Database
    from twinledger_node.runtime import NodeRuntime

log = logging.getLogger("twinledger.watch")
HEADS_PER_QUERY = 500  # watched twins asked for in one statement


@dataclass(eq=False)
class Watcher:
    """One open stream: what it watches, what its consent rests on, and the event that wakes it."""

    twin_id: int
    did: str
    depends_on: frozenset[int] = frozenset()  # twins whose indexed events may end its consent
    expiry: int | None = None  # its grant's (None: the owner)
    seen_head: int = 0  # the twin's newest seq when it was last woken for new snapshots (or opened)
    # the indexed block its consent is known to hold at: read before its last decision, moved on by every tick
    # whose newly indexed events spare it. A tick looks for events after the oldest of these, so an event indexed
    # between a decision and the next tick (or before the ticker's first) is never skipped.
    checked_to: int = -1
    ended: bool = False  # the node is shutting down
    wake: asyncio.Event = field(default_factory=asyncio.Event)

    def admitted(self, depends_on: frozenset[int], expiry: int | None, checked_to: int) -> None:
        """What the latest consent decision rests on (`consent_twins`), when its grant expires, and the indexed
        block read before it was made."""
        self.depends_on, self.expiry = depends_on, expiry
        self.checked_to = max(self.checked_to, checked_to)


def consent_twins(index: Database, twin_id: int, via_twin: int | None) -> frozenset[int]:
    """The twins whose events may end a decision for `twin_id` that a grant on `via_twin` allowed: the twin (a
    transfer, a new parent, the grant itself), and for an INHERIT grant on an ancestor every twin up to that
    ancestor (a transfer or a new parent on the way cuts the inheritance). At most MAX_DEPTH indexed reads, and only
    for inherited grants."""
    twins = {twin_id}
    current = twin_id
    conn = index.connection()
    while via_twin and current != via_twin and len(twins) <= MAX_DEPTH:
        row = conn.execute("SELECT parent_id FROM twins WHERE twin_id = ?", (current,)).fetchone()
        if row is None or not int(row["parent_id"]):
            break
        current = int(row["parent_id"])
        twins.add(current)
    return frozenset(twins)


def changed_twins(index: Database, after_block: int, to_block: int) -> set[int]:
    """Twins named by events indexed in blocks (after_block, to_block]: a range of the events' primary key, so the
    cost is the new events', not the index's."""
    rows = (
        index.connection()
        .execute(
            "SELECT DISTINCT twin_id FROM events WHERE block_number > ? AND block_number <= ? AND twin_id IS NOT NULL",
            (after_block, to_block),
        )
        .fetchall()
    )
    return {int(row[0]) for row in rows}


class SnapshotWatch:
    def __init__(self, rt: NodeRuntime) -> None:
        self.rt = rt
        settings = rt.settings
        self.per_did, self.total, self.poll = settings.streams_per_did, settings.streams_total, settings.poll_interval
        self._by_twin: dict[int, set[Watcher]] = {}
        self._per_did: Counter[str] = Counter()
        self._ticker: asyncio.Task[None] | None = None
        self._closed = False

    # ------------------------------------------------------------------ streams come and go

    def open(self, twin_id: int, did: str, head: int) -> Watcher:
        """A slot for a stream of `did` on `twin_id`, or a 429 past the caps (503 once shutting down)."""
        if self._closed:
            raise Problem(503, "stream/shutting-down", "Node shutting down", "this node process is stopping",
                          hint="reconnect; another process or replica will serve the stream")  # fmt: skip
        open_now = sum(len(w) for w in self._by_twin.values())
        if self._per_did[did] >= self.per_did:
            raise Problem(
                429, "stream/too-many-for-did", "Too many open streams",
                f"{did} holds {self._per_did[did]} open snapshot streams on this node process, its limit",
                hint="close a stream you no longer need (one stream per twin is enough), then retry",
            )  # fmt: skip
        if open_now >= self.total:
            raise Problem(429, "stream/too-many", "Too many open streams",
                          f"this node process holds {open_now} open snapshot streams, its limit",
                          hint="retry later, or through another replica")  # fmt: skip
        watcher = Watcher(twin_id, did, seen_head=head)
        self._by_twin.setdefault(twin_id, set()).add(watcher)
        self._per_did[did] += 1
        if self._ticker is None or self._ticker.done():
            self._ticker = asyncio.get_running_loop().create_task(self._tick_while_watched(), name="snapshot-watch")
        return watcher

    def close(self, watcher: Watcher) -> None:
        watchers = self._by_twin.get(watcher.twin_id)
        if watchers is None or watcher not in watchers:
            return
        watchers.discard(watcher)
        if not watchers:
            del self._by_twin[watcher.twin_id]
        self._per_did[watcher.did] -= 1
        if not self._per_did[watcher.did]:
            del self._per_did[watcher.did]

    def open_streams(self) -> int:
        return sum(len(w) for w in self._by_twin.values())

    def pushed(self, twin_id: int, seq: int) -> None:
        """Snapshot `seq` of `twin_id` was committed by this process: its streams look now, not at the next tick."""
        for watcher in self._by_twin.get(twin_id, ()):
            watcher.seen_head = max(watcher.seen_head, seq)
            watcher.wake.set()

    def shutdown(self) -> None:
        """End every stream (their responses finish cleanly) and refuse new ones."""
        self._closed = True
        for watchers in self._by_twin.values():
            for watcher in watchers:
                watcher.ended = True
                watcher.wake.set()
        if self._ticker is not None:
            self._ticker.cancel()

    # ------------------------------------------------------------------ the ticker

    async def _tick_while_watched(self) -> None:
        while self._by_twin and not self._closed:
            await asyncio.sleep(self.poll)
            try:
                await self._tick()
            except asyncio.CancelledError:
                raise
            except Exception:  # a database hiccup: the streams' own checks fail closed; look again next tick
                log.exception("snapshot watch tick failed")

    async def _tick(self) -> None:
        watchers = [w for ws in self._by_twin.values() for w in ws]
        if not watchers:
            return
        rt = self.rt
        if not rt.index_freshness().fresh:  # each stream's consent check answers index-stale and ends it
            for watcher in watchers:
                watcher.wake.set()
            return
        indexed_to = rt.head.indexed_to
        since = min(w.checked_to for w in watchers)
        changed: set[int] | None = set()
        if indexed_to < max(w.checked_to for w in watchers):  # a reorg rolled the index back: anything may have
            changed = None
        elif indexed_to > since:
            changed = await rt.index.run(changed_twins, rt.index, since, indexed_to)
        twins = list(self._by_twin)
        heads: dict[int, int] = {}
        for start in range(0, len(twins), HEADS_PER_QUERY):
            heads |= await rt.state.run(rt.snapshots.head_seqs, twins[start : start + HEADS_PER_QUERY])
        now = rt.chain_now()
        for watcher in watchers:
            head = heads.get(watcher.twin_id, 0)
            moved = head > watcher.seen_head
            ended = changed is None or bool(watcher.depends_on & changed)
            expired = watcher.expiry is not None and now >= watcher.expiry
            if moved or ended or expired:
                watcher.seen_head = max(watcher.seen_head, head)
                watcher.wake.set()
            if not ended:  # nothing indexed up to here touches its consent: the next tick looks only further on
                watcher.checked_to = max(watcher.checked_to, indexed_to)
