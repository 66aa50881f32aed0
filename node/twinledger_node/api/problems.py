"""Errors as RFC 9457 `application/problem+json`: a type per failure, a title, the detail, and what to do."""

from __future__ import annotations

import sqlite3
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from twinledger.chain.errors import ContractRevert
from twinledger.errors import AuthError, IntegrityError, InvalidInput, NotFound, TwinledgerError, Unavailable
from twinledger_node.problem import PROBLEM_MEDIA_TYPE, PROBLEM_TYPE_BASE, Problem

# One problem vocabulary for the whole node, shared with the authentication layer.
PROBLEM_BASE = PROBLEM_TYPE_BASE
MEDIA_TYPE = PROBLEM_MEDIA_TYPE


def problem_response(problem: Problem, request: Request | None = None) -> JSONResponse:
    headers = {"Retry-After": str(getattr(problem, "retry_after", 5))} if problem.status == 503 else None
    return JSONResponse(
        problem.body(request.url.path if request else None), problem.status, media_type=MEDIA_TYPE, headers=headers
    )


_BY_ERROR: list[tuple[type[TwinledgerError], int, str]] = [
    (ContractRevert, 409, "contract-revert"),
    (InvalidInput, 400, "invalid-input"),
    (NotFound, 404, "not-found"),
    (IntegrityError, 422, "integrity"),
    (AuthError, 401, "unauthenticated"),
    (Unavailable, 503, "unavailable"),
]


def from_error(error: TwinledgerError) -> Problem:
    for kind, status, slug in _BY_ERROR:
        if isinstance(error, kind):
            if isinstance(error, ContractRevert):
                slug = "contract-revert/" + error.error
            return Problem(status, slug, error.__class__.__name__, error.message, hint=error.hint)
    return Problem(500, "internal", "Internal error", error.message)


def database_unavailable(error: sqlite3.OperationalError) -> Problem:
    """Fail closed and say so: a lost PostgreSQL connection, a SQLite I/O error or lock timeout. The engine opens a
    new connection for the next request; what this one was writing was rolled back with its transaction."""
    reason = (str(error).strip().splitlines() or ["no answer"])[0][:200]
    return Problem(503, "database-unavailable", "Database unavailable", f"the node's database failed: {reason}",
                   hint="retry shortly")  # fmt: skip


def install(app: FastAPI) -> None:
    @app.exception_handler(Problem)
    async def _problem(request: Request, exc: Problem) -> JSONResponse:
        return problem_response(exc, request)

    @app.exception_handler(TwinledgerError)
    async def _twinledger(request: Request, exc: TwinledgerError) -> JSONResponse:
        return problem_response(from_error(exc), request)

    @app.exception_handler(sqlite3.OperationalError)  # either engine's (db/postgres.py raises a subclass)
    async def _database(request: Request, exc: sqlite3.OperationalError) -> JSONResponse:
        return problem_response(database_unavailable(exc), request)

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = [{"loc": list(e.get("loc", [])), "msg": e.get("msg")} for e in exc.errors()]
        detail = "; ".join(f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in errors)
        problem = Problem(422, "validation", "Request did not validate", detail, errors=errors)
        return problem_response(problem, request)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        slug = {404: "not-found", 405: "method-not-allowed", 413: "body-too-large"}.get(exc.status_code, "http")
        return problem_response(Problem(exc.status_code, slug, str(exc.detail), str(exc.detail)), request)


def problem_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI `responses=` entries documenting problem+json bodies."""
    schema = {"type": "object", "properties": {k: {"type": "string"} for k in ("type", "title", "detail", "hint")}}
    return {s: {"description": "problem", "content": {MEDIA_TYPE: {"schema": schema}}} for s in statuses}
