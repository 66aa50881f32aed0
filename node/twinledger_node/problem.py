"""The node's HTTP error type, RFC 9457 `application/problem+json`, without FastAPI: services raise it, and the
background process, which serves no HTTP, imports it without loading a web framework (api/problems.py renders it)."""

from __future__ import annotations

from typing import Any, Final

PROBLEM_MEDIA_TYPE: Final = "application/problem+json"
PROBLEM_TYPE_BASE: Final = "urn:twinledger:problem:"


class Problem(Exception):
    """An HTTP error with a stable problem type (a slug under PROBLEM_TYPE_BASE)."""

    def __init__(self, status: int, slug: str, title: str, detail: str, *, hint: str | None = None, **extra: Any):
        super().__init__(detail)
        self.status, self.slug, self.title = status, slug, title
        self.detail, self.hint, self.extra = detail, hint, extra

    def body(self, instance: str | None = None) -> dict[str, Any]:
        body: dict[str, Any] = {"type": PROBLEM_TYPE_BASE + self.slug, "title": self.title, "status": self.status}
        body["detail"] = self.detail
        if self.hint:
            body["hint"] = self.hint
        if instance:
            body["instance"] = instance
        body.update(self.extra)
        return body
