"""Refused reads are part of a twin's audit: who tried, for what, why they were refused, with their signed request.

What is recorded: a read the node refused after the request's signature verified (so it knows who asked) and after
it decided on consent: a 403 of the consent check (no grant, a grant for other purposes or scopes, revoked,
expired, from an earlier ownership period, not the owner) or of a grant reader asking for a snapshot of another
period. A **denial record** names the twin, the requester's DID, the purpose and scope asked for, the refusal's
problem type, the time, and the signed request itself (method, target, key id, Signature-Input, Signature: all
anyone needs to re-verify that this DID asked). The node signs it like a receipt and it joins the twin's receipt
chain (`previous`), so it is anchored in the next receipts batch, lands in the provenance CAR and is checked by
`twinledger verify` like a receipt.

What is not recorded in a twin's log: a request whose signature is missing, forged or replayed (nobody can be named:
counted in `twinledger_denials_unattributed_total` only); a request for a twin that is not registered (no log to
write to); a request without a purpose (400: the caller is told what is missing, nothing was decided); and a 503 of
the fail-closed guard on a stale index: then the node decided nothing about the person, and recording it would
blame every legitimate reader of an outage for the node's own state.

Bounds (did:key identities are free, so a bound per DID alone bounds nothing: an attacker mints one per request):
- per DID and twin per minute, the first `per_did` denials are recorded one by one; the rest make ONE counted
  record ("N more denials of D on this twin in minute M", with their reasons and up to 8 of their purposes);
- per twin per minute, at most `per_twin` records (one-by-one and counted together); past that, every further denial
  of the twin goes into ONE aggregate record with no DID (the count, reasons and purposes).
So a twin's log gets at most `per_twin + 1` denial records a minute, however many DIDs or requests. The counted
path writes nothing per request: it adds to a tally in memory, and the tallies are written once, when their minute
is over (by this module's flusher thread) or when the node stops cleanly (`close`). Memory is bounded too: a twin
past its cap tracks no new DID, and at most MAX_TRACKED (twin, DID) pairs are tracked in a minute.

Counting is per process (each API process of `node up --workers N`, each replica): the bounds are per process, so a
twin's log gets at most N x (per_twin + 1) records a minute from N processes.

A refused read never waits for its denial record: the record is queued in the group commit (services/commit.py) and
the 403 is answered at once. A one-by-one record carries the request's nonce when the route spends it in its own
commit (the snapshot reads), so the nonce is made durable with the record, and a replay of the same signed request
through another process is refused there and not recorded twice.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from twinledger.chain.types import Scope
from twinledger.identity import DidKey, sign_record
from twinledger.provenance import DENIAL_TYPE
from twinledger_node.problem import PROBLEM_TYPE_BASE, Problem
from twinledger_node.services.commit import GroupCommitter, Overloaded, ReceiptWork

if TYPE_CHECKING:
    from twinledger_node.auth import Caller
    from twinledger_node.metrics import NodeMetrics

log = logging.getLogger("twinledger.denials")
WINDOW_S = 60  # the minute the bounds count in (wall clock, aligned to the epoch: the same minutes in every process)
MAX_TRACKED = 50_000  # (twin, DID) pairs counted in one minute by one process; past it new ones count twin-wide
MAX_PURPOSES = 8  # purposes a counted record lists (an attacker chooses them freely)
RETRY_S = 1.0  # how soon a counted record refused by a full commit queue is tried again
Build = Callable[[str], dict[str, Any]]  # the signed record, given the digest of the twin's previous one


@dataclass
class Tally:
    """Denials counted rather than recorded one by one: one DID's on a twin past its threshold, or a twin's past
    its cap."""

    count: int = 0
    reasons: dict[str, int] = field(default_factory=dict)
    purposes: list[str] = field(default_factory=list)

    def add(self, reason: str, purpose: str) -> None:
        self.count += 1
        self.reasons[reason] = self.reasons.get(reason, 0) + 1
        if purpose not in self.purposes and len(self.purposes) < MAX_PURPOSES:
            self.purposes.append(purpose)


@dataclass
class Window:
    """One minute's counts of one process."""

    start: int
    seen: dict[tuple[int, str], int] = field(default_factory=dict)  # (twin, DID) -> denials this minute
    records: dict[int, int] = field(default_factory=dict)  # twin -> records this minute (one by one, or counted)
    by_did: dict[tuple[int, str], Tally] = field(default_factory=dict)  # past the DID's threshold
    by_twin: dict[int, Tally] = field(default_factory=dict)  # past the twin's cap

    def has_room(self, twin_id: int, cap: int) -> bool:
        return self.records.get(twin_id, 0) < cap

    def take_room(self, twin_id: int) -> None:
        self.records[twin_id] = self.records.get(twin_id, 0) + 1


def reason_of(problem: Problem) -> str:
    """The refusal's problem type, as its 403 answer names it."""
    return PROBLEM_TYPE_BASE + problem.slug


class DenialLog:
    def __init__(
        self, commits: GroupCommitter, node_key: DidKey, *, chain_id: int, registry: str, anchorer: str | None,
        per_did: int, per_twin: int, metrics: NodeMetrics | None = None, clock: Callable[[], float] = time.time,
    ) -> None:  # fmt: skip
        self.commits, self.node_key, self.metrics, self.clock = commits, node_key, metrics, clock
        self.header = {"type": DENIAL_TYPE, "version": 1, "chainId": chain_id, "registry": registry,
                       "anchorer": anchorer}  # fmt: skip
        self.per_did, self.per_twin = per_did, per_twin
        self._lock = threading.Lock()
        self._current: Window | None = None
        self._ended: list[Window] = []
        self._unsent: list[tuple[int, Build, str]] = []  # counted records the commit queue had no room for
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # ------------------------------------------------------------------ the request path

    def refused(self, caller: Caller, twin_id: int, purpose: bytes, scope: Scope, problem: Problem) -> None:
        """Note that `caller`'s read of `twin_id` was refused with `problem`: a record queued for the next group
        commit, or a count in memory past the bounds. Never waits for a write."""
        now = self.clock()
        reason, purpose_hex = reason_of(problem), "0x" + purpose.hex()
        with self._lock:
            self._ensure_running()
            window = self._window_at(now)
            key = (twin_id, caller.did)
            seen = window.seen.get(key)
            if seen is None and (not window.has_room(twin_id, self.per_twin) or len(window.seen) >= MAX_TRACKED):
                self._twin_wide(window, twin_id, reason, purpose_hex)  # no new DID tracked: memory stays bounded
                return
            seen = window.seen[key] = (seen or 0) + 1
            one_by_one = seen <= self.per_did and window.has_room(twin_id, self.per_twin)
            if one_by_one and self._one_by_one(caller, twin_id, purpose_hex, scope, reason, now):
                window.take_room(twin_id)
                return
            tally = window.by_did.get(key)
            if tally is None:
                if not window.has_room(twin_id, self.per_twin):
                    self._twin_wide(window, twin_id, reason, purpose_hex)
                    return
                tally = window.by_did[key] = Tally()
                window.take_room(twin_id)  # the counted record this DID will get
            tally.add(reason, purpose_hex)
            self._aggregated()

    def _one_by_one(
        self, caller: Caller, twin_id: int, purpose: str, scope: Scope, reason: str, now: float
    ) -> bool:  # fmt: skip
        """Queue the denial's own record; False when the commit queue is full (the denial is counted instead)."""
        at = int(now)
        nonce = caller.replay if caller.replay is not None and not caller.replay.spent else None
        record = {
            **self.header, "twinId": twin_id, "requester": caller.did, "purpose": purpose, "scope": scope.names(),
            "reason": reason, "time": at,
            "request": {
                "method": caller.method, "target": caller.target_uri, "keyId": caller.key_id,
                "signatureInput": caller.signature_input, "signature": caller.signature,
            },
        }  # fmt: skip
        try:
            future = self.commits.submit(ReceiptWork(twin_id, self._signer(record, at), nonce))
        except Overloaded:
            return False
        if nonce is not None:
            # its row goes in with the record's: SpendLeftoverNonces must not queue it a second time
            nonce.spent = True
        future.add_done_callback(self._committed("single"))
        return True

    def _twin_wide(self, window: Window, twin_id: int, reason: str, purpose: str) -> None:
        window.by_twin.setdefault(twin_id, Tally()).add(reason, purpose)
        self._aggregated()

    def _window_at(self, now: float) -> Window:
        start = int(now // WINDOW_S) * WINDOW_S
        if self._current is not None and self._current.start != start:
            self._ended.append(self._current)
            self._current = None
        if self._current is None:
            self._current = Window(start)
        return self._current

    # ------------------------------------------------------------------ writing the counts

    def flush(self, *, everything: bool = False) -> None:
        """Queue the counted records of every minute that is over (with `everything`, of the current one too) and
        those a full commit queue refused before."""
        with self._lock:
            current = self._current
            if current is not None and (everything or self.clock() >= current.start + WINDOW_S):
                self._ended.append(current)
                self._current = None
            pending = self._unsent + [record for window in self._ended for record in self._counted(window)]
            self._ended, self._unsent = [], []
            for twin_id, build, kind in pending:
                try:
                    self.commits.submit(ReceiptWork(twin_id, build, None)).add_done_callback(self._committed(kind))
                except Overloaded:
                    self._unsent.append((twin_id, build, kind))

    def _counted(self, window: Window) -> list[tuple[int, Build, str]]:
        at = min(int(self.clock()), window.start + WINDOW_S)  # a stop mid-minute dates its counts to the stop
        tallies: list[tuple[int, str | None, Tally, str]]
        tallies = [(twin, did, tally, "counted") for (twin, did), tally in window.by_did.items()]
        tallies += [(twin, None, tally, "aggregate") for twin, tally in window.by_twin.items()]
        records = []
        for twin_id, did, tally, kind in tallies:
            record = {
                **self.header, "twinId": twin_id, "requester": did, "count": tally.count,
                "window": {"start": window.start, "seconds": WINDOW_S}, "reasons": tally.reasons,
                "purposes": tally.purposes, "time": at,
            }  # fmt: skip
            records.append((twin_id, self._signer(record, at), kind))
        return records

    def _signer(self, record: dict[str, Any], at: int) -> Build:
        """Signed in the committer thread, once the twin's previous record is known (as receipts are)."""
        return lambda previous: sign_record({**record, "previous": previous}, self.node_key, created=at)

    def _committed(self, kind: str) -> Callable[[Future[dict[str, Any]]], None]:
        def done(future: Future[dict[str, Any]]) -> None:
            error = future.exception()
            if error is None:
                if self.metrics is not None:
                    self.metrics.denials_recorded.labels(kind).inc()
            else:  # a replayed request's record (its nonce was spent elsewhere), or the state database away
                log.warning("a denial record (%s) was not written: %s", kind, error)

        return done

    def _aggregated(self) -> None:
        if self.metrics is not None:
            self.metrics.denials_aggregated.inc()

    # ------------------------------------------------------------------ the flusher thread

    def _ensure_running(self) -> None:
        if self._thread is None and not self._stop.is_set():
            self._thread = threading.Thread(target=self._run, name="twinledger-denials", daemon=True)
            self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(self._next_wake()):
            try:
                self.flush()
            except Exception:  # keep counting; the next pass writes what this one could not
                log.exception("writing counted denials failed")

    def _next_wake(self) -> float:
        with self._lock:
            if self._unsent:
                return RETRY_S
            if self._current is None:
                return WINDOW_S
            return max(0.0, self._current.start + WINDOW_S - self.clock()) + 0.01

    def close(self, *, timeout: float = 10.0) -> None:
        """On a clean stop: write every count, the current minute's included, into the commit queue (which the
        caller then drains: `GroupCommitter.stop`)."""
        self._stop.set()
        with self._lock:
            thread, self._thread = self._thread, None
        if thread is not None:
            thread.join(timeout=timeout)
        deadline = time.monotonic() + timeout
        self.flush(everything=True)
        while self._unsent and time.monotonic() < deadline:  # the queue drains meanwhile
            time.sleep(0.05)
            self.flush()
        if self._unsent:
            log.error("%d counted denial records could not be queued before the stop", len(self._unsent))
