"""Consent receipts: W3C Verifiable Credentials, issued and verified with didkit, for grants on chain.

The owner's did:key issues a ``ConsentReceipt`` credential whose subject is the grantee DID and whose claims
name the grant (twin, purpose, scopes as words, expiry) and where it lives (chain id, ConsentRegistry address,
the transaction and block of its ``Granted`` event). Its ``evidence`` is the owner's Ethereum signature naming
that did:key as the issuer of their receipts, so a verifier can tell the issuer is the twin's owner. A receipt is
only evidence that the grant was made; :func:`verify_consent_receipt` also asks a :class:`GrantLookup` (the chain
bindings, or the node's index) whether the grant still stands, and `twinledger.verify.consent` checks the rest
against the chain.
"""

from __future__ import annotations

import json
import re
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final, Protocol

import didkit
from eth_account import Account
from eth_account.messages import encode_defunct
from eth_account.signers.local import LocalAccount
from eth_utils import is_address, to_checksum_address

from twinledger.chain.types import Scope, purpose_code
from twinledger.errors import InvalidInput
from twinledger.identity.did import canonical_did, did_hash, split_did_url
from twinledger.identity.errors import CredentialExpired, GrantNotStanding, InvalidCredential
from twinledger.identity.keys import DidKey
from twinledger.identity.resolve import DIDKIT_ERROR

CREDENTIAL_TYPE: Final = "ConsentReceipt"
VOCABULARY: Final = "https://twinledger.dev/vocab#"
CONTEXT: Final = ["https://www.w3.org/2018/credentials/v1", {"@vocab": VOCABULARY}]
_TX_HASH = re.compile(r"0x[0-9a-f]{64}")
_MAX_TIMESTAMP = 253402300799  # 9999-12-31T23:59:59Z, the last instant xsd:dateTime in a VC can say


ALL_SCOPES: Final = 0x1F
OWNER_KEY_EVIDENCE: Final = "TwinOwnerKey"


class GrantLookup(Protocol):
    """What the receipt verifier needs from the chain (ConsentRegistry.isAuthorized semantics)."""

    def is_authorized(self, twin_id: int, did_hash: bytes, purpose: bytes, scope: int) -> bool: ...


@dataclass(frozen=True)
class ConsentGrant:
    """A grant as recorded on chain. ``expires_at`` is unix seconds, ``None`` for a grant without expiry."""

    twin_id: int
    grantee_did: str
    purpose: str
    scopes: int
    expires_at: int | None
    chain_id: int
    registry: str
    tx_hash: str
    block_number: int | None = None  # the block of the grant's transaction

    def __post_init__(self) -> None:
        if self.twin_id < 0 or self.chain_id <= 0:
            raise InvalidInput("twin id must be ≥ 0 and chain id > 0")
        if not 0 < self.scopes <= ALL_SCOPES:
            raise InvalidInput(f"scopes must be a non-empty subset of 0x{ALL_SCOPES:02x}")
        if self.expires_at is not None and not 0 < self.expires_at <= _MAX_TIMESTAMP:
            raise InvalidInput("expires_at must be a unix time before year 10000, or None")
        if not is_address(self.registry):
            raise InvalidInput("registry must be the ConsentRegistry's address")
        if not _TX_HASH.fullmatch(self.tx_hash):
            raise InvalidInput("tx_hash must be 0x and 64 lower-case hex digits")
        if self.block_number is not None and self.block_number < 0:
            raise InvalidInput(f"block number {self.block_number} is negative")
        purpose_code(self.purpose)
        object.__setattr__(self, "grantee_did", canonical_did(self.grantee_did))
        object.__setattr__(self, "registry", to_checksum_address(self.registry))


@dataclass(frozen=True)
class ConsentReceipt:
    """A verified receipt: who issued it and the grant it describes."""

    issuer: str
    grant: ConsentGrant
    credential: dict[str, Any]


def _iso(timestamp: int) -> str:
    return datetime.fromtimestamp(timestamp, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _from_iso(text: Any) -> int:
    if not isinstance(text, str):
        raise InvalidCredential("a credential date is not a string")
    try:
        return int(datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp())
    except ValueError as exc:
        raise InvalidCredential(f"{text!r} is not an ISO 8601 date") from exc


def scope_words(scopes: int) -> list[str]:
    """A scope mask as the words a receipt carries: READ, WRITE, TRAIN, INHERIT, AUDIT."""
    return [str(s.name) for s in Scope if s & scopes]


def owner_key_message(owner: str, did: str, chain_id: int) -> str:
    """What a twin owner signs (EIP-191) to name the did:key that issues their consent receipts."""
    return f"twinledger: my consent receipts on chain {chain_id} are issued by {did} (owner {owner})"


def owner_key_evidence(account: LocalAccount, did: str, chain_id: int) -> dict[str, Any]:
    """The receipt's evidence that `did` speaks for the Ethereum account `account` (a twin's owner)."""
    message = owner_key_message(account.address, canonical_did(did), chain_id)
    signature = Account.sign_message(encode_defunct(text=message), account.key).signature
    return {"type": [OWNER_KEY_EVIDENCE], "owner": str(account.address), "signature": "0x" + bytes(signature).hex()}


def evidenced_owner(credential: dict[str, Any]) -> str:
    """The Ethereum address whose signature in the receipt's evidence names the receipt's issuer."""
    listed = credential.get("evidence") or []
    evidence = [e for e in listed if isinstance(e, dict) and e.get("type") == [OWNER_KEY_EVIDENCE]]
    subject = credential.get("credentialSubject") or {}
    if len(evidence) != 1 or not is_address(evidence[0].get("owner")) or not isinstance(subject, dict):
        raise InvalidCredential(
            "the receipt carries no owner's signature naming its issuer, so nothing shows it is the twin's owner's",
            hint="ask the twin's owner to issue it with `twinledger consent receipt`",
        )
    owner = to_checksum_address(evidence[0]["owner"])
    message = owner_key_message(owner, str(credential.get("issuer")), int(subject.get("chainId", 0)))
    try:
        signer = Account.recover_message(encode_defunct(text=message), signature=evidence[0].get("signature"))
    except Exception as exc:  # any malformed signature
        raise InvalidCredential(f"the receipt's owner signature is malformed: {exc.__class__.__name__}") from None
    if signer != owner:
        raise InvalidCredential(f"the receipt's owner signature is by {signer}, not by the owner it names ({owner})")
    return owner


async def issue_consent_receipt(
    owner: DidKey, grant: ConsentGrant, *, evidence: dict[str, Any] | None = None, issued_at: int | None = None
) -> dict[str, Any]:
    """Issue the receipt for ``grant`` as ``owner`` (an Ed25519 did:key); return the signed credential.

    ``evidence`` is :func:`owner_key_evidence` of the owner's account and this did:key; without it nothing in the
    receipt ties the issuer to the twin's owner, and `twinledger consent receipt verify` refuses it."""
    subject: dict[str, Any] = {
        "id": grant.grantee_did,
        "twinId": str(grant.twin_id),  # a string: uint256 ids exceed what JSON numbers carry exactly
        "purpose": grant.purpose,
        "purposeCode": "0x" + purpose_code(grant.purpose).hex(),
        "scopes": scope_words(grant.scopes),
        "chainId": grant.chain_id,
        "registry": grant.registry,
        "txHash": grant.tx_hash,
    }
    if grant.block_number is not None:
        subject["blockNumber"] = grant.block_number
    credential: dict[str, Any] = {
        "@context": CONTEXT,
        "type": ["VerifiableCredential", CREDENTIAL_TYPE],
        "issuer": owner.did,
        "issuanceDate": _iso(int(time.time()) if issued_at is None else issued_at),
        "credentialSubject": subject,
    }
    if grant.expires_at is not None:
        credential["expirationDate"] = _iso(grant.expires_at)
    if evidence is not None:
        credential["evidence"] = [evidence]
    options = {"proofPurpose": "assertionMethod", "verificationMethod": owner.did_url}
    try:
        signed = await didkit.issue_credential(json.dumps(credential), json.dumps(options), owner.to_jwk())
    except (DIDKIT_ERROR, ValueError) as exc:  # didkit raises ValueError for JSON it cannot map
        raise InvalidCredential(f"didkit could not issue the receipt: {exc}") from exc
    result: dict[str, Any] = json.loads(signed)
    return result


def _scopes(words: Any) -> int:
    if (
        not isinstance(words, list)
        or not words
        or not all(isinstance(w, str) and w in Scope.__members__ for w in words)
    ):
        raise ValueError(f"scopes are words among {', '.join(Scope.__members__)}, not {words!r}")
    return int(Scope.parse(",".join(words)))


def _grant_from_subject(subject: Any) -> ConsentGrant:
    expected = {"id", "twinId", "purpose", "purposeCode", "scopes", "chainId", "registry", "txHash"}
    if not isinstance(subject, dict) or set(subject) - {"blockNumber"} != expected:
        raise InvalidCredential(
            f"a consent receipt's subject has exactly {', '.join(sorted(expected))} (and optionally blockNumber)"
        )
    try:
        twin_id = int(subject["twinId"])
        block = subject.get("blockNumber")
        if (
            str(twin_id) != subject["twinId"]
            or type(subject["chainId"]) is not int
            or (block is not None and type(block) is not int)
        ):
            raise ValueError("wrong types")
        grant = ConsentGrant(
            twin_id=twin_id,
            grantee_did=subject["id"],
            purpose=subject["purpose"],
            scopes=_scopes(subject["scopes"]),
            expires_at=None,
            chain_id=subject["chainId"],
            registry=subject["registry"],
            tx_hash=subject["txHash"],
            block_number=block,
        )
    except (ValueError, TypeError, InvalidInput) as exc:
        raise InvalidCredential(f"the receipt's subject is malformed: {exc}") from exc
    if subject["purposeCode"] != "0x" + purpose_code(grant.purpose).hex():
        raise InvalidCredential("the receipt's purposeCode is not keccak256 of its purpose")
    return grant


async def verify_consent_receipt(
    credential: dict[str, Any] | str,
    grants: GrantLookup,
    *,
    now: int | None = None,
    expected_issuer: str | None = None,
) -> ConsentReceipt:
    """Verify the receipt's proof with didkit, its expiry, its issuer, and that the grant still stands."""
    try:
        vc = json.loads(credential) if isinstance(credential, str) else dict(credential)
    except ValueError as exc:
        raise InvalidCredential("the receipt is not JSON") from exc
    if not isinstance(vc, dict) or CREDENTIAL_TYPE not in vc.get("type", []) or not isinstance(vc.get("issuer"), str):
        raise InvalidCredential(f"not a {CREDENTIAL_TYPE} credential with an issuer")
    proof = vc.get("proof")
    if not isinstance(proof, dict) or not isinstance(proof.get("verificationMethod"), str):
        raise InvalidCredential("the receipt has no proof")
    issuer = canonical_did(vc["issuer"])
    if issuer != vc["issuer"] or split_did_url(proof["verificationMethod"])[0] != issuer:
        raise InvalidCredential("the receipt is not signed by a key of its (canonical) issuer")
    try:
        report = json.loads(
            await didkit.verify_credential(json.dumps(vc), json.dumps({"proofPurpose": "assertionMethod"}))
        )
    except (DIDKIT_ERROR, ValueError) as exc:  # didkit raises ValueError for JSON it cannot map
        raise InvalidCredential(f"didkit could not verify the receipt: {exc}") from exc
    grant = _grant_from_subject(vc.get("credentialSubject"))
    now = int(time.time()) if now is None else now
    if "expirationDate" in vc:
        expires_at = _from_iso(vc["expirationDate"])
        grant = ConsentGrant(**{**grant.__dict__, "expires_at": expires_at})
        if expires_at <= now:
            raise CredentialExpired(f"the grant this receipt describes expired at {vc['expirationDate']}")
    if report.get("errors") or "proof" not in report.get("checks", []):
        raise InvalidCredential(f"the receipt's proof does not verify: {'; '.join(map(str, report.get('errors', [])))}")
    if expected_issuer is not None and canonical_did(expected_issuer) != issuer:
        raise InvalidCredential(
            f"the receipt is issued by {issuer}, not by the twin's owner {canonical_did(expected_issuer)}"
        )
    if not grants.is_authorized(grant.twin_id, did_hash(grant.grantee_did), purpose_code(grant.purpose), grant.scopes):
        raise GrantNotStanding(
            f"twin {grant.twin_id} no longer grants {','.join(scope_words(grant.scopes))} for {grant.purpose}"
            f" to {grant.grantee_did}",
            hint="the grant was revoked, narrowed or has expired on chain",
        )
    return ConsentReceipt(issuer=issuer, grant=grant, credential=vc)
