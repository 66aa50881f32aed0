"""An httpx authentication that signs every request with RFC 9421 (http_signatures.sign_request). Apart from the
signing and verifying code, so that a node, which only verifies, never imports httpx."""

from __future__ import annotations

from typing import Any

import httpx

from twinledger.identity.http_signatures import DEFAULT_LIFETIME_S, sign_request
from twinledger.identity.keys import DidSigner


class DidAuth(httpx.Auth):
    """httpx authentication that signs every request as ``signer`` (``httpx.Client(auth=DidAuth(key))``)."""

    requires_request_body = True

    def __init__(self, signer: DidSigner, *, lifetime_s: int = DEFAULT_LIFETIME_S) -> None:
        self._signer = signer
        self._lifetime_s = lifetime_s

    def auth_flow(self, request: httpx.Request) -> Any:
        request.headers.update(
            sign_request(self._signer, request.method, str(request.url), request.content, lifetime_s=self._lifetime_s)
        )
        yield request
