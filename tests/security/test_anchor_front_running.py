"""Front-running `anchorBatch`: an attacker reads the node's pending anchor from the mempool and anchors the same
root first, with a higher tip, as another kind and with another leaf list.

Before the fix the first writer owned the root: the node's own transaction reverted, the node adopted the
attacker's transaction as its anchor, and `verify` failed for that batch for good ("anchored as model_updates, not
snapshots"). Now batches are keyed by (anchorer, root): the copy is the attacker's own record, the node's anchor
lands beside it, the node counts only anchors by its own account, and `verify` looks the root up under the account
the node-signed manifests and receipts name.
"""

from __future__ import annotations

import io
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from eth_account.signers.local import LocalAccount

from tests.node.conftest import RunningNode, register_recovery_key, start_node
from twinledger.chain.client import ChainClient
from twinledger.chain.deploy import Deployment
from twinledger.chain.ledger import GrantRequest, TwinLedger
from twinledger.chain.localchain import rpc_call
from twinledger.chain.types import BatchKind
from twinledger.identity import DidAuth, DidKey, EthereumDid
from twinledger.verify import verify_twin


@pytest.fixture
def quiet_node(
    anvil: str, deployment: Deployment, accounts: list[LocalAccount], tmp_path: Path
) -> Iterator[RunningNode]:
    """A node that anchors only when the test ticks its worker (no batch is ever due on its own)."""
    running = start_node(tmp_path / "node", anvil, deployment, accounts[8], anchor_batch_size=1000,
                         anchor_batch_seconds=3600)  # fmt: skip
    try:
        yield running
    finally:
        running.stop()


@pytest.fixture
def manual_mining(anvil: str) -> Iterator[None]:
    rpc_call(anvil, "evm_setAutomine", [False])
    try:
        yield
    finally:
        rpc_call(anvil, "evm_setAutomine", [True])
        rpc_call(anvil, "evm_mine")  # whatever is still pending


def _pending_anchor(anvil: str, node_ledger: TwinLedger) -> dict:
    """The node's anchorBatch transaction as the mempool shows it to everyone."""
    sender = node_ledger.client.account.address.lower()
    for _ in range(400):
        pending = rpc_call(anvil, "txpool_content")["pending"]
        for address, by_nonce in pending.items():
            if address.lower() == sender:
                return next(iter(by_nonce.values()))
        time.sleep(0.025)
    raise AssertionError("the node's anchor transaction never reached the mempool")


def test_front_run_anchor_does_not_take_over_the_nodes_batch(
    anvil: str, deployment: Deployment, accounts: list[LocalAccount], quiet_node: RunningNode, manual_mining: None
):
    node = quiet_node
    owner_account, attacker_account = accounts[1], accounts[6]
    owner = TwinLedger(ChainClient(anvil, owner_account), deployment.twin_ledger)
    attacker = TwinLedger(ChainClient(anvil, attacker_account), deployment.twin_ledger)
    recovery, device, reader = DidKey.generate(), DidKey.generate(), DidKey.generate()
    chain_id = owner.client.chain_id

    def mined(action):
        """Run a transaction to completion while automine is off."""
        done: list = []
        worker = threading.Thread(target=lambda: done.append(action()))
        worker.start()
        while worker.is_alive():
            rpc_call(anvil, "evm_mine")
            worker.join(0.05)
        assert done, "the transaction did not complete"
        return done[0]

    register_recovery_key(node.url, owner_account, recovery, chain_id)
    twin, _ = mined(lambda: owner.register("asset", device_did=device.did))
    expiry = owner.client.chain_time() + 3600
    mined(lambda: owner.grant(GrantRequest.of(twin, reader.did, "research", "read", expiry)))
    rpc_call(anvil, "evm_mine")
    node.wait_indexed()
    with httpx.Client(base_url=node.url, auth=DidAuth(device), timeout=30) as http:
        assert http.post(f"/v1/twins/{twin}/snapshots", content=b"reading").status_code == 202

    # the node cuts its snapshot batch and sends anchorBatch; nothing is mined yet
    ticks: list[int] = []
    worker = threading.Thread(target=lambda: ticks.append(node.runtime.anchors.tick(force=True)))
    worker.start()
    victim = _pending_anchor(anvil, node.runtime.ledger)
    _, args = node.runtime.ledger.contract.decode_function_input(victim["input"])
    assert args["kind"] == int(BatchKind.SNAPSHOTS)
    root = bytes(args["root"])
    tip = int(victim["maxPriorityFeePerGas"], 16)
    # the attacker copies the root as model updates with its own leaf list and outbids the node's tip
    fn = attacker.contract.functions.anchorBatch(int(BatchKind.MODEL_UPDATES), root, 99, "bafkreiattacker")
    tx = fn.build_transaction({
        "from": attacker_account.address, "chainId": chain_id, "gas": 200_000,
        "nonce": attacker.client.w3.eth.get_transaction_count(attacker_account.address, "pending"),
        "maxPriorityFeePerGas": tip * 10 + 10**9, "maxFeePerGas": int(victim["maxFeePerGas"], 16) * 10 + 10**10,
    })  # fmt: skip
    attack_hash = attacker.client.w3.eth.send_raw_transaction(attacker_account.sign_transaction(tx).raw_transaction)
    rpc_call(anvil, "evm_mine")
    worker.join(30)
    attack = attacker.client.w3.eth.get_transaction_receipt(attack_hash)
    assert attack["status"] == 1  # the copy was mined, and first
    for _ in range(20):  # a hijacked node would retry here and adopt the attacker's transaction
        if node.runtime.anchors.queue_depth() == 0:
            break
        mined(lambda: node.runtime.anchors.tick(force=True))
    assert node.runtime.anchors.queue_depth() == 0

    # verify checks the anchor of the account the node-signed manifest names, and passes
    rpc_call(anvil, "evm_mine")
    node.wait_indexed()
    with httpx.Client(base_url=node.url, auth=DidAuth(EthereumDid(owner_account, chain_id)), timeout=30) as http:
        car = http.get(f"/v1/twins/{twin}/provenance.car")
    assert car.status_code == 200, car.text
    report = verify_twin(owner, twin, io.BytesIO(car.content))
    assert report.snapshots == 1 and not report.pending and report.node_dids == {node.runtime.node_key.did}
    assert any(f"anchored on chain by {node.runtime.client.account.address}" in line for line in report.lines)

    # the node's record names a transaction its own account sent; the chain keeps both anchors apart
    batch = (
        node.runtime.state.connection().execute("SELECT * FROM batches WHERE root = ?", ("0x" + root.hex(),)).fetchone()
    )
    assert batch["status"] == "anchored"
    sent = owner.client.w3.eth.get_transaction(batch["tx_hash"])
    assert sent["from"] == node.runtime.client.account.address != attacker_account.address
    assert owner.batch_of(node.runtime.client.account.address, root)[1:] == (BatchKind.SNAPSHOTS, 1)
    assert owner.batch_of(attacker_account.address, root)[1:] == (BatchKind.MODEL_UPDATES, 99)
