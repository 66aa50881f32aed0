"""Request bodies are counted as they arrive and refused (413) the moment they pass the route's limit, before
anything is buffered: a pure ASGI middleware wrapping `receive`, for every route, whatever the Content-Length says
or whether there is one (chunked bodies)."""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

from starlette.requests import ClientDisconnect, Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from twinledger_node.api.problems import Problem, problem_response

Endpoint = TypeVar("Endpoint", bound=Callable[..., object])


def upload(endpoint: Endpoint) -> Endpoint:
    """Mark a route whose body is data (a snapshot, a model): it gets `max_body_bytes` instead of the JSON limit."""
    endpoint.__dict__["large_body"] = True
    return endpoint


class BodyLimit:
    """The limit is the matched route's, looked up when the app first asks for the body: by then routing has put
    the route in the scope, and a request that never reaches a route (404, 405) has nothing read at all."""

    def __init__(self, app: ASGIApp, *, json_limit: int, upload_limit: int) -> None:
        self.app = app
        self.json_limit, self.upload_limit = json_limit, upload_limit

    def limit(self, scope: Scope) -> tuple[int, str]:
        if getattr(getattr(scope.get("route"), "endpoint", None), "large_body", False):
            return self.upload_limit, "TWINLEDGER_MAX_BODY_BYTES"
        return self.json_limit, "TWINLEDGER_MAX_JSON_BODY_BYTES"

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        received, limit, refused, started = 0, -1, False, False

        async def refuse(what: str, setting: str) -> Message:
            nonlocal refused
            refused = True
            if not started:
                request = Request(scope)
                detail = f"{what} exceeds this node's limit of {limit} bytes for {request.method} {request.url.path}"
                hint = f"send less, or ask the operator to raise {setting}"
                problem = Problem(413, "body-too-large", "Body too large", detail, hint=hint)
                await problem_response(problem, request)(scope, receive, send)
            # The app sees the client go away; the server discards the rest of the body as it arrives.
            return {"type": "http.disconnect"}

        async def counted() -> Message:
            nonlocal received, limit
            if refused:
                return {"type": "http.disconnect"}
            limit, setting = self.limit(scope)
            if received == 0:
                declared = dict(scope["headers"]).get(b"content-length", b"")
                if declared.isdigit() and int(declared) > limit:
                    return await refuse(f"the body's Content-Length {int(declared)}", setting)
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    return await refuse(f"the body (more than {limit} bytes so far)", setting)
            return message

        async def guarded(message: Message) -> None:
            nonlocal started
            if refused:  # the 413 is out; the app's own answer to the disconnect goes nowhere
                return
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, counted, guarded)
        except ClientDisconnect:
            if not refused:
                raise
