"""Signed records: canonical JSON (RFC 8785 JCS) signed by a DID key, for manifests and access receipts.

A signed record is the record plus a ``proof`` member ``{"alg", "kid", "created", "signature"}``. The
signature covers the JCS bytes of the whole record with the proof minus its ``signature``, so the signer,
algorithm and time are bound too. Numbers must be integers (JCS serialises floats in a way other languages may
not reproduce exactly).
"""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

import rfc8785

from twinledger.identity.did import canonical_did
from twinledger.identity.errors import BadSignature, MalformedSignature
from twinledger.identity.keys import DidSigner
from twinledger.identity.resolve import DidResolver, default_resolver

PROOF: Final = "proof"
_SAFE_INTEGER: Final = 2**53 - 1


@dataclass(frozen=True)
class VerifiedRecord:
    """A verified record: ``signer`` is the canonical DID, ``record`` the content without the proof."""

    record: dict[str, Any]
    signer: str
    key_id: str
    created: int


def canonical_json(value: Any) -> bytes:
    """RFC 8785 bytes of ``value``; refuse what JCS cannot represent identically everywhere."""
    # Records of plain keys and safe integers (every receipt and manifest) take the C encoder: the same bytes, in
    # a sixth of the pure-Python serialiser's time, which was a tenth of a read's CPU (tests/identity compare both).
    if _plain(value):
        try:
            return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()
        except UnicodeEncodeError as exc:  # a lone surrogate
            raise MalformedSignature(f"the record cannot be canonicalised: {exc}") from exc
    try:
        return rfc8785.dumps(value)
    except (rfc8785.CanonicalizationError, TypeError, ValueError) as exc:
        raise MalformedSignature(f"the record cannot be canonicalised: {exc}") from exc


def sign_record(record: Mapping[str, Any], signer: DidSigner, *, created: int | None = None) -> dict[str, Any]:
    """Return ``record`` with a ``proof`` by ``signer``."""
    if PROOF in record:
        raise MalformedSignature("the record already has a proof", hint="sign the unsigned record")
    proof = {
        "alg": signer.algorithm,
        "kid": signer.did_url,
        "created": int(time.time()) if created is None else created,
    }
    payload = canonical_json({**record, PROOF: proof})
    signature = base64.urlsafe_b64encode(signer.sign(payload)).rstrip(b"=").decode()
    return {**record, PROOF: {**proof, "signature": signature}}


async def verify_record(
    signed: Mapping[str, Any], *, resolver: DidResolver | None = None, expected_signer: str | None = None
) -> VerifiedRecord:
    """Verify a record's proof; optionally require a particular signer DID (any spelling of it)."""
    proof = signed.get(PROOF)
    if not isinstance(proof, dict) or set(proof) != {"alg", "kid", "created", "signature"}:
        raise MalformedSignature("the record's proof must have exactly alg, kid, created and signature")
    if (
        not all(isinstance(proof[name], str) for name in ("alg", "kid", "signature"))
        or type(proof["created"]) is not int
    ):
        raise MalformedSignature("the record's proof fields have the wrong types")
    try:
        signature = base64.urlsafe_b64decode(proof["signature"] + "=" * (-len(proof["signature"]) % 4))
    except ValueError as exc:
        raise MalformedSignature("the record's signature is not base64url") from exc
    unsigned_proof = {name: value for name, value in proof.items() if name != "signature"}
    record = {name: value for name, value in signed.items() if name != PROOF}
    key = await (resolver or default_resolver()).resolve_key(proof["kid"])
    key.verify(proof["alg"], canonical_json({**record, PROOF: unsigned_proof}), signature)
    if expected_signer is not None and canonical_did(expected_signer) != key.did:
        raise BadSignature(f"the record is signed by {key.did}, not by {canonical_did(expected_signer)}")
    return VerifiedRecord(record=record, signer=key.did, key_id=key.key_id, created=proof["created"])


def _plain(value: Any) -> bool:
    """Refuse floats; True when `value` is JSON whose RFC 8785 form is Python's sorted, compact `json.dumps`: every
    key ASCII (JCS sorts by UTF-16 code units, Python by code points: equal for ASCII) and every integer exactly
    representable as an IEEE double (what JCS numbers are). Strings escape alike: both write only `"`, `\\` and
    U+0000-U+001F escaped, with the same short forms and lowercase `\\u00xx`."""
    if isinstance(value, str) or value is None or isinstance(value, bool):
        return True
    if isinstance(value, int):
        return -_SAFE_INTEGER <= value <= _SAFE_INTEGER
    if isinstance(value, float):
        raise MalformedSignature("signed records hold integers only; encode fractional numbers as strings")
    if isinstance(value, Mapping):
        plain = True
        for key, item in value.items():
            plain = _plain(item) and plain and isinstance(key, str) and key.isascii()
        return plain
    if isinstance(value, list | tuple):
        plain = True
        for item in value:
            plain = _plain(item) and plain
        return plain
    return False  # let rfc8785 say what it cannot represent
