"""A live stack for SDK and CLI tests: the session anvil, a node over HTTP, and wallets in a temp TWINLEDGER_HOME."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from eth_account.signers.local import LocalAccount

from tests.node.conftest import RunningNode, start_node
from twinledger.chain.deploy import Deployment
from twinledger.chain.localchain import rpc_call
from twinledger.client import Client
from twinledger.wallet import WalletStore

PASSPHRASE = "correct horse battery staple"


@dataclass
class Stack:
    node: RunningNode
    rpc_url: str
    home: Path
    store: WalletStore


@pytest.fixture(scope="module")
def stack(
    anvil: str, deployment: Deployment, accounts: list[LocalAccount], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Stack]:
    monkey = pytest.MonkeyPatch()
    monkey.setenv("TWINLEDGER_KDF_N", "1024")  # test-only scrypt work factor; the default is eth-account's
    home = tmp_path_factory.mktemp("home")
    store = WalletStore(home)
    # Funded dev keys as wallet keys, so the wallets can pay for transactions.
    store.create("owner", PASSPHRASE, private_key=bytes(accounts[3].key))
    store.create("other", PASSPHRASE, private_key=bytes(accounts[4].key))
    store.create("researcher", PASSPHRASE)  # no funds: a grantee only needs its did:key
    # Other test modules expect the freshly deployed chain: everything done here is reverted afterwards.
    snapshot = rpc_call(anvil, "evm_snapshot")
    node = start_node(tmp_path_factory.mktemp("node"), anvil, deployment, accounts[8])
    try:
        yield Stack(node, anvil, home, store)
    finally:
        node.stop()
        rpc_call(anvil, "evm_revert", [snapshot])
        monkey.undo()


def client_for(stack: Stack, name: str) -> Client:
    return Client(stack.node.url, stack.rpc_url, stack.store.unlock(name, PASSPHRASE))
