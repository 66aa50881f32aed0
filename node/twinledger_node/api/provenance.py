"""/v1/twins/{twin_id}/provenance.car: everything `twinledger verify` needs to check a twin without this node."""

from __future__ import annotations

import io
import json
from typing import Annotated

from fastapi import APIRouter, Depends, Path
from fastapi.responses import Response

from twinledger.chain.types import Scope
from twinledger.ipfs import parse_cid
from twinledger.provenance import json_block
from twinledger.verify import index_block, write_bundle
from twinledger_node.api.deps import Consent, Runtime, consent_required
from twinledger_node.api.problems import problem_responses

router = APIRouter(prefix="/v1/twins", tags=["twins"])


@router.get(
    "/{twin_id}/provenance.car",
    response_class=Response,
    responses={
        200: {"content": {"application/vnd.ipld.car": {}}, "description": "CAR v1 whose root is the index block"},
        **problem_responses(400, 401, 403, 404, 503),
    },
)
def provenance_car(
    rt: Runtime,
    consent: Annotated[Consent, Depends(consent_required(Scope.AUDIT))],
    twin_id: Annotated[int, Path(ge=1)],
) -> Response:
    """A CAR of the twin's manifests (in order), the batch blocks that anchor them or its receipts, and its access
    receipts, under a dag-cbor index block (the owner, or a DID holding AUDIT for ?purpose=). Other twins'
    records linked from a shared batch block are left out."""
    db = rt.state.connection()
    snapshots = db.execute(
        "SELECT manifest_cid, batch_root FROM snapshots WHERE twin_id = ? ORDER BY seq", (twin_id,)
    ).fetchall()
    receipts = db.execute("SELECT body, batch_root FROM receipts WHERE twin_id = ? ORDER BY id", (twin_id,)).fetchall()
    roots = {r["batch_root"] for r in [*snapshots, *receipts] if r["batch_root"]}
    batches = [
        parse_cid(row["leaves_cid"])
        for row in db.execute("SELECT root, leaves_cid FROM batches WHERE status = 'anchored' ORDER BY created")
        if row["root"] in roots
    ]
    manifests = [parse_cid(r["manifest_cid"]) for r in snapshots]
    receipt_blocks = [json_block(json.loads(r["body"])) for r in receipts]
    root = index_block(
        twin_id, rt.client.chain_id, rt.deployment.twin_ledger, manifests, batches, [b.cid for b in receipt_blocks]
    )
    blocks = [(cid, rt.store.get(cid)) for cid in [*manifests, *batches]] + [(b.cid, b.data) for b in receipt_blocks]
    out = io.BytesIO()
    write_bundle(out, root, blocks)
    return Response(
        out.getvalue(),
        media_type="application/vnd.ipld.car",
        headers={"Content-Disposition": f'attachment; filename="twin-{twin_id}.car"'},
    )
