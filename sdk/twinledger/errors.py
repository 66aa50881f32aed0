"""The exception hierarchy every twinledger layer raises.

Each error says what went wrong and, in ``hint``, what the user can do about it. The CLI prints both and exits
with ``exit_code``; the node maps them to ``application/problem+json`` responses.
"""

from __future__ import annotations


class TwinledgerError(Exception):
    """Base of every error twinledger raises on purpose."""

    exit_code = 1

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return self.message if not self.hint else f"{self.message}\n  hint: {self.hint}"


class Declined(TwinledgerError):
    """The user answered no to a confirmation: nothing was done."""

    exit_code = 1


class InvalidInput(TwinledgerError):
    """The caller passed a value that cannot be right (bad flag, malformed CID or DID, ...)."""

    exit_code = 2


class NotFound(TwinledgerError):
    """The named thing (twin, block, deployment, key, ...) does not exist."""

    exit_code = 3


class IntegrityError(TwinledgerError):
    """Bytes do not match the hash, signature or anchor that should cover them."""

    exit_code = 4


class Unavailable(TwinledgerError):
    """A service this needs (chain RPC, IPFS, node) cannot be reached or is not ready."""

    exit_code = 5


class AuthError(TwinledgerError):
    """The caller could not be authenticated or is not authorized."""

    exit_code = 6
