"""Shared by the HTTP attack tests: a node of the test's own (no anchoring, so it sends no transaction unless the
test makes it relay one) and problem+json assertions."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
from eth_account.signers.local import LocalAccount

from tests.node.conftest import RunningNode, start_node
from twinledger.chain.deploy import Deployment

# A partial batch waits this long before it is anchored: longer than any test, so the node mines nothing by itself.
NEVER = 3600.0


@contextmanager
def quiet_node(
    data_dir: Path, anvil: str, deployment: Deployment, account: LocalAccount, **settings: object
) -> Iterator[RunningNode]:
    node = start_node(
        data_dir, anvil, deployment, account, **{"anchor_batch_size": 1000, "anchor_batch_seconds": NEVER, **settings}
    )
    try:
        yield node
    finally:
        node.stop()


def problem(response: httpx.Response) -> dict:
    """The problem+json body of a refusal (asserts the media type)."""
    assert response.headers["content-type"].startswith("application/problem+json"), response.text
    body = response.json()
    assert body["status"] == response.status_code and body["detail"], body
    return body


def problem_slug(response: httpx.Response) -> str:
    return str(problem(response)["type"]).removeprefix("urn:twinledger:problem:")


@contextmanager
def holding_the_state_writer_lock(node: RunningNode) -> Iterator[None]:
    """Another process holds the write lock of the node's state database (whichever engine) until the block ends."""
    state = node.runtime.state
    if state.url is None:
        assert state.path is not None
        blocker = sqlite3.connect(state.path, isolation_level=None, timeout=30)
        blocker.execute("BEGIN IMMEDIATE")
    else:
        import psycopg

        blocker = psycopg.connect(state.url, autocommit=True)  # type: ignore[assignment]
        blocker.execute("BEGIN")
        blocker.execute("SELECT pg_advisory_xact_lock(%s)", (state.engine.writer_key,))
    try:
        yield
    finally:
        blocker.execute("ROLLBACK")
        blocker.close()
