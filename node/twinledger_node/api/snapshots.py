"""/v1/twins/{twin_id}/snapshots: push (producers) and consent-checked reads (readers)."""

from __future__ import annotations

import asyncio
import json
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import Response, StreamingResponse
from starlette.background import BackgroundTask
from starlette.concurrency import run_in_threadpool

from twinledger.chain.types import Scope
from twinledger.identity.errors import ReplayedNonce
from twinledger_node.api.deps import (
    After,
    AuthenticatedCaller,
    Consent,
    Limit,
    PurposeQuery,
    Runtime,
    Seq,
    TwinId,
    admitted,
    consent_required,
    parse_purpose,
    refused,
)
from twinledger_node.api.limits import upload
from twinledger_node.api.models import SnapshotInfo, SnapshotList
from twinledger_node.api.problems import Problem, problem_responses
from twinledger_node.api.watch import snapshot_pushed
from twinledger_node.auth import AuthProblem, spends_nonce_in_commit
from twinledger_node.runtime import NodeRuntime
from twinledger_node.services.snapshots import INLINE_BYTES, StoredSnapshot

router = APIRouter(prefix="/v1/twins/{twin_id}/snapshots", tags=["snapshots"])
ReadConsent = Annotated[Consent, Depends(consent_required(Scope.READ))]
SPOOL_BYTES = 8 * 1024 * 1024  # plaintext up to this stays in memory; larger spills to a temporary file


@contextmanager
def replay_refused() -> Iterator[None]:
    """A nonce the group commit found already spent (by another process, or before a restart) is the same 401
    the authentication layer gives a replay it catches in memory."""
    try:
        yield
    except ReplayedNonce as error:
        raise AuthProblem.from_error(error) from error


@router.post(
    "", status_code=202, response_model=SnapshotInfo, response_model_by_alias=True,
    responses=problem_responses(400, 401, 403, 404, 409, 413, 503),
)  # fmt: skip
@upload
@spends_nonce_in_commit
async def push_snapshot(
    request: Request, rt: Runtime, caller: AuthenticatedCaller, twin_id: TwinId,
    purpose: Annotated[str | None, Query(description="purpose of a WRITE grant, when pushing under one")] = None,
) -> dict[str, object]:  # fmt: skip
    """Store a snapshot: the body is the plaintext; the signed request authenticates the producer (the twin's
    device, its owner, or a DID with a WRITE grant). Answers 202 once it is durable and queued for anchoring."""
    # No freshness guard here: a push by the twin's device or owner decides no consent, so it is accepted (and its
    # anchor queued) while the chain is unreachable. A push under a WRITE grant is a consent decision, and the
    # service checks freshness for that case.
    body = await request.body()
    code = parse_purpose(purpose, required=False)
    # The service seals small snapshots on the event loop, larger ones in its sealing threads; the wait for the
    # group commit holds no thread.
    with replay_refused():
        stored = await rt.snapshots.ingest(
            twin_id, body, caller, code, rt.chain_now(), require_fresh=rt.require_fresh, nonce=caller.replay
        )
    rt.metrics.snapshots.inc()
    snapshot_pushed(request, twin_id, stored.seq)
    return stored.as_json()


@router.get(
    "", response_model=SnapshotList, response_model_by_alias=True, responses=problem_responses(400, 401, 403, 404, 503)
)
def history(
    rt: Runtime, consent: ReadConsent, twin_id: TwinId,
    after: After = 0, limit: Limit = 100,
) -> dict[str, object]:  # fmt: skip
    """The twin's snapshots in order (metadata and anchor proofs, no content); under a grant, only those pushed in
    the twin's current ownership period, the one the grant belongs to."""
    period = None if consent.as_owner else int(consent.twin["period"])
    page = rt.snapshots.history(twin_id, after=after, limit=limit, period=period)
    return {
        "twinId": twin_id,
        "snapshots": [s.as_json() for s in page],
        "next": page[-1].seq if len(page) == limit else None,
    }


def _readable(rt: NodeRuntime, consent: Consent, snapshot: StoredSnapshot) -> StoredSnapshot:
    """`snapshot`, unless a grant reader asks for one pushed in another ownership period than the grant's.

    A live grant belongs to the twin's current period (a transfer ends it for good), so what it may serve is what
    was pushed in that period: not what an earlier owner pushed, nor what the twin's owner pushed before it changed
    hands and came back. The owner reads every period."""
    current = int(consent.twin["period"])
    if consent.as_owner or snapshot.period == current:
        return snapshot
    raise refused(rt, consent.caller, snapshot.twin_id, consent.purpose, consent.scope, Problem(
        403, "consent/snapshot-from-another-period", "Snapshot from another ownership period",
        f"snapshot #{snapshot.seq} of twin {snapshot.twin_id} was pushed in ownership period {snapshot.period}; "
        f"your grant belongs to period {current} and serves only what was pushed in it",
        hint=f"list the snapshots the grant covers: GET /v1/twins/{snapshot.twin_id}/snapshots?purpose=...",
    ))  # fmt: skip


async def _serve(rt: NodeRuntime, consent: Consent, snapshot: StoredSnapshot) -> Response:
    """Decrypt (small snapshots inline, larger ones in one thread hop), append the access receipt in the next group
    commit, and send the plaintext with its provenance only once that receipt and the read's nonce are durable."""
    _readable(rt, consent, snapshot)
    plaintext = tempfile.SpooledTemporaryFile(max_size=SPOOL_BYTES)  # noqa: SIM115 - closed below or by the response
    try:
        if snapshot.size <= INLINE_BYTES:
            size = rt.snapshots.decrypt_to(snapshot, plaintext)
        else:
            size = await run_in_threadpool(rt.snapshots.decrypt_to, snapshot, plaintext)
        with replay_refused():
            receipt = await asyncio.wrap_future(
                rt.receipts.append(
                    twin_id=snapshot.twin_id, seq=snapshot.seq, manifest_cid=snapshot.manifest_cid,
                    purpose=consent.purpose, scope=consent.scope, caller=consent.caller, nonce=consent.caller.replay,
                )
            )  # fmt: skip
    except BaseException:
        plaintext.close()
        raise
    rt.metrics.receipts.inc()
    plaintext.seek(0)
    headers = {
        "Twinledger-Manifest-Cid": snapshot.manifest_cid,
        "Twinledger-Seq": str(snapshot.seq),
        "Twinledger-Content-Sha256": snapshot.sha256,
        "Twinledger-Anchor": json.dumps(
            {"batchRoot": snapshot.batch_root, "tx": snapshot.anchor_tx, "proof": snapshot.proof}, separators=(",", ":")
        ),
        "Twinledger-Receipt-Previous": receipt["previous"],
    }
    if size <= SPOOL_BYTES:  # still in memory: one body, no streaming machinery
        with plaintext:
            return Response(plaintext.read(), media_type="application/octet-stream", headers=headers)
    headers["Content-Length"] = str(size)
    return StreamingResponse(
        iter(lambda: plaintext.read(64 * 1024), b""), media_type="application/octet-stream", headers=headers,
        background=BackgroundTask(plaintext.close),
    )  # fmt: skip


READ_RESPONSES = {
    200: {"content": {"application/octet-stream": {}}, "description": "the plaintext"},
    **problem_responses(400, 401, 403, 404, 503),
}


# The read routes are async: the consent decision and the row lookup are a few indexed reads, done inline on the
# event loop on SQLite rather than in a thread hop each (together in one call of the query threads on PostgreSQL:
# `deps.admitted`); only decrypting takes a hop.
@router.get("/latest", response_class=StreamingResponse, responses=READ_RESPONSES)
@spends_nonce_in_commit
async def read_latest(
    rt: Runtime, caller: AuthenticatedCaller, twin_id: TwinId, purpose: PurposeQuery = None
) -> Response:
    """The newest snapshot's plaintext (a READ grant for ?purpose=, or the owner)."""
    return await _serve(
        rt, *await admitted(rt, caller, twin_id, purpose, Scope.READ, lambda _: rt.snapshots.get(twin_id))
    )


@router.get("/by-cid/{manifest_cid}", response_class=StreamingResponse, responses=READ_RESPONSES)
@spends_nonce_in_commit
async def read_by_cid(
    rt: Runtime, caller: AuthenticatedCaller, twin_id: TwinId, manifest_cid: str, purpose: PurposeQuery = None
) -> Response:
    """A snapshot's plaintext by its manifest CID."""
    by_cid = lambda _: rt.snapshots.get(twin_id, manifest_cid=manifest_cid)  # noqa: E731
    return await _serve(rt, *await admitted(rt, caller, twin_id, purpose, Scope.READ, by_cid))


@router.get("/{seq}", response_class=StreamingResponse, responses=READ_RESPONSES)
@spends_nonce_in_commit
async def read_seq(
    rt: Runtime, caller: AuthenticatedCaller, twin_id: TwinId, seq: Seq, purpose: PurposeQuery = None
) -> Response:
    """Snapshot number `seq`'s plaintext."""
    return await _serve(
        rt, *await admitted(rt, caller, twin_id, purpose, Scope.READ, lambda _: rt.snapshots.get(twin_id, seq))
    )


@router.get("/{seq}/manifest", responses=problem_responses(400, 401, 403, 404, 503))
def manifest(rt: Runtime, consent: ReadConsent, twin_id: TwinId, seq: Seq) -> dict[str, object]:
    """The signed manifest of snapshot `seq` (the block its CID names)."""
    return rt.snapshots.manifest(_readable(rt, consent, rt.snapshots.get(twin_id, seq)))
