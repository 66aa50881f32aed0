"""Every log scan works on a provider that caps eth_getLogs, as public ones do.

The chain: its own anvil, with the contracts deployed several thousand blocks in, behind a JSON-RPC proxy that
refuses any eth_getLogs spanning more than 1,000 blocks or returning more than 1,000 logs. Through it: the node
(its indexer, and the anchor worker's scan for a batch it sent before a crash), offline verification of a twin,
and the federated chain view's scan for a round's commits.
"""

from __future__ import annotations

import io
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from eth_account import Account
from eth_account.signers.local import LocalAccount

from tests.node.conftest import RunningNode, register_recovery_key, start_node
from tests.security._rpc_limits_helpers import MAX_RANGE, MAX_RESULTS, LimitedRpc
from twinledger.chain.client import ChainClient
from twinledger.chain.deploy import Deployment, deploy
from twinledger.chain.ledger import FederatedLedger, GrantRequest, TwinLedger
from twinledger.chain.localchain import DEV_KEYS, LocalChain, free_port, rpc_call
from twinledger.chain.types import BatchKind
from twinledger.federated import chainview
from twinledger.identity import DidKey, EthereumDid
from twinledger.verify import verify_twin
from twinledger_node.services.anchoring import SPECS

GENESIS = 5000  # the chain starts at this block number, so the deployment is several thousand blocks in


@dataclass
class Limited:
    anvil: str
    proxy: LimitedRpc
    deployment: Deployment
    node: RunningNode
    owner: LocalAccount
    ledger: TwinLedger  # the owner's, through the proxy


def mine(url: str, blocks: int) -> None:
    rpc_call(url, "anvil_mine", [hex(blocks)], timeout=120)


@pytest.fixture(scope="module")
def limited(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Limited]:
    # (mining thousands of empty blocks takes anvil half a minute; a later genesis puts the deployment as far in)
    chain = LocalChain(tmp_path_factory.mktemp("anvil"), port=free_port(), anvil_args=("--number", str(GENESIS)))
    status = chain.up()
    assert status.rpc_url is not None
    try:
        anvil = status.rpc_url
        deployed, _ = deploy(ChainClient(anvil, Account.from_key(DEV_KEYS[0])), tmp_path_factory.mktemp("deploy"))
        assert deployed.deploy_block > GENESIS
        with LimitedRpc(anvil) as proxy:
            node = start_node(
                tmp_path_factory.mktemp("node"), proxy.url, deployed, Account.from_key(DEV_KEYS[9]),
                anchor_batch_size=1000, anchor_batch_seconds=3600,
            )  # fmt: skip
            try:
                owner = Account.from_key(DEV_KEYS[1])
                ledger = TwinLedger(ChainClient(proxy.url, owner), deployed.twin_ledger)
                register_recovery_key(node.url, owner, DidKey.generate(), ledger.client.chain_id)
                yield Limited(anvil, proxy, deployed, node, owner, ledger)
            finally:
                node.stop()
    finally:
        chain.down()


def test_the_indexer_pages_past_the_range_and_result_caps(limited: Limited):
    twin, _ = limited.ledger.register("asset")
    expiry = limited.ledger.client.chain_time() + 86400
    # More grants than one eth_getLogs may return, in three blocks, which the indexer meets in one range (it is
    # held while they are mined): only pages of one or two blocks are answered.
    per_block = 350
    with limited.node.runtime.indexer._lock:
        for block in range(3):
            dids = [DidKey.generate().did for _ in range(per_block)]
            limited.ledger.grant_batch([GrantRequest.of(twin, did, f"p{block}", "read", expiry) for did in dids])
    assert 3 * per_block > MAX_RESULTS
    limited.node.wait_indexed()
    with limited.node.client() as http:
        grants = http.get(f"/v1/twins/{twin}/grants").json()["grants"]
    assert len(grants) == 3 * per_block
    assert any("results" in r for r in limited.proxy.limits.refused)
    assert all(high - low + 1 <= MAX_RANGE and n <= MAX_RESULTS for low, high, n in limited.proxy.limits.served)


def test_anchor_recovery_and_offline_verify_page_from_the_deployment(limited: Limited):
    node = limited.node
    device = DidKey.generate()
    twin, _ = limited.ledger.register("asset", device_did=device.did)
    node.wait_indexed()
    with node.client(device) as http:
        assert http.post(f"/v1/twins/{twin}/snapshots", content=b"reading").status_code == 202
    worker = node.runtime.anchors
    # A crash between sending the batch and recording it: the batch is cut and anchored, the node never hears back.
    with worker._lock:  # the worker thread waits
        (spec,) = [s for s in SPECS if s.kind is BatchKind.SNAPSHOTS]
        root = worker._cut(spec, worker._pending(spec))
        batch = node.runtime.state.connection().execute("SELECT * FROM batches WHERE root = ?", (root,)).fetchone()
        sent = node.runtime.ledger.anchor_batch(BatchKind.SNAPSHOTS, bytes.fromhex(root[2:]), 1, batch["leaves_cid"])
        mine(limited.anvil, MAX_RANGE)  # the anchoring block is far behind the head when the node looks
    worker.tick()
    recorded = node.runtime.state.connection().execute("SELECT * FROM batches WHERE root = ?", (root,)).fetchone()
    assert (recorded["status"], recorded["tx_hash"], recorded["block_number"]) == (
        "anchored",
        sent.tx_hash,
        sent.block_number,
    ), recorded["last_error"]
    assert any("block range" in r for r in limited.proxy.limits.refused)  # the scan was held to the cap

    with node.client(EthereumDid(limited.owner, limited.ledger.client.chain_id)) as http:
        car = http.get(f"/v1/twins/{twin}/provenance.car")
    assert car.status_code == 200, car.text
    report = verify_twin(limited.ledger, twin, io.BytesIO(car.content))
    assert (report.snapshots, report.batches, report.pending) == (1, 1, [])


def test_the_federated_chain_view_pages_from_the_tasks_creation(limited: Limited):
    aggregator = DidKey.generate()
    federated = FederatedLedger(limited.ledger.client, limited.deployment.federated_ledger)
    task_id, created = federated.create_task(aggregator.did, "research", b"\x01" * 32)
    twin, _ = limited.ledger.register("asset")
    expiry = limited.ledger.client.chain_time() + 86400
    limited.ledger.grant(GrantRequest.of(twin, aggregator.did, "research", "train", expiry))
    mine(limited.anvil, MAX_RANGE)
    committed = federated.commit_update(task_id, 1, twin, b"\x02" * 32, 10)
    commits = chainview.commits(federated, task_id, 1, from_block=created.block_number)
    assert list(commits) == [twin] and commits[twin].tx_hash == committed.tx_hash
    assert chainview.checkpoint(federated, task_id, 1, from_block=created.block_number) is None
