"""`AsyncClient`: the same calls as `Client`, as coroutines. Each runs the synchronous implementation in a worker
thread, so both share one code path (and the chain client, web3, is synchronous anyway)."""

from __future__ import annotations

import asyncio
import functools
from collections.abc import AsyncIterator, Callable
from typing import Any, ParamSpec, TypeVar

import httpx

from twinledger.client.errors import from_problem
from twinledger.client.results import FetchedSnapshot
from twinledger.client.sync import Client
from twinledger.client.watch import RETRIES, RETRYABLE, WatchCursor
from twinledger.identity import sign_request

P = ParamSpec("P")
R = TypeVar("R")


def _threaded(method: Callable[..., R]) -> Callable[..., Any]:
    @functools.wraps(method)
    async def call(self: AsyncClient, *args: Any, **kwargs: Any) -> R:
        return await asyncio.to_thread(method, self.sync, *args, **kwargs)

    return call


class AsyncClient:
    """`Client` for asyncio code.

    >>> async with await AsyncClient.connect(node_url, rpc_url, wallet) as tl:  # doctest: +SKIP
    ...     twin = await tl.register_twin("asset")
    """

    def __init__(self, sync: Client) -> None:
        self.sync = sync

    @classmethod
    async def connect(cls, node_url: str, rpc_url: str | None = None, wallet: Any = None, **kwargs: Any) -> AsyncClient:
        return cls(await asyncio.to_thread(Client, node_url, rpc_url, wallet, **kwargs))

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await asyncio.to_thread(self.sync.close)

    ensure_recovery_key = _threaded(Client.ensure_recovery_key)
    register_twin = _threaded(Client.register_twin)
    twin = _threaded(Client.twin)
    twins = _threaded(Client.twins)
    bind_device = _threaded(Client.bind_device)
    transfer = _threaded(Client.transfer)
    push_snapshot = _threaded(Client.push_snapshot)
    fetch_snapshot = _threaded(Client.fetch_snapshot)
    history = _threaded(Client.history)
    wait_anchored = _threaded(Client.wait_anchored)
    grant = _threaded(Client.grant)
    revoke = _threaded(Client.revoke)
    grants = _threaded(Client.grants)
    check = _threaded(Client.check)
    issue_consent_receipt = _threaded(Client.issue_consent_receipt)
    audit = _threaded(Client.audit)
    provenance_car = _threaded(Client.provenance_car)
    export = _threaded(Client.export)
    verify = _threaded(Client.verify)

    async def watch(
        self, twin_id: int, *, purpose: str | None = None, after: int | None = None, retries: int = RETRIES
    ) -> AsyncIterator[FetchedSnapshot]:
        """`Client.watch` as an async iterator: the stream is read on the event loop (so cancelling the task ends
        it at once), each snapshot fetched and verified in a worker thread like the other calls."""
        sync = self.sync
        cursor = WatchCursor(twin_id, after, retries=retries)
        async with httpx.AsyncClient(base_url=sync.node_url, timeout=sync._http.timeout) as http:
            while True:
                try:
                    async for seq in self._stream_once(http, cursor, purpose):
                        yield await asyncio.to_thread(sync.fetch_snapshot, twin_id, seq, purpose=purpose)
                        cursor.delivered(seq)
                    delay = cursor.lost(None, sync.node_url)
                except RETRYABLE as error:
                    delay = cursor.lost(error, sync.node_url)
                await asyncio.sleep(delay)

    async def _stream_once(
        self, http: httpx.AsyncClient, cursor: WatchCursor, purpose: str | None
    ) -> AsyncIterator[int]:
        signer = await asyncio.to_thread(self.sync.identity, cursor.twin_id)  # may ask the chain who owns the twin
        params = {k: v for k, v in cursor.params(purpose).items() if v is not None}
        url = str(httpx.URL(self.sync.node_url + cursor.path, params=params))
        headers = cursor.headers() | sign_request(signer, "GET", url, b"")
        async with http.stream("GET", url, headers=headers) as response:
            if response.status_code >= 400:
                await response.aread()
                raise from_problem(response)
            cursor.connected()
            async for line in response.aiter_lines():
                seq = cursor.feed(line)
                if seq is not None:
                    yield seq
