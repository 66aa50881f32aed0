"""/v1/twins: what the index knows of a twin (public on chain anyway), its grants, and its audit trail."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends

from twinledger.chain.types import Scope, TwinKind
from twinledger.identity import did_hash
from twinledger_node.api.deps import (
    After,
    Consent,
    Limit,
    OptionalCaller,
    PurposeQuery,
    Runtime,
    TwinId,
    consent_required,
    parse_purpose,
    sees_plaintext_facts,
)
from twinledger_node.api.models import AuditPage, GrantList, TwinInfo
from twinledger_node.api.problems import problem_responses
from twinledger_node.consent.decision import decide
from twinledger_node.db.base import Row
from twinledger_node.problem import Problem
from twinledger_node.runtime import NodeRuntime
from twinledger_node.services.audit import audit_trail

router = APIRouter(prefix="/v1/twins", tags=["twins"])


@router.get(
    "/{twin_id}", response_model=TwinInfo, response_model_by_alias=True, responses=problem_responses(400, 401, 404)
)
def twin(rt: Runtime, twin_id: TwinId, caller: OptionalCaller, purpose: PurposeQuery = None) -> dict[str, object]:
    """Owner, parent, kind and device DID of a twin (public on chain), and, for a signed request of its owner or of a
    READ or AUDIT grantee for ?purpose=, its last stored and last anchored snapshot."""
    row = rt.snapshots.twin(twin_id)
    anchored = latest = None
    if caller is not None and _sees_snapshots(rt, row, caller.did, purpose):
        anchored, latest = rt.snapshots.anchored_and_latest(twin_id)
        anchored = max(anchored, int(row["head_seq"]))  # one anchored on its own is anchored too
    return {
        "twinId": twin_id, "owner": row["owner"], "parentId": row["parent_id"],
        "kind": TwinKind(row["kind"]).name.lower(), "deviceDid": row["device_did"] or None,
        "metadataDigest": row["metadata_digest"], "chainHeadSeq": row["head_seq"], "anchoredSeq": anchored,
        "latestSeq": latest, "period": row["period"],
    }  # fmt: skip


def _sees_snapshots(rt: NodeRuntime, twin: Row, did: str, purpose: str | None) -> bool:
    """The owner, or a live grant covering READ or AUDIT (either may list the twin's snapshots). A caller who may
    not is served the public record, not refused: nothing was read, so nothing is a denial."""
    if rt.snapshots.is_owner(twin, did):
        return True
    code = parse_purpose(purpose, required=False)
    if code is None:
        return False
    try:
        rt.require_fresh()
    except Problem:  # fail closed: a grant the index cannot vouch for now shows nothing more than the public record
        return False
    now = rt.chain_now()
    return any(
        decide(rt.index.connection(), int(twin["twin_id"]), did_hash(did), code, scope, now, twin=twin).allowed
        for scope in (Scope.READ, Scope.AUDIT)
    )


@router.get(
    "/{twin_id}/grants", response_model=GrantList, response_model_by_alias=True, responses=problem_responses(404)
)
def grants(rt: Runtime, twin_id: TwinId) -> dict[str, object]:
    """Every grant recorded for the twin, live or not (grants are public on chain)."""
    row = rt.snapshots.twin(twin_id)
    now = rt.chain_now()
    rows = (
        rt.index.connection()
        .execute("SELECT * FROM grants WHERE twin_id = ? ORDER BY block_number", (twin_id,))
        .fetchall()
    )
    return {
        "twinId": twin_id,
        "grants": [
            {
                "did": g["did"], "didHash": g["did_hash"], "purpose": g["purpose"],
                "scopes": Scope(g["scopes"]).names(),
                "expiry": g["expiry"], "grantor": g["grantor"], "period": g["period"], "txHash": g["tx_hash"],
                "revokedTx": g["revoked_tx"],
                "live": g["revoked_block"] is None and g["period"] == row["period"] and now < g["expiry"],
            }
            for g in rows
        ],
    }  # fmt: skip


@router.get(
    "/{twin_id}/audit", response_model=AuditPage, response_model_by_alias=True,
    responses=problem_responses(400, 401, 403, 404, 503),
)  # fmt: skip
def audit(
    rt: Runtime, consent: Annotated[Consent, Depends(consent_required(Scope.AUDIT))], twin_id: TwinId,
    after: After = 0, limit: Limit = 100,
) -> dict[str, object]:  # fmt: skip
    """Ownership, grants, revocations, snapshots, reads and federated uses, each with its proof (the owner, or a
    DID holding AUDIT for ?purpose=; what is derived from the plaintext only for the owner or a READ grantee)."""
    facts = sees_plaintext_facts(rt, consent)
    return audit_trail(rt.index, rt.state, twin_id, plaintext_facts=facts, after=after, limit=limit)
