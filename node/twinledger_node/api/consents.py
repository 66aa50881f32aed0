"""/v1/consents (the relayer) and /v1/owners/recovery-key."""

from __future__ import annotations

import time

from eth_account import Account
from eth_account.messages import encode_defunct
from fastapi import APIRouter, Request
from web3 import Web3

from twinledger.chain.ledger import SignedConsent
from twinledger.identity import canonical_did
from twinledger.provenance import recovery_key_message
from twinledger_node.api.deps import AuthenticatedCaller, Runtime
from twinledger_node.api.models import ConsentSubmission, RecoveryKeyInfo, RecoveryKeyRegistration, RelayResult
from twinledger_node.api.problems import Problem, problem_responses
from twinledger_node.db.statements import upsert

router = APIRouter(tags=["consent"])


@router.post(
    "/v1/consents", status_code=202, response_model=RelayResult, response_model_by_alias=True,
    responses=problem_responses(400, 401, 404, 409, 429, 503),
)  # fmt: skip
def relay(rt: Runtime, body: ConsentSubmission, request: Request) -> dict[str, object]:
    """Submit an owner's EIP-712 signed grant or revocation; the node pays the gas. Checked against the index
    (owner, nonce, deadline, chain id) before anything is sent."""
    rt.require_fresh()
    try:
        consent = SignedConsent.from_json(body.model_dump(by_alias=True))
    except ValueError as error:
        raise Problem(400, "malformed-consent", "Malformed signed consent", str(error)) from None
    consent = SignedConsent(**{**consent.__dict__, "did": canonical_did(consent.did)})
    result = rt.relayer.submit(
        consent,
        chain_id=body.chain_id,
        contract=body.verifying_contract,
        chain_now=rt.chain_now(),
        client=request.client.host if request.client else "unknown",
    )
    return {"txHash": result.tx_hash, "blockNumber": result.block_number, "status": "mined"}


@router.put(
    "/v1/owners/recovery-key", response_model=RecoveryKeyInfo, responses=problem_responses(400, 401, 403, 409, 413),
)  # fmt: skip
def register_recovery_key(rt: Runtime, caller: AuthenticatedCaller, body: RecoveryKeyRegistration) -> dict[str, str]:
    """Name the did:key an owner's snapshots are sealed to. The request is signed by that did:key; the body carries
    the owner address's EIP-191 signature of the binding, so both keys agree. Bindings are ordered by when they were
    issued: the node keeps the latest and refuses an older one (409), so a key the owner rotated away from cannot
    be put back by replaying its binding."""
    if not caller.did.startswith("did:key:"):
        raise Problem(400, "recovery-key-not-did-key", "A recovery key is an Ed25519 did:key",
                      f"the request was signed by {caller.did}", hint="sign with the wallet's did:key")  # fmt: skip
    now, skew, window = int(time.time()), rt.auth.settings.max_clock_skew_s, rt.settings.signature_window
    if not now - window - skew <= body.issued <= now + skew:
        # A binding is registered when it is made: a stale one would let an old key back in where the rotation
        # was never seen, a future one would refuse the owner's next rotation.
        raise Problem(400, "recovery-key/issued-out-of-window", "Binding not issued now",
                      f"the binding was issued at {body.issued}; this node's clock says {now} and accepts bindings "
                      f"issued within {window} s before it", hint="make the binding again now")  # fmt: skip
    address = Web3.to_checksum_address(body.address)
    message = recovery_key_message(address, caller.did, rt.client.chain_id, body.issued)
    try:
        signer = Account.recover_message(encode_defunct(text=message), signature=bytes.fromhex(body.signature[2:]))
    except Exception:  # any malformed signature
        raise Problem(
            400, "malformed-signature", "Malformed signature", "the address signature does not parse"
        ) from None
    if signer != address:
        raise Problem(403, "address-signature-mismatch", "Address signature does not match",
                      f"the binding was signed by {signer}, not {address}")  # fmt: skip
    with rt.state.write() as db:
        current = db.execute("SELECT did, issued FROM recovery_keys WHERE owner = ?", (address,)).fetchone()
        # The same binding again is a no-op (clients re-register idempotently); any other must be newer.
        same = current is not None and (current["issued"], current["did"]) == (body.issued, caller.did)
        if current is not None and not same and body.issued <= current["issued"]:
            raise Problem(409, "recovery-key/stale-binding", "A newer binding is registered",
                          f"the binding issued at {body.issued} is not newer than the one registered for {address} "
                          f"(issued {current['issued']})",
                          hint="make a new binding (`twinledger wallet register-recovery-key`)")  # fmt: skip
        db.execute(upsert("recovery_keys", ("owner", "did", "proof", "issued"), ("owner",)),
                   (address, caller.did, body.signature, body.issued))  # fmt: skip
    return {"owner": address, "did": caller.did}
