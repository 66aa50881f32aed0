"""The FastAPI application of a twinledger node."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

from fastapi import FastAPI, Request, Response

import twinledger
from twinledger_node.api import consents, federated, ops, provenance, snapshots, twins
from twinledger_node.api import problems as problems_api
from twinledger_node.api.problems import Problem, problem_response
from twinledger_node.auth import install_auth_problem_handler
from twinledger_node.runtime import NodeRuntime

log = logging.getLogger("twinledger.node")


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
    )  # fmt: skip
    app.state.runtime = runtime
    problems_api.install(app)
    install_auth_problem_handler(app)

    @app.middleware("http")
    async def limits_and_metrics(request: Request, call_next: Callable[[Request], Awaitable[Response]]) -> Response:
        length = request.headers.get("content-length")
        if length and length.isdigit() and int(length) > runtime.settings.max_body_bytes:
            response: Response = problem_response(
                Problem(413, "body-too-large", "Body too large",
                        f"{length} bytes exceed this node's limit of {runtime.settings.max_body_bytes}"),
                request,
            )  # fmt: skip
        else:
            response = await call_next(request)
        route = request.scope.get("route")
        path = getattr(route, "path", "unmatched")
        runtime.metrics.requests.labels(request.method, path, str(response.status_code)).inc()
        return response

    for router in (ops.router, twins.router, snapshots.router, consents.router, provenance.router, federated.router):
        app.include_router(router)
    return app
