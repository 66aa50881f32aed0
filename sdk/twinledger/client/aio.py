"""`AsyncClient`: the same calls as `Client`, as coroutines. Each runs the synchronous implementation in a worker
thread, so both share one code path (and the chain client, web3, is synchronous anyway)."""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Callable
from typing import Any, ParamSpec, TypeVar

from twinledger.client.sync import Client

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
