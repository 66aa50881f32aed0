"""Errors of snapshot encryption, one class per failure mode, each with a stable ``code``."""

from __future__ import annotations

from twinledger.errors import AuthError, IntegrityError, InvalidInput


class TamperedCiphertext(IntegrityError):
    """A ciphertext chunk fails authentication: modified, reordered, or encrypted under other parameters."""

    code = "tampered-ciphertext"
    http_status = 400


class TruncatedCiphertext(IntegrityError):
    """The ciphertext ends before its final chunk: data was cut off."""

    code = "truncated-ciphertext"
    http_status = 400


class MalformedEnvelope(InvalidInput):
    """The envelope JSON is not a twinledger envelope of a supported version and algorithm."""

    code = "malformed-envelope"
    http_status = 400


class TamperedEnvelope(IntegrityError):
    """A sealed data key does not open with the recipient's key: the envelope was altered."""

    code = "tampered-envelope"
    http_status = 400


class NotARecipient(AuthError):
    """The envelope holds no sealed key for this DID (never sealed to it, or shredded)."""

    code = "not-a-recipient"
    http_status = 403
