"""Errors of the identity layer: one class per failure mode, each with a stable ``code``.

The node turns ``code`` into the ``type`` of an ``application/problem+json`` answer and ``http_status`` into
the status, so clients can branch on what failed without parsing messages. Messages never include key
material.
"""

from __future__ import annotations

from twinledger.errors import AuthError, IntegrityError, InvalidInput, NotFound


class MalformedDid(InvalidInput):
    """The string is not a syntactically valid DID of a supported method."""

    code = "malformed-did"
    http_status = 400


class UnsupportedDid(InvalidInput):
    """The DID is well formed but names a method or key type twinledger does not accept."""

    code = "unsupported-did"
    http_status = 400


class UnresolvableDid(NotFound):
    """The DID (or its key id) does not resolve to a usable verification key."""

    code = "unresolvable-did"
    http_status = 401


class BadSignature(IntegrityError):
    """A signature does not verify over the bytes it claims to cover."""

    code = "bad-signature"
    http_status = 401


class MissingSignature(AuthError):
    """The request carries no signature at all: the caller is not authenticated."""

    code = "missing-signature"
    http_status = 401


class MalformedSignature(InvalidInput):
    """The Signature / Signature-Input headers (or a record's proof) cannot be parsed or miss a parameter."""

    code = "malformed-signature"
    http_status = 400


class UnsupportedAlgorithm(InvalidInput):
    """The signature's ``alg`` is unknown or does not fit the key type of the signer."""

    code = "unsupported-algorithm"
    http_status = 400


class OutsideTimeWindow(AuthError):
    """The signature's ``created``/``expires`` lie outside the accepted window."""

    code = "outside-time-window"
    http_status = 401


class ReplayedNonce(AuthError):
    """The signature's nonce was already used by this signer within the window."""

    code = "replayed-nonce"
    http_status = 401


class MissingContentDigest(InvalidInput):
    """The request has no Content-Digest, or the signature does not cover it."""

    code = "missing-content-digest"
    http_status = 400


class ContentDigestMismatch(IntegrityError):
    """The Content-Digest does not match the body that arrived."""

    code = "content-digest-mismatch"
    http_status = 400


class InvalidCredential(IntegrityError):
    """A verifiable credential is malformed or its proof does not verify."""

    code = "invalid-credential"
    http_status = 400


class CredentialExpired(AuthError):
    """A consent receipt's grant expiry has passed."""

    code = "credential-expired"
    http_status = 401


class GrantNotStanding(AuthError):
    """The grant a consent receipt describes no longer holds on chain (revoked, narrowed or expired)."""

    code = "grant-not-standing"
    http_status = 401
