"""The SDK's exceptions: the twinledger hierarchy (InvalidInput, NotFound, AuthError, IntegrityError,
Unavailable), with a few specific kinds, each carrying a `hint` that says what to do."""

from __future__ import annotations

from typing import Any

import httpx

from twinledger.errors import AuthError, InvalidInput, NotFound, TwinledgerError, Unavailable
from twinledger.verify.checks import VerificationFailed


class NotOwner(AuthError):
    """The wallet does not own (control) the twin it tried to change. Nothing was sent."""


class ConsentDenied(AuthError):
    """The node refused a read (or a federated update): no live grant for this DID, purpose and scope."""

    exit_code = 7


class NodeUnavailable(Unavailable):
    """The node cannot be reached or is not ready (its index is stale)."""


class Conflict(InvalidInput):
    """The node refused the request given the current state (e.g. the owner has no recovery key)."""


def from_problem(response: httpx.Response) -> TwinledgerError:
    """An error response of the node as the matching exception, keeping its detail and hint."""
    try:
        body: dict[str, Any] = response.json()
    except ValueError:
        body = {}
    slug = str(body.get("type", "")).removeprefix("urn:twinledger:problem:")
    detail = body.get("detail") or body.get("title") or f"HTTP {response.status_code}"
    message = f"{detail} [{slug or response.status_code}]"
    hint = body.get("hint")
    status = response.status_code
    if status == 403 and (slug.startswith("consent/") or slug == "fl/not-authorized"):  # no TRAIN grant: consent
        return ConsentDenied(message, hint=hint)
    if status in (401, 403):
        return AuthError(message, hint=hint)
    if status == 404:
        return NotFound(message, hint=hint)
    if status == 409:
        return Conflict(message, hint=hint)
    if status in (400, 413, 422):
        return InvalidInput(message, hint=hint)
    if status in (502, 503, 504):
        return NodeUnavailable(message, hint=hint or "retry shortly; the node's index may be catching up")
    return TwinledgerError(message, hint=hint)


__all__ = ["Conflict", "ConsentDenied", "NodeUnavailable", "NotOwner", "VerificationFailed", "from_problem"]
