"""The FastAPI dependency that authenticates DID-signed requests (RFC 9421) and yields the caller."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated

from fastapi import Request
from pydantic import BaseModel, Field
from starlette.types import ASGIApp, Receive, Scope, Send

from twinledger.errors import TwinledgerError
from twinledger.identity.http_signatures import (
    TimeWindow,
    VerifiedRequest,
    check_content_digest,
    verify_request_signature,
)
from twinledger.identity.resolve import DidResolver
from twinledger_node.auth.problems import AuthProblem
from twinledger_node.auth.replay import Nonce, ReplayCache

# A durable home for nonces (the node's group committer): `(nonce) -> future`, resolved once the nonce's row is
# committed, failing with ReplayedNonce if the row was already there (another process, or before a restart).
NonceSink = Callable[[Nonce], "Future[None]"]


def spends_nonce_in_commit(endpoint: Callable[..., object]) -> Callable[..., object]:
    """Mark a route that writes its request's nonce in the same group commit as what it stores (a push, a read's
    receipt): authentication then checks the nonce in memory only, and the route's commit is the durable check,
    made before anything is acknowledged or served."""
    endpoint.__dict__["nonce_in_commit"] = True
    return endpoint


def nonce_in_commit(request: Request) -> bool:
    return bool(getattr(getattr(request.scope.get("route"), "endpoint", None), "nonce_in_commit", False))


NONCE_STATE = "twinledger.nonce"  # the request-state key under which authentication leaves the caller's nonce


class SpendLeftoverNonces:
    """A route that spends its nonce in its own commit may fail before that commit (a consent refusal, a 404):
    this pure ASGI middleware then spends the nonce durably once the answer is out, so the request cannot be
    replayed after a restart or through another process. (A middleware rather than a `yield` dependency: FastAPI's
    exit stack for one cost a tenth of a read's CPU.)"""

    def __init__(self, app: ASGIApp, *, spend: Callable[[Nonce], object]) -> None:
        self.app, self.spend = app, spend

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await self.app(scope, receive, send)
        finally:
            nonce = scope.get("state", {}).get(NONCE_STATE)
            if nonce is not None and not nonce.spent:
                self.spend(nonce)


class AuthSettings(BaseModel):
    """How strict the node is about signed requests."""

    max_clock_skew_s: Annotated[int, Field(ge=0, le=600)] = 30
    max_signature_lifetime_s: Annotated[int, Field(gt=0, le=3600)] = 300
    replay_db_dir: Path | None = None
    replay_max_entries: Annotated[int, Field(gt=0)] = 100_000
    # Behind a TLS-terminating proxy the URL the client signed is not the one the app sees; name it here.
    public_base_url: str | None = None
    max_body_bytes: Annotated[int, Field(gt=0)] = 64 * 1024 * 1024


@dataclass(frozen=True)
class Caller(VerifiedRequest):
    """An authenticated caller: the verified signature (kept for access receipts) and what it covered."""

    method: str
    target_uri: str
    replay: Nonce | None = None  # the nonce as spent, for routes that write it in their own commit


class BodyTooLarge(TwinledgerError):
    code = "body-too-large"
    http_status = 413


class SignedRequestAuth:
    """``Depends(SignedRequestAuth(settings))`` → :class:`Caller`, or a problem+json 400/401."""

    def __init__(
        self, settings: AuthSettings | None = None, *, resolver: DidResolver | None = None,
        durable_nonces: NonceSink | None = None,
    ) -> None:  # fmt: skip
        """With `durable_nonces` the in-memory cache is a fast path and the sink the authority; else the cache's own
        SQLite file (`replay_db_dir`) is."""
        self.settings = settings or AuthSettings()
        self.durable_nonces = durable_nonces
        self._resolver = resolver or DidResolver()
        self._window = TimeWindow(
            max_skew_s=self.settings.max_clock_skew_s, max_lifetime_s=self.settings.max_signature_lifetime_s
        )
        self.replay_cache = ReplayCache(
            self.settings.replay_db_dir, max_entries=self.settings.replay_max_entries, evict=durable_nonces is not None
        )

    def target_uri(self, request: Request) -> str:
        if self.settings.public_base_url is None:
            return str(request.url)
        query = f"?{request.url.query}" if request.url.query else ""
        return f"{self.settings.public_base_url.rstrip('/')}{request.url.path}{query}"

    async def __call__(self, request: Request) -> Caller:
        try:
            length = request.headers.get("content-length")
            if length is not None and length.isdigit() and int(length) > self.settings.max_body_bytes:
                raise BodyTooLarge(f"the body's Content-Length {length} exceeds {self.settings.max_body_bytes} bytes")
            now = int(time.time())
            target = self.target_uri(request)
            # The signature covers the Content-Digest, not the body: verified first, an unsigned or forged request
            # gets its 401 before a byte of its body is read.
            verified = await verify_request_signature(
                request.method, target, request.headers, resolver=self._resolver, window=self._window, now=now
            )
            body = await request.body()  # the app's BodyLimit refuses it as it streams past the route's limit
            if len(body) > self.settings.max_body_bytes:
                raise BodyTooLarge(f"the body exceeds {self.settings.max_body_bytes} bytes")
            check_content_digest(verified.content_digest, body)
            # Only a fully verified request spends its nonce: failed attempts store nothing.
            expires_at = verified.expires + self._window.max_skew_s
            self.replay_cache.check_and_store(verified.did, verified.nonce, expires_at=expires_at, now=now)
            nonce = Nonce(ReplayCache.entry_id(verified.did, verified.nonce), expires_at, verified.did)
            if self.durable_nonces is not None:
                if nonce_in_commit(request):
                    request.scope.setdefault("state", {})[NONCE_STATE] = nonce  # see SpendLeftoverNonces
                else:
                    await asyncio.wrap_future(self.durable_nonces(nonce))
        except TwinledgerError as exc:
            raise AuthProblem.from_error(exc) from exc
        return Caller(**vars(verified), method=request.method, target_uri=target, replay=nonce)
