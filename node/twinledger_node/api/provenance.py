"""/v1/twins/{twin_id}/provenance.car: everything `twinledger verify` needs to check a twin without this node;
/v1/twins/{twin_id}/export.car: the same with every snapshot's content, for the owner to take the data home."""

from __future__ import annotations

import asyncio
from typing import Annotated

from fastapi import APIRouter, Depends
from fastapi.responses import StreamingResponse
from starlette.concurrency import run_in_threadpool

from twinledger.chain.types import Scope
from twinledger_node.api.deps import Consent, Runtime, TwinId, consent_required, owner_required, sees_plaintext_facts
from twinledger_node.api.problems import Problem, problem_responses
from twinledger_node.api.snapshots import replay_refused
from twinledger_node.auth import spends_nonce_in_commit
from twinledger_node.runtime import NodeRuntime
from twinledger_node.services.bundles import Bundle, Bundles

router = APIRouter(prefix="/v1/twins", tags=["twins"])
CAR_MEDIA_TYPE = "application/vnd.ipld.car"


def _bundles(rt: NodeRuntime) -> Bundles:
    return Bundles(rt.state, rt.store, chain_id=rt.client.chain_id, registry=rt.deployment.twin_ledger)


def _car(rt: NodeRuntime, bundle: Bundle, filename: str) -> StreamingResponse:
    # A sync iterator: Starlette pulls each piece in a worker thread, so block reads never stall the event loop.
    return StreamingResponse(
        _bundles(rt).stream(bundle),
        media_type=CAR_MEDIA_TYPE,
        headers={"Content-Disposition": f'attachment; filename="{filename}"'},
    )


@router.get(
    "/{twin_id}/provenance.car",
    response_class=StreamingResponse,
    responses={
        200: {"content": {CAR_MEDIA_TYPE: {}}, "description": "CAR v1 whose root is the index block"},
        **problem_responses(400, 401, 403, 404, 503),
    },
)
def provenance_car(
    rt: Runtime, consent: Annotated[Consent, Depends(consent_required(Scope.AUDIT))], twin_id: TwinId
) -> StreamingResponse:
    """A CAR of the twin's snapshots and access receipts, in order, each with the Merkle proof of its own leaf to
    the anchored batch root, under a dag-cbor index block (the owner, or a DID holding AUDIT for ?purpose=).

    It holds nothing of other twins anchored in the same batches. The manifests' blocks are in it for the owner
    and for a grantee who may also READ; an AUDIT-only grantee gets each manifest's CID and proof without the
    manifest, which names the plaintext's sha256 and size."""
    bundle = _bundles(rt).plan(twin_id, manifests=sees_plaintext_facts(rt, consent))
    return _car(rt, bundle, f"twin-{twin_id}.car")


@router.get(
    "/{twin_id}/export.car",
    response_class=StreamingResponse,
    responses={
        200: {"content": {CAR_MEDIA_TYPE: {}}, "description": "CAR v1: the provenance CAR plus every content block"},
        **problem_responses(400, 401, 403, 404, 503),
    },
)
@spends_nonce_in_commit
async def export_car(
    rt: Runtime, consent: Annotated[Consent, Depends(owner_required("export it"))], twin_id: TwinId
) -> StreamingResponse:
    """The owner's copy of everything: the provenance CAR with each snapshot's content blocks (ciphertext, sealed
    to the node and to the owner's recovery key), linked from the index, so `twinledger snapshot open --car` opens
    every snapshot with the owner's wallet alone and any IPFS node can import it. The owner only: a grantee reads
    snapshots one by one.

    Recorded as one access receipt naming the newest snapshot (whose manifest hash-links every earlier one),
    durable before the first byte is sent; the CAR holds the receipts from before it."""
    bundle = await run_in_threadpool(_bundles(rt).plan, twin_id, manifests=True, content=True)
    try:
        if bundle.head_manifest is None:
            raise Problem(404, "unknown-snapshot", "Nothing to export", f"twin {twin_id} has no snapshots yet",
                          hint=f"push one first: `twinledger snapshot push {twin_id} FILE`")  # fmt: skip
        with replay_refused():
            await asyncio.wrap_future(
                rt.receipts.append(
                    twin_id=twin_id, seq=bundle.last_seq, manifest_cid=bundle.head_manifest,
                    purpose=consent.purpose, scope=consent.scope, caller=consent.caller, nonce=consent.caller.replay,
                )
            )  # fmt: skip
    except BaseException:
        bundle.pages.close()  # nothing will stream it
        raise
    rt.metrics.receipts.inc()
    return _car(rt, bundle, f"twin-{twin_id}-export.car")
