"""RFC 9457 ``application/problem+json`` answers for authentication failures."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException

from twinledger.errors import TwinledgerError
from twinledger_node.problem import PROBLEM_MEDIA_TYPE, PROBLEM_TYPE_BASE


class AuthProblem(HTTPException):
    """An authentication failure as an HTTP error; the ``problem`` dict is the response body.

    Subclassing HTTPException keeps a node without :func:`install_auth_problem_handler` fail-closed (it still
    answers with the right status); with the handler the body is problem+json.
    """

    def __init__(self, status: int, problem: dict[str, Any]) -> None:
        super().__init__(status_code=status, detail=problem["detail"])
        self.problem = problem

    @classmethod
    def from_error(cls, error: TwinledgerError) -> AuthProblem:
        code = getattr(error, "code", "unauthenticated")
        status = int(getattr(error, "http_status", 401))
        problem: dict[str, Any] = {
            "type": PROBLEM_TYPE_BASE + code,
            "title": code.replace("-", " "),
            "status": status,
            "detail": error.message,
        }
        if error.hint:
            problem["hint"] = error.hint
        return cls(status, problem)


async def auth_problem_handler(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, AuthProblem)
    return JSONResponse(exc.problem, status_code=exc.status_code, media_type=PROBLEM_MEDIA_TYPE)


def install_auth_problem_handler(app: FastAPI) -> None:
    app.add_exception_handler(AuthProblem, auth_problem_handler)
