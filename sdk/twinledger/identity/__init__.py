"""Identity: DIDs, key holders, DID-signed HTTP requests, signed records and consent receipts.

Public API (``async`` marks coroutines)::

    canonical_did(did: str) -> str          # the one canonical spelling (see twinledger.identity.did)
    did_hash(did: str) -> bytes             # keccak256(utf8(canonical DID)), as the contracts store
    parse_did(did: str) -> ParsedDid
    DidKey.generate() / DidKey.from_jwk(jwk) / DidKey(seed)
        .did .did_url .algorithm .sign(data) .to_jwk() .x25519_private_key() .x25519_public_key()
    EthereumDid(account: LocalAccount, chain_id: int)    # did:pkh:eip155, EIP-191 signatures
    async DidResolver().resolve_key(did_url) -> VerificationKey    # through didkit
    sign_request(signer, method, url, body, *, created=None, lifetime_s=60, nonce=None) -> dict[str, str]
    DidAuth(signer)                         # httpx.Auth that signs every request
    async verify_request(method, url, headers, body, *, resolver=None, window=None, now=None)
        -> VerifiedRequest
    sign_record(record, signer, *, created=None) -> dict
    async verify_record(signed, *, resolver=None, expected_signer=None) -> VerifiedRecord
    Scope, purpose_code(purpose) -> bytes, ConsentGrant, GrantLookup (Protocol)
    async issue_consent_receipt(owner: DidKey, grant: ConsentGrant, *, issued_at=None) -> dict
    async verify_consent_receipt(vc, grants: GrantLookup, *, now=None, expected_issuer=None)
        -> ConsentReceipt

Every failure raises a subclass of TwinledgerError with a ``code`` (see twinledger.identity.errors).
"""

from typing import TYPE_CHECKING

from twinledger.lazy import lazy_exports

if TYPE_CHECKING:
    from twinledger.chain.types import Scope, purpose_code
    from twinledger.identity.credentials import (
        ConsentGrant,
        ConsentReceipt,
        GrantLookup,
        issue_consent_receipt,
        verify_consent_receipt,
    )
    from twinledger.identity.did import ParsedDid, canonical_did, did_hash, parse_did, split_did_url
    from twinledger.identity.errors import (
        BadSignature,
        ContentDigestMismatch,
        CredentialExpired,
        GrantNotStanding,
        InvalidCredential,
        MalformedDid,
        MalformedSignature,
        MissingContentDigest,
        MissingSignature,
        OutsideTimeWindow,
        ReplayedNonce,
        UnresolvableDid,
        UnsupportedAlgorithm,
        UnsupportedDid,
    )
    from twinledger.identity.http_signatures import (
        TimeWindow,
        VerifiedRequest,
        check_content_digest,
        content_digest,
        sign_request,
        verify_request,
        verify_request_signature,
    )
    from twinledger.identity.httpx_auth import DidAuth
    from twinledger.identity.keys import ED25519, EIP191_SECP256K1, DidKey, DidSigner, EthereumDid
    from twinledger.identity.records import VerifiedRecord, canonical_json, sign_record, verify_record
    from twinledger.identity.resolve import DidResolver, VerificationKey, default_resolver

# `twinledger.identity.did` alone (the chain layer's need) must not load didkit, httpx and eth-account.
__getattr__ = lazy_exports(
    __name__,
    {
        "BadSignature": ".errors",
        "ConsentGrant": ".credentials",
        "ConsentReceipt": ".credentials",
        "ContentDigestMismatch": ".errors",
        "CredentialExpired": ".errors",
        "DidAuth": ".httpx_auth",
        "DidKey": ".keys",
        "DidResolver": ".resolve",
        "DidSigner": ".keys",
        "ED25519": ".keys",
        "EIP191_SECP256K1": ".keys",
        "EthereumDid": ".keys",
        "GrantLookup": ".credentials",
        "GrantNotStanding": ".errors",
        "InvalidCredential": ".errors",
        "MalformedDid": ".errors",
        "MalformedSignature": ".errors",
        "MissingContentDigest": ".errors",
        "MissingSignature": ".errors",
        "OutsideTimeWindow": ".errors",
        "ParsedDid": ".did",
        "ReplayedNonce": ".errors",
        "Scope": "twinledger.chain.types",
        "TimeWindow": ".http_signatures",
        "UnresolvableDid": ".errors",
        "UnsupportedAlgorithm": ".errors",
        "UnsupportedDid": ".errors",
        "VerificationKey": ".resolve",
        "VerifiedRecord": ".records",
        "VerifiedRequest": ".http_signatures",
        "canonical_did": ".did",
        "canonical_json": ".records",
        "check_content_digest": ".http_signatures",
        "content_digest": ".http_signatures",
        "default_resolver": ".resolve",
        "did_hash": ".did",
        "issue_consent_receipt": ".credentials",
        "parse_did": ".did",
        "purpose_code": "twinledger.chain.types",
        "sign_record": ".records",
        "sign_request": ".http_signatures",
        "split_did_url": ".did",
        "verify_consent_receipt": ".credentials",
        "verify_record": ".records",
        "verify_request": ".http_signatures",
        "verify_request_signature": ".http_signatures",
    },
)

__all__ = [
    "ED25519",
    "EIP191_SECP256K1",
    "BadSignature",
    "ConsentGrant",
    "ConsentReceipt",
    "ContentDigestMismatch",
    "CredentialExpired",
    "DidAuth",
    "DidKey",
    "DidResolver",
    "DidSigner",
    "EthereumDid",
    "GrantLookup",
    "GrantNotStanding",
    "InvalidCredential",
    "MalformedDid",
    "MalformedSignature",
    "MissingContentDigest",
    "MissingSignature",
    "OutsideTimeWindow",
    "ParsedDid",
    "ReplayedNonce",
    "Scope",
    "TimeWindow",
    "UnresolvableDid",
    "UnsupportedAlgorithm",
    "UnsupportedDid",
    "VerificationKey",
    "VerifiedRecord",
    "VerifiedRequest",
    "canonical_did",
    "canonical_json",
    "check_content_digest",
    "content_digest",
    "default_resolver",
    "did_hash",
    "issue_consent_receipt",
    "parse_did",
    "purpose_code",
    "sign_record",
    "sign_request",
    "split_did_url",
    "verify_consent_receipt",
    "verify_record",
    "verify_request",
    "verify_request_signature",
]
