"""DID-signed HTTP requests: RFC 9421 HTTP Message Signatures over method, target URI and RFC 9530
Content-Digest.

A signature covers ``@method``, ``@target-uri`` and ``content-digest`` and carries ``created``, ``expires``,
``nonce``, ``keyid`` (the signer's DID URL) and ``alg`` (``ed25519`` or ``eip191-secp256k1``). Verification
resolves the key id through didkit and yields the signer's canonical DID; replay detection is the caller's
(the node keeps a replay cache keyed by signer and nonce).

Structured Fields are parsed and serialised by ``http_sf``. The signature base is built here rather than with
``http-message-signatures`` because that library cannot carry the EIP-191 algorithm through its verifier's key
model and because the node must reject every deviation with its own error class; the test suite checks
interoperability with that independent implementation in both directions.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Final

import http_sf

from twinledger.identity.errors import (
    ContentDigestMismatch,
    MalformedSignature,
    MissingContentDigest,
    MissingSignature,
    OutsideTimeWindow,
    UnsupportedAlgorithm,
)
from twinledger.identity.keys import ED25519, EIP191_SECP256K1, DidSigner
from twinledger.identity.resolve import DidResolver, default_resolver

REQUIRED_COMPONENTS: Final = ("@method", "@target-uri", "content-digest")
REQUIRED_PARAMS: Final = ("created", "expires", "nonce", "keyid", "alg")
ALLOWED_PARAMS: Final = frozenset({*REQUIRED_PARAMS, "tag"})
ALGORITHMS: Final = frozenset({ED25519, EIP191_SECP256K1})
SIGNATURE_LABEL: Final = "sig1"
DEFAULT_LIFETIME_S: Final = 60
MIN_NONCE_CHARS: Final = 16
_DIGESTS: Final = {"sha-256": hashlib.sha256, "sha-512": hashlib.sha512}

HeaderLines = Mapping[str, str] | Iterable[tuple[str, str]]


def content_digest(body: bytes) -> str:
    """The RFC 9530 ``Content-Digest`` field value (sha-256) of ``body``."""
    return http_sf.ser({"sha-256": (hashlib.sha256(body).digest(), {})})


def new_nonce() -> str:
    return secrets.token_urlsafe(24)


def sign_request(
    signer: DidSigner,
    method: str,
    url: str,
    body: bytes,
    *,
    created: int | None = None,
    lifetime_s: int = DEFAULT_LIFETIME_S,
    nonce: str | None = None,
) -> dict[str, str]:
    """Return the ``Content-Digest``, ``Signature-Input`` and ``Signature`` headers for a request."""
    created = int(time.time()) if created is None else created
    digest = content_digest(body)
    params: dict[str, Any] = {
        "created": created,
        "expires": created + lifetime_s,
        "nonce": nonce or new_nonce(),
        "keyid": signer.did_url,
        "alg": signer.algorithm,
    }
    components = {"@method": method.upper(), "@target-uri": url, "content-digest": digest}
    signature_params = _serialize_params(list(components), params)
    signature = signer.sign(_signature_base(components, signature_params))
    return {
        "Content-Digest": digest,
        "Signature-Input": f"{SIGNATURE_LABEL}={signature_params}",
        "Signature": http_sf.ser({SIGNATURE_LABEL: (signature, {})}),
    }


@dataclass(frozen=True)
class VerifiedRequest:
    """What a verified signature establishes; the header values let a node keep the signed request."""

    did: str
    key_id: str
    algorithm: str
    created: int
    expires: int
    nonce: str
    signature_input: str
    signature: str
    content_digest: str
    signature_base: bytes


@dataclass(frozen=True)
class TimeWindow:
    """Accepted clock skew either way, and the longest ``expires - created`` a signer may ask for."""

    max_skew_s: int = 30
    max_lifetime_s: int = 300


async def verify_request(
    method: str,
    url: str,
    headers: HeaderLines,
    body: bytes,
    *,
    resolver: DidResolver | None = None,
    window: TimeWindow | None = None,
    now: int | None = None,
) -> VerifiedRequest:
    """Verify a signed request; raise one of the identity errors naming what failed."""
    verified = await verify_request_signature(method, url, headers, resolver=resolver, window=window, now=now)
    # The digest is checked after the signature so an unauthenticated body costs no hashing.
    check_content_digest(verified.content_digest, body)
    return verified


def check_content_digest(value: str, body: bytes) -> None:
    """Raise unless ``body`` matches the ``Content-Digest`` field ``value``: with :func:`verify_request_signature`,
    a server verifies the signer before it reads the body at all."""
    _check_digest(value, body)


async def verify_request_signature(
    method: str,
    url: str,
    headers: HeaderLines,
    *,
    resolver: DidResolver | None = None,
    window: TimeWindow | None = None,
    now: int | None = None,
) -> VerifiedRequest:
    """Verify a signed request's signature without its body: the signer vouches for the ``content_digest`` it
    returns. For checking a kept request (a manifest's producer request) when only the body's hash is at hand."""
    window = window or TimeWindow()
    now = int(time.time()) if now is None else now
    fields = _combine_fields(headers)
    label, covered, params, signature = _parse_signature_fields(fields)
    if "content-digest" not in fields:
        raise MissingContentDigest(
            "the request has no Content-Digest header", hint="send Content-Digest (RFC 9530) and sign it"
        )
    if "content-digest" not in covered:
        raise MissingContentDigest("the signature does not cover content-digest")
    _check_window(params["created"], params["expires"], now, window)
    algorithm = params["alg"]
    if algorithm not in ALGORITHMS:
        raise UnsupportedAlgorithm(
            f"signature algorithm {algorithm!r} is not accepted", hint="use ed25519 or eip191-secp256k1"
        )
    components = {name: _component_value(name, method, url, fields) for name in covered}
    signature_params = _serialize_params(covered, params)
    base = _signature_base(components, signature_params)
    key = await (resolver or default_resolver()).resolve_key(params["keyid"])
    key.verify(algorithm, base, signature)
    return VerifiedRequest(
        did=key.did,
        key_id=key.key_id,
        algorithm=algorithm,
        created=params["created"],
        expires=params["expires"],
        nonce=params["nonce"],
        signature_input=f"{label}={signature_params}",
        signature=http_sf.ser({label: (signature, {})}),
        content_digest=fields["content-digest"],
        signature_base=base,
    )


def _combine_fields(headers: HeaderLines) -> dict[str, str]:
    # RFC 9421 §2.1: field lines of one name are trimmed and joined with ", " in order.
    lines = headers.items() if isinstance(headers, Mapping) else headers
    fields: dict[str, list[str]] = {}
    for name, value in lines:
        fields.setdefault(name.lower(), []).append(value.strip(" \t"))
    return {name: ", ".join(values) for name, values in fields.items()}


def _reject_duplicate(key: str, context: str) -> None:
    raise MalformedSignature(f"duplicate {context} key {key!r} in a signature header")


def _parse_dictionary(fields: dict[str, str], name: str) -> dict[str, Any]:
    if name not in fields:
        raise MissingSignature(
            f"the request has no {name} header", hint="sign the request (twinledger DidAuth or sign_request)"
        )
    try:
        parsed = http_sf.parse(fields[name].encode("ascii"), tltype="dictionary", on_duplicate_key=_reject_duplicate)
    except MalformedSignature:
        raise
    except (ValueError, UnicodeError, http_sf.StructuredFieldError) as exc:
        raise MalformedSignature(f"the {name} header is not a Structured Field dictionary") from exc
    if not isinstance(parsed, dict) or not parsed:
        raise MalformedSignature(f"the {name} header is empty")
    return parsed


def _parse_signature_fields(fields: dict[str, str]) -> tuple[str, list[str], dict[str, Any], bytes]:
    inputs = _parse_dictionary(fields, "signature-input")
    signatures = _parse_dictionary(fields, "signature")
    if len(inputs) != 1 or inputs.keys() != signatures.keys():
        raise MalformedSignature("expected exactly one signature, with the same label in Signature and Signature-Input")
    label = next(iter(inputs))
    member, params = inputs[label]
    signature_member = signatures[label]
    if not isinstance(member, list):
        raise MalformedSignature("the Signature-Input member is not an inner list of components")
    if not isinstance(signature_member, tuple) or not isinstance(signature_member[0], bytes):
        raise MalformedSignature("the Signature member is not a byte sequence")
    covered: list[str] = []
    for value, component_params in member:
        if not isinstance(value, str) or component_params or value in covered:
            raise MalformedSignature("covered components must be distinct strings without parameters")
        covered.append(value)
    missing = [name for name in REQUIRED_COMPONENTS if name not in covered and name != "content-digest"]
    if missing:
        raise MalformedSignature(f"the signature does not cover {', '.join(missing)}")
    unknown = set(params) - ALLOWED_PARAMS
    if unknown:
        raise MalformedSignature(f"unexpected signature parameters: {', '.join(sorted(unknown))}")
    absent = [name for name in REQUIRED_PARAMS if name not in params]
    if absent:
        raise MalformedSignature(f"the signature lacks the parameters {', '.join(absent)}")
    for name in ("created", "expires"):
        if type(params[name]) is not int:
            raise MalformedSignature(f"signature parameter {name} must be an integer")
    for name in ("nonce", "keyid", "alg", "tag"):
        if name in params and not isinstance(params[name], str):
            raise MalformedSignature(f"signature parameter {name} must be a string")
    if len(params["nonce"]) < MIN_NONCE_CHARS:
        raise MalformedSignature(f"the nonce must have at least {MIN_NONCE_CHARS} characters")
    return label, covered, dict(params), signature_member[0]


def _check_window(created: int, expires: int, now: int, window: TimeWindow) -> None:
    if created > now + window.max_skew_s:
        raise OutsideTimeWindow("the signature was created in the future", hint="check the client's clock")
    if expires <= created:
        raise OutsideTimeWindow("the signature expires before it was created")
    if expires - created > window.max_lifetime_s:
        raise OutsideTimeWindow(f"the signature is valid for longer than {window.max_lifetime_s} s")
    if expires < now - window.max_skew_s:
        raise OutsideTimeWindow("the signature has expired", hint="sign the request again just before sending")


def _component_value(name: str, method: str, url: str, fields: dict[str, str]) -> str:
    if name == "@method":
        return method.upper()
    if name == "@target-uri":
        return url
    if name.startswith("@"):
        raise MalformedSignature(f"derived component {name} is not supported")
    if name not in fields:
        raise MalformedSignature(f"the signed header {name} is missing from the request")
    return fields[name]


def _serialize_params(covered: list[str], params: dict[str, Any]) -> str:
    # http_sf serialises dictionaries; the inner list alone is the member text after "x=".
    member: Any = ([(name, {}) for name in covered], params)
    return http_sf.ser({"x": member})[2:]


def _signature_base(components: dict[str, str], signature_params: str) -> bytes:
    lines = [f'"{name}": {value}' for name, value in components.items()]
    lines.append(f'"@signature-params": {signature_params}')
    base = "\n".join(lines)
    if not base.isascii() or any(ch in value for value in components.values() for ch in "\r\n"):
        raise MalformedSignature("a signed component holds non-ASCII characters or line breaks")
    return base.encode("ascii")


def _check_digest(value: str, body: bytes) -> None:
    try:
        parsed = http_sf.parse(value.encode("ascii"), tltype="dictionary", on_duplicate_key=_reject_duplicate)
    except MalformedSignature:
        raise
    except (ValueError, UnicodeError, http_sf.StructuredFieldError) as exc:
        raise MalformedSignature("the Content-Digest header is not a Structured Field dictionary") from exc
    checked = 0
    members: dict[str, Any] = parsed if isinstance(parsed, dict) else {}
    for algorithm, member in members.items():
        if algorithm not in _DIGESTS:
            continue
        if not isinstance(member, tuple) or not isinstance(member[0], bytes):
            raise MalformedSignature(f"the Content-Digest {algorithm} value is not a byte sequence")
        if not hmac.compare_digest(member[0], _DIGESTS[algorithm](body).digest()):
            raise ContentDigestMismatch(f"the body does not match its Content-Digest ({algorithm})")
        checked += 1
    if not checked:
        raise MissingContentDigest("the Content-Digest has no sha-256 or sha-512 member")
