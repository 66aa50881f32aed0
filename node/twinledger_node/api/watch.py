"""GET /v1/twins/{twin_id}/snapshots/stream: a twin's new snapshots as Server-Sent Events, while consent lasts.

What was chosen, and why:
- **An event names a snapshot; it does not carry it.** `id:` is the snapshot's seq (so `Last-Event-ID` resumes after
  it), `event: snapshot`, and `data:` its metadata as the snapshot list gives it (seq, manifest CID, content CID,
  size, sha256, created, ownership period, anchor) plus the producer's DID. The plaintext is read with the normal
  receipted read (`GET …/snapshots/{seq}`), which the SDK's `watch` makes for every event and verifies as
  `fetch_snapshot` does (manifest, producer and node signatures, anchor). So every snapshot a reader takes gets
  exactly one access receipt, made by the route that already makes them, carrying the reader's own signed request
  for that snapshot; a notification it does not follow is no read, and none is receipted twice. (Plaintext inside
  the event would have needed a size limit, a receipt whose signed request names the stream rather than the
  snapshot, and the manifest fetched beside it for verification anyway.) The metadata is what a READ grantee sees
  in the snapshot list already.
- **Consent is decided when the stream opens** (a signed GET like any read: the owner, or a READ grant for
  `?purpose=`; refused with the read's 403/404/503 problems) **and again every time the stream wakes**, before it
  sends anything: for new snapshots, and when the grant may have ended with none (services/watch.py: a revocation
  or transfer indexed, expiry passed at chain time, a stale index). A refusal ends the stream with `event: problem`
  whose data is the problem+json object (e.g. `…:consent/grant-revoked`, `…:consent/grant-expired`,
  `…:index-stale`), within about one indexer poll of its cause reaching the index.
- **`Last-Event-ID` (or `?after=`) only positions the cursor**: what follows is decided like any other event and,
  under a grant, filtered to the grant's ownership period as the snapshot list is. Without either the stream starts
  at the twin's newest snapshot (only what comes next is sent).
- Idle streams get a comment (`: keep-alive`) every `stream_heartbeat` seconds so proxies keep the connection; the
  caps are `streams_per_did` and `streams_total` per API process (429 problem past them).
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import APIRouter, Header, Query, Request
from fastapi.responses import StreamingResponse
from starlette.types import Receive, Scope, Send

from twinledger.chain.types import Scope as Rights
from twinledger_node.api.deps import (
    MAX_SEQ,
    AuthenticatedCaller,
    Consent,
    PurposeQuery,
    Runtime,
    TwinId,
    admitted,
    runtime_of,
)
from twinledger_node.api.problems import Problem, database_unavailable, problem_responses
from twinledger_node.auth import Caller
from twinledger_node.db.base import Row
from twinledger_node.runtime import NodeRuntime
from twinledger_node.services.snapshots import StoredSnapshot
from twinledger_node.services.watch import SnapshotWatch, Watcher, consent_twins

router = APIRouter(prefix="/v1/twins/{twin_id}/snapshots", tags=["snapshots"])
PAGE = 100  # rows a stream reads at a time while it catches up
HUB = "snapshot_watch"  # the app.state attribute holding this process's SnapshotWatch


def hub_of(request: Request) -> SnapshotWatch:
    hub = getattr(request.app.state, HUB, None)
    if hub is None:
        hub = SnapshotWatch(runtime_of(request))
        setattr(request.app.state, HUB, hub)
    return hub


def snapshot_pushed(request: Request, twin_id: int, seq: int) -> None:
    """Wake this process's streams of the twin (other processes' streams see it at their next tick)."""
    hub = getattr(request.app.state, HUB, None)
    if hub is not None:
        hub.pushed(twin_id, seq)


def end_streams(app: object) -> None:
    """End every open stream of the app (the HTTP server is stopping)."""
    hub = getattr(getattr(app, "state", None), HUB, None)
    if hub is not None:
        hub.shutdown()


def basis(rt: NodeRuntime, twin_id: int, consent: Consent) -> frozenset[int]:
    """The twins whose indexed events may end `consent` (the owner's: the twin's own transfer)."""
    return consent_twins(rt.index, twin_id, consent.decision.via_twin if consent.decision else None)


def event(kind: str, data: dict[str, object], event_id: int | None = None) -> str:
    head = f"id: {event_id}\n" if event_id is not None else ""
    return f"{head}event: {kind}\ndata: {json.dumps(data, separators=(',', ':'))}\n\n"


def resume_point(last_event_id: str | None) -> int | None:
    if last_event_id is None or not last_event_id.strip():
        return None
    value = last_event_id.strip()
    if not value.isdigit() or int(value) > MAX_SEQ:
        raise Problem(400, "bad-last-event-id", "Bad Last-Event-ID",
                      f"Last-Event-ID {value[:40]!r} is not a snapshot sequence number (0 to {MAX_SEQ})",
                      hint="send the id of the last event received, or no Last-Event-ID to start from now")  # fmt: skip
    return int(value)


class SnapshotStream(StreamingResponse):
    """The event stream; its watcher's slot is given back however the response ends (finished, client gone,
    cancelled), even if the body was never started."""

    def __init__(self, events: AsyncIterator[str], hub: SnapshotWatch, watcher: Watcher) -> None:
        super().__init__(
            events, media_type="text/event-stream", headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"}
        )
        self.hub, self.watcher = hub, watcher

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            self.hub.close(self.watcher)


STREAM_RESPONSES = {
    200: {"content": {"text/event-stream": {}}, "description": "snapshot and problem events"},
    **problem_responses(400, 401, 403, 404, 429, 503),
}


@router.get("/stream", response_class=StreamingResponse, responses=STREAM_RESPONSES)
async def stream(
    request: Request, rt: Runtime, caller: AuthenticatedCaller, twin_id: TwinId, purpose: PurposeQuery = None,
    after: Annotated[int | None, Query(ge=0, le=MAX_SEQ, description="send snapshots after this seq")] = None,
    last_event_id: Annotated[str | None, Header(description="the last event received: resume after it")] = None,
) -> StreamingResponse:  # fmt: skip
    """New snapshots of the twin as Server-Sent Events while the caller may read them (the owner, or a READ grant
    for ?purpose=); ends with a problem event when consent ends. Read each snapshot with GET …/snapshots/{seq}."""
    resume = resume_point(last_event_id)

    def head_and_basis(consent: Consent) -> tuple[int, frozenset[int]]:
        return rt.snapshots.head_seq(twin_id), basis(rt, twin_id, consent)

    checked_to = rt.head.indexed_to  # before the decision: what is indexed later, the hub's ticker looks at
    consent, (head, depends_on) = await admitted(rt, caller, twin_id, purpose, Rights.READ, head_and_basis)
    cursor = resume if resume is not None else head if after is None else after
    hub = hub_of(request)
    watcher = hub.open(twin_id, caller.did, head)
    watcher.admitted(depends_on, consent.decision.expiry if consent.decision else None, checked_to)
    events = _events(rt, caller, twin_id, purpose, watcher, cursor, request.url.path)
    return SnapshotStream(events, hub, watcher)


async def _events(
    rt: NodeRuntime, caller: Caller, twin_id: int, purpose: str | None, watcher: Watcher, cursor: int, path: str
) -> AsyncIterator[str]:
    yield f": watching twin {twin_id} after #{cursor}\n\n"  # the headers go out now, not with the first snapshot
    heartbeat = rt.settings.stream_heartbeat
    while not watcher.ended:
        watcher.wake.clear()  # before reading: a wake that comes during the read is not lost

        def page(consent: Consent, after: int = cursor) -> tuple[list[Row], frozenset[int]]:
            period = None if consent.as_owner else int(consent.twin["period"])  # as the snapshot list filters
            rows = rt.snapshots.history_rows(twin_id, after=after, limit=PAGE, period=period)
            return rows, basis(rt, twin_id, consent)

        checked_to = rt.head.indexed_to
        try:
            consent, (rows, depends_on) = await admitted(rt, caller, twin_id, purpose, Rights.READ, page)
        except Problem as refusal:
            yield event("problem", refusal.body(path))
            return
        except sqlite3.OperationalError as error:  # either engine's: fail closed, the client reconnects later
            yield event("problem", database_unavailable(error).body(path))
            return
        watcher.admitted(depends_on, consent.decision.expiry if consent.decision else None, checked_to)
        for row in rows:
            snapshot = StoredSnapshot.from_row(row)
            yield event("snapshot", {**snapshot.as_json(), "producer": row["producer"]}, snapshot.seq)
            cursor = snapshot.seq
        if len(rows) == PAGE:
            continue  # catching up: the next page at once
        while not watcher.wake.is_set():
            try:
                await asyncio.wait_for(watcher.wake.wait(), heartbeat)
            except TimeoutError:
                yield ": keep-alive\n\n"
