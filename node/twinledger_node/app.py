"""The FastAPI application of a twinledger node."""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any

from fastapi import FastAPI
from starlette.types import ASGIApp, Message, Receive, Scope, Send

import twinledger
from twinledger_node.api import consents, federated, ops, provenance, snapshots, twins, watch
from twinledger_node.api import problems as problems_api
from twinledger_node.api.limits import BodyLimit
from twinledger_node.api.problems import problem_responses
from twinledger_node.auth import Nonce, SpendLeftoverNonces, install_auth_problem_handler
from twinledger_node.runtime import NodeRuntime
from twinledger_node.services.commit import NonceWork, Overloaded
from twinledger_node.settings import NodeSettings

if TYPE_CHECKING:
    import uvicorn

log = logging.getLogger("twinledger.node")


class RequestMetrics:
    """Counts requests by method, route and status (a pure ASGI middleware: no buffering, no extra task), and names
    the process that answered in a `Twinledger-Worker` header (its PID: which of `--workers N` served a request)."""

    def __init__(self, app: ASGIApp, *, runtime: NodeRuntime) -> None:
        self.app, self.runtime = app, runtime
        self.worker = (b"twinledger-worker", str(os.getpid()).encode())

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        status = 500  # what the server answers when the app raises before responding

        async def observed(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message["headers"] = [*message.get("headers", ()), self.worker]
            await send(message)

        try:
            await self.app(scope, receive, observed)
        finally:
            path = getattr(scope.get("route"), "path", "unmatched")
            self.runtime.metrics.requests.labels(scope["method"], path, str(status)).inc()


def server_config(app: ASGIApp, settings: NodeSettings, **where: Any) -> uvicorn.Config:
    """How the node serves HTTP, in every process (and in the tests' in-process nodes, which must serve alike)."""
    import uvicorn

    return uvicorn.Config(
        app, log_config=None, timeout_graceful_shutdown=10, forwarded_allow_ips=settings.forwarded_allow_ips, **where
    )


def node_server(app: FastAPI, settings: NodeSettings, **where: Any) -> uvicorn.Server:
    """uvicorn's server for the node, which ends the app's snapshot streams as soon as it begins to stop: uvicorn
    waits for open responses (up to its graceful timeout) before the lifespan's shutdown, so a stream left to the
    lifespan would hold a SIGTERM that long."""
    import uvicorn

    class NodeServer(uvicorn.Server):
        async def shutdown(self, sockets: Any = None) -> None:
            watch.end_streams(app)
            await super().shutdown(sockets)

    return NodeServer(server_config(app, settings, **where))


def create_app(runtime: NodeRuntime, *, start_workers: bool = True) -> FastAPI:
    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        runtime.start(workers=start_workers)
        log.info("node %s serving chain %s", runtime.node_key.did, runtime.client.chain_id)
        try:
            yield
        finally:
            runtime.stop()  # graceful: workers finish their pass, queues stay durable

    app = FastAPI(
        title="twinledger node", version=twinledger.__version__, lifespan=lifespan,
        description="Consent-enforced, provable access to digital-twin data.",
        # Any route may refuse a body past its limit, and validation failures are problem+json too (FastAPI would
        # document them as JSON).
        responses=problem_responses(413, 422),
    )  # fmt: skip
    app.state.runtime = runtime
    problems_api.install(app)
    install_auth_problem_handler(app)

    def spend(nonce: Nonce) -> None:
        with contextlib.suppress(Overloaded):  # memory still refuses a replay here; the signature window bounds it
            runtime.commits.submit(NonceWork(nonce))

    # Added innermost first: metrics see every answer, including the 413s of the body limit.
    app.add_middleware(SpendLeftoverNonces, spend=spend)
    app.add_middleware(
        BodyLimit, json_limit=runtime.settings.max_json_body_bytes, upload_limit=runtime.settings.max_body_bytes
    )
    app.add_middleware(RequestMetrics, runtime=runtime)
    # watch.router first: its /snapshots/stream would otherwise be taken for a snapshot's /{seq}
    routers = (ops.router, twins.router, watch.router, snapshots.router, consents.router, provenance.router)
    for router in (*routers, federated.router):
        app.include_router(router)
    return app
