"""Consent receipts against the chain: the transaction a receipt names is that grant's `Granted` event, the grant
it recorded is the one in force and live, and the receipt's issuer speaks for the twin's owner.

`grant_transaction` is what `twinledger consent receipt` checks before it issues anything, and
`verify_receipt_on_chain` what `twinledger consent receipt verify FILE` checks, trusting no node.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from web3.exceptions import TransactionNotFound

from twinledger.chain import artifacts
from twinledger.chain.ledger import OnChainGrants, TwinLedger
from twinledger.chain.logs import event_filter
from twinledger.chain.types import Scope, purpose_code
from twinledger.errors import IntegrityError, InvalidInput, NotFound
from twinledger.identity import canonical_did, did_hash
from twinledger.identity.credentials import (
    ConsentReceipt,
    evidenced_owner,
    scope_words,
    verify_consent_receipt,
)
from twinledger.identity.errors import CredentialExpired, GrantNotStanding, InvalidCredential
from twinledger.verify.checks import run

_TX_HASH = re.compile(r"0x[0-9a-fA-F]{64}")


@dataclass(frozen=True)
class GrantOnChain:
    """A grant as its transaction recorded it, checked to be the one in force now."""

    twin_id: int
    did: str
    purpose: bytes
    scopes: Scope
    expiry: int
    tx_hash: str
    block_number: int
    block_time: int
    owner: str  # the twin's owner, who gave the grant


def grant_transaction(ledger: TwinLedger, twin_id: int, did: str, purpose: str, tx_hash: str) -> GrantOnChain:
    """The grant of `twin_id` to `did` for `purpose` that transaction `tx_hash` made, from the registry's own
    `Granted` event in it; refused unless that grant is the one in force now, given by the twin's owner and not
    expired (a later revocation or re-grant replaces it)."""
    if not isinstance(tx_hash, str) or not _TX_HASH.fullmatch(tx_hash):
        raise InvalidInput(f"{tx_hash!r} is not a transaction hash", hint="pass the 0x-prefixed hash of the grant")
    tx_hash, did = tx_hash.lower(), canonical_did(did)
    code = purpose_code(purpose)
    w3 = ledger.client.w3
    try:
        receipt = w3.eth.get_transaction_receipt(tx_hash)  # type: ignore[arg-type]
    except TransactionNotFound:
        raise NotFound(
            f"there is no transaction {tx_hash} on chain {ledger.client.chain_id}",
            hint="pass the hash `twinledger consent grant` printed",
        ) from None
    event = ledger.contract.events.Granted()
    topic = bytes.fromhex(event_filter(ledger.contract, "Granted")["topics"][0][2:])
    wanted = (twin_id, did_hash(did), code)
    found = None
    for entry in receipt["logs"] if receipt["status"] == 1 else []:
        if str(entry["address"]).lower() != ledger.address.lower() or bytes(entry["topics"][0]) != topic:
            continue
        args = event.process_log(entry)["args"]
        if (int(args["twinId"]), bytes(args["didHash"]), bytes(args["purpose"])) == wanted:
            found = args
    if found is None:
        raise IntegrityError(
            f"transaction {tx_hash} records no grant of twin {twin_id} to {did} for {purpose} by the registry "
            f"{ledger.address}",
            hint="pass the transaction of that grant (`twinledger consent list` shows it)",
        )
    block = w3.eth.get_block(receipt["blockNumber"])
    number, timestamp = int(block["number"]), int(block["timestamp"])
    current = ledger.grant_of(twin_id, did, code)
    if not current.exists or current.granted_at != timestamp:
        raise GrantNotStanding(
            f"the grant transaction {tx_hash} made (block {number}) is no longer in force: it was "
            + ("revoked since" if not current.exists else "replaced by a later grant"),
            hint="a receipt describes the grant in force; name its transaction",
        )
    owner = ledger.owner_of(twin_id)
    if current.grantor != owner:
        raise GrantNotStanding(
            f"the grant transaction {tx_hash} made was given by {current.grantor}, no longer the owner of twin "
            f"{twin_id} ({owner}): it lapsed with the transfer"
        )
    now = ledger.client.chain_time()
    if current.expiry <= now:
        raise CredentialExpired(f"the grant transaction {tx_hash} made expired at {current.expiry} (chain time {now})")
    return GrantOnChain(
        twin_id, did, code, Scope(int(found["scopes"])), int(found["expiry"]), tx_hash, number, timestamp, owner
    )


def verify_receipt_on_chain(ledger: TwinLedger, credential: dict[str, Any]) -> tuple[ConsentReceipt, GrantOnChain]:
    """Everything a consent receipt claims, checked against the chain `ledger` is on: the registry it names is a
    TwinLedger, the credential's proof, its issuer is vouched for by the twin's owner, the transaction is the
    grant's event, and the grant is in force with the scopes and expiry the receipt states."""
    subject = credential.get("credentialSubject") if isinstance(credential, dict) else None
    if not isinstance(subject, dict):
        raise InvalidCredential("not a consent receipt: it has no credentialSubject")
    if subject.get("chainId") != ledger.client.chain_id or str(subject.get("registry", "")).lower() != (
        ledger.address.lower()
    ):
        raise InvalidInput(
            f"the receipt is for chain {subject.get('chainId')} / registry {subject.get('registry')}, the RPC serves "
            f"chain {ledger.client.chain_id}",
            hint="pass the --rpc-url of the chain the receipt names",
        )
    code = bytes(ledger.client.w3.eth.get_code(ledger.contract.address))
    if not artifacts.runtime_code_matches(artifacts.load("TwinLedger"), code):
        raise IntegrityError(f"the registry {ledger.address} the receipt names is not a TwinLedger contract")
    receipt = run(
        verify_consent_receipt(credential, OnChainGrants(ledger), now=ledger.client.chain_time())
    )  # proof, expiry, and isAuthorized now
    grant = receipt.grant
    owner = ledger.owner_of(grant.twin_id)
    vouched = evidenced_owner(receipt.credential)
    if vouched != owner:
        raise InvalidCredential(
            f"the receipt is issued by {receipt.issuer} for {vouched}, not by the owner of twin {grant.twin_id} "
            f"({owner})",
            hint="only the twin's owner issues its consent receipts",
        )
    on_chain = grant_transaction(ledger, grant.twin_id, grant.grantee_did, grant.purpose, grant.tx_hash)
    if int(on_chain.scopes) != grant.scopes or on_chain.expiry != grant.expires_at:
        raise IntegrityError(
            f"the receipt says {','.join(scope_words(grant.scopes))} until {grant.expires_at}; transaction "
            f"{grant.tx_hash} granted {','.join(scope_words(int(on_chain.scopes)))} until {on_chain.expiry}"
        )
    if grant.block_number is not None and grant.block_number != on_chain.block_number:
        raise IntegrityError(
            f"the receipt names block {grant.block_number}; transaction {grant.tx_hash} is in block "
            f"{on_chain.block_number}"
        )
    return receipt, on_chain
