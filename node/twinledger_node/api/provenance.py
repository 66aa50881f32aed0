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
from twinledger.verify import Anchor, Entry, index_block, write_bundle
from twinledger_node.api.deps import Consent, Runtime, consent_required, sees_plaintext_facts
from twinledger_node.api.problems import problem_responses
from twinledger_node.db.base import Row

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
    """A CAR of the twin's snapshots and access receipts, in order, each with the Merkle proof of its own leaf to
    the anchored batch root, under a dag-cbor index block (the owner, or a DID holding AUDIT for ?purpose=).

    It holds nothing of other twins anchored in the same batches. The manifests' blocks are in it for the owner
    and for a grantee who may also READ; an AUDIT-only grantee gets each manifest's CID and proof without the
    manifest, which names the plaintext's sha256 and size."""
    db = rt.state.connection()
    snapshots = db.execute(
        "SELECT manifest_cid, batch_root, proof, anchor_tx FROM snapshots WHERE twin_id = ? ORDER BY seq", (twin_id,)
    ).fetchall()
    receipts = db.execute(
        "SELECT body, batch_root, proof, anchor_tx FROM receipts WHERE twin_id = ? ORDER BY twin_id, id", (twin_id,)
    ).fetchall()
    receipt_bodies = [json.loads(r["body"]) for r in receipts]
    receipt_blocks = [json_block(body) for body in receipt_bodies]
    manifests = [(cid, rt.store.get(cid)) for cid in (parse_cid(r["manifest_cid"]) for r in snapshots)]
    root = index_block(
        twin_id,
        rt.client.chain_id,
        rt.deployment.twin_ledger,
        [
            Entry(cid, _anchor(row, json.loads(data).get("anchorer")))
            for (cid, data), row in zip(manifests, snapshots, strict=True)
        ],
        [
            Entry(block.cid, _anchor(row, body.get("anchorer")))
            for block, body, row in zip(receipt_blocks, receipt_bodies, receipts, strict=True)
        ],
    )
    blocks = list(manifests) if sees_plaintext_facts(rt, consent) else []
    blocks += [(b.cid, b.data) for b in receipt_blocks]
    out = io.BytesIO()
    write_bundle(out, root, blocks)
    return Response(
        out.getvalue(),
        media_type="application/vnd.ipld.car",
        headers={"Content-Disposition": f'attachment; filename="twin-{twin_id}.car"'},
    )


def _anchor(row: Row, anchorer: str | None) -> Anchor | None:
    """The row's leaf proof once its batch is anchored (a batch cut but not yet on chain counts as pending), with
    the anchorer its signed record names (what a verifier uses for a manifest the CAR withholds)."""
    if row["anchor_tx"] is None:
        return None
    return Anchor.from_hex(row["batch_root"], json.loads(row["proof"]) if row["proof"] else None, anchorer)
