"""A real node over real HTTP: uvicorn on a free port in a thread, against the session's anvil."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
import uvicorn
from eth_account.signers.local import LocalAccount

from tests.conftest import node_database_url
from twinledger.chain.client import ChainClient
from twinledger.chain.deploy import Deployment
from twinledger.chain.ledger import TwinLedger
from twinledger.chain.localchain import free_port
from twinledger.identity import DidAuth, DidKey, EthereumDid
from twinledger.provenance import recovery_key_binding
from twinledger_node.app import create_app, node_server
from twinledger_node.indexer.db import IndexDB
from twinledger_node.runtime import ChainSetup, NodeRuntime
from twinledger_node.settings import NodeSettings


@dataclass
class RunningNode:
    url: str
    runtime: NodeRuntime
    server: uvicorn.Server
    thread: threading.Thread

    def client(self, signer: object | None = None) -> httpx.Client:
        return httpx.Client(base_url=self.url, auth=DidAuth(signer) if signer else None, timeout=30)  # type: ignore[arg-type]

    def wait_indexed(self) -> None:
        """Until the index has caught up with the chain's current head."""
        target = self.runtime.client.w3.eth.block_number
        for _ in range(400):
            if self.runtime.indexer.head.indexed_to >= target:
                return
            time.sleep(0.025)
        raise AssertionError(f"index stuck at {self.runtime.indexer.head.indexed_to}, head {target}")

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=30)


def start_node(
    data_dir: Path, rpc_url: str, deployment: Deployment, account: LocalAccount, **settings: object
) -> RunningNode:
    port = free_port()
    defaults: dict[str, object] = {
        "poll_interval": 0.05, "freshness_window": 5, "anchor_batch_size": 4, "anchor_batch_seconds": 0.3,
    }  # fmt: skip
    database = node_database_url(data_dir)
    if database is not None:
        defaults["database_url"] = database
    config = NodeSettings(data_dir=data_dir, rpc_url=rpc_url, port=port, **{**defaults, **settings})  # type: ignore[arg-type]
    chain = ChainSetup(ChainClient(rpc_url, account), deployment, None)
    runtime = NodeRuntime(config, chain)
    server = node_server(create_app(runtime), config, host="127.0.0.1", port=port)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    for _ in range(400):
        if server.started:
            break
        time.sleep(0.025)
    assert server.started, "node did not start"
    return RunningNode(f"http://127.0.0.1:{port}", runtime, server, thread)


def register_recovery_key(url: str, account: LocalAccount, recovery: DidKey, chain_id: int) -> None:
    with httpx.Client(auth=DidAuth(recovery), timeout=10) as http:
        response = http.put(f"{url}/v1/owners/recovery-key", json=recovery_key_binding(account, recovery.did, chain_id))
    assert response.status_code == 200, response.text


@pytest.fixture(params=["sqlite", "postgres"])
def db(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[IndexDB]:
    """An empty chain index on each engine in turn: a SQLite file, then a fresh PostgreSQL database."""
    index = IndexDB(tmp_path / "index.sqlite" if request.param == "sqlite" else request.getfixturevalue("postgres_url"))
    try:
        yield index
    finally:
        index.close()


@pytest.fixture(scope="module")
def node(anvil: str, deployment: Deployment, accounts: list[LocalAccount], tmp_path_factory) -> Iterator[RunningNode]:
    running = start_node(tmp_path_factory.mktemp("node"), anvil, deployment, accounts[9])
    try:
        yield running
    finally:
        running.stop()


@dataclass
class Owner:
    account: LocalAccount
    ledger: TwinLedger
    recovery: DidKey
    pkh: EthereumDid


def owner_at(node: RunningNode, anvil: str, deployment: Deployment, account: LocalAccount) -> Owner:
    """`account` as an owner with a fresh recovery key registered at the node."""
    ledger = TwinLedger(ChainClient(anvil, account), deployment.twin_ledger)
    recovery = DidKey.generate()
    register_recovery_key(node.url, account, recovery, ledger.client.chain_id)
    return Owner(account, ledger, recovery, EthereumDid(account, ledger.client.chain_id))


@pytest.fixture(scope="module")
def owner(node: RunningNode, anvil: str, deployment: Deployment, accounts: list[LocalAccount]) -> Owner:
    """An owner with a recovery key registered at the node."""
    return owner_at(node, anvil, deployment, accounts[1])
