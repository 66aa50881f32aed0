"""The federated endpoints, attacked for real over HTTP on the session's anvil.

- The approval the flow used to ask for handed the twin over: an owner approved the node's account, which could
  then grant consent in the owner's name and transfer the twin (on embedded defaults, a public dev key). Now the
  owner signs each commit and the node relays it, with no approval; the node's own account is a fresh key.
- Any DID could open a task (at the node's expense, without limit), read round status, and checkpoint round 1
  after one update, shutting the other participants out. Now only allowed DIDs open tasks, only a task's creator
  checkpoints it, status is for the creator and participants, and the gas the node pays per DID is bounded.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from eth_account import Account
from eth_account.signers.local import LocalAccount

from tests.contracts.helpers import reverts
from tests.node.conftest import RunningNode, start_node
from twinledger.chain.client import ChainClient
from twinledger.chain.deploy import Deployment
from twinledger.chain.ledger import FederatedLedger, GrantRequest, TwinLedger
from twinledger.chain.localchain import DEV_KEYS
from twinledger.federated import serialize, tensors
from twinledger.identity import DidKey, EthereumDid
from twinledger_node.runtime import NodeRuntime
from twinledger_node.settings import NodeSettings

pytestmark = pytest.mark.chain
MODEL = [np.zeros((2, 3)), np.zeros(3)]
UPDATE = [np.full((2, 3), 0.5), np.full(3, -0.25)]


def _type(response) -> str:
    assert response.headers["content-type"].startswith("application/problem+json"), response.text
    return str(response.json()["type"]).removeprefix("urn:twinledger:problem:")


@pytest.fixture
def creator() -> DidKey:
    return DidKey.generate()


@pytest.fixture
def fl_node(
    anvil: str, deployment: Deployment, accounts: list[LocalAccount], tmp_path: Path, creator: DidKey
) -> Iterator[RunningNode]:
    running = start_node(tmp_path / "node", anvil, deployment, accounts[8], fl_task_creators=[creator.did])
    try:
        yield running
    finally:
        running.stop()


def _open_task(node: RunningNode, did: DidKey | EthereumDid):
    with node.client(did) as http:
        return http.post("/v1/fl/tasks", params={"purpose": "research"}, content=serialize(MODEL))


def _signed_update(node: RunningNode, owner: TwinLedger, task: int, twin: int, samples: int = 10):
    """The owner submits an update with its own signed commit; the node's account relays it."""
    data = serialize(UPDATE)
    federated = FederatedLedger(owner.client, node.runtime.deployment.federated_ledger)
    deadline = owner.client.chain_time() + 600
    commit = federated.sign_commit(
        owner.client.account, task, 1, twin, tensors.digest(data), samples, deadline=deadline
    )  # type: ignore[arg-type]
    headers = {
        "Twinledger-Commit-Signature": "0x" + commit.signature.hex(),
        "Twinledger-Commit-Deadline": str(deadline),
    }
    signer = EthereumDid(owner.client.account, owner.client.chain_id)  # type: ignore[arg-type]
    with node.client(signer) as http:
        return http.post(
            f"/v1/fl/tasks/{task}/rounds/1/updates",
            params={"twinId": twin, "numSamples": samples},
            headers=headers,
            content=data,
        )


def test_owner_takes_part_without_handing_over_the_twin(
    fl_node: RunningNode, anvil: str, deployment: Deployment, accounts: list[LocalAccount], creator: DidKey
):
    node = fl_node
    owner = TwinLedger(ChainClient(anvil, accounts[5]), deployment.twin_ledger)
    twin, _ = owner.register("asset")
    node_did, node_account = node.runtime.node_key.did, node.runtime.client.address
    owner.grant(GrantRequest.of(twin, node_did, "research", "train", owner.client.chain_time() + 3600))
    node.wait_indexed()
    created = _open_task(node, creator)
    assert created.status_code == 201, created.text
    task = created.json()["taskId"]

    sent = _signed_update(node, owner, task, twin)
    assert sent.status_code == 201, sent.text  # committed with no approval of the node's account
    committed = node.runtime.client.w3.eth.get_transaction(sent.json()["tx"])
    assert committed["from"] == node_account  # relayed by the node ...
    events = node.runtime.federated.events.decode_all(
        node.runtime.client.w3.eth.get_transaction_receipt(sent.json()["tx"])["logs"]
    )
    assert [e.args["committer"] for e in events] == [accounts[5].address]  # ... as the owner's own commit

    # the node's account holds no approval, so it can neither grant in the owner's name nor transfer the twin
    calls = owner.contract.functions
    assert owner.client.call(calls.getApproved(twin)) == "0x0000000000000000000000000000000000000000"
    assert owner.client.call(calls.isApprovedForAll(accounts[5].address, node_account)) is False
    as_node = TwinLedger(node.runtime.client, deployment.twin_ledger)
    expiry = owner.client.chain_time() + 3600
    reverts(
        "NotTwinOwner",
        lambda: as_node.grant(GrantRequest.of(twin, DidKey.generate().did, "research", "read", expiry)),
        twinId=twin,
    )
    reverts("ERC721InsufficientApproval", lambda: as_node.client.send(
        calls.transferFrom(accounts[5].address, node_account, twin)))  # fmt: skip


def test_stranger_did_cannot_open_read_or_checkpoint(
    fl_node: RunningNode, anvil: str, deployment: Deployment, accounts: list[LocalAccount], creator: DidKey
):
    node, stranger = fl_node, DidKey.generate()  # a random did:key with no twins
    balance = node.runtime.client.w3.eth.get_balance(node.runtime.client.address)
    refused = _open_task(node, stranger)
    assert refused.status_code == 403 and _type(refused) == "fl/creator-not-allowed"
    assert stranger.did in refused.json()["detail"]
    assert node.runtime.client.w3.eth.get_balance(node.runtime.client.address) == balance  # no gas spent

    owner = TwinLedger(ChainClient(anvil, accounts[5]), deployment.twin_ledger)
    twin, _ = owner.register("asset")
    owner.grant(GrantRequest.of(twin, node.runtime.node_key.did, "research", "train", owner.client.chain_time() + 3600))
    node.wait_indexed()
    task = _open_task(node, creator).json()["taskId"]
    assert _signed_update(node, owner, task, twin).status_code == 201
    node.wait_indexed()
    with node.client(stranger) as http:
        status = http.get(f"/v1/fl/tasks/{task}/rounds/1")
        assert status.status_code == 403 and _type(status) == "fl/not-task-member"
        hijack = http.post(f"/v1/fl/tasks/{task}/rounds/1/checkpoint")
        assert hijack.status_code == 403 and _type(hijack) == "fl/not-task-creator"
        assert stranger.did in hijack.json()["detail"] and str(task) in hijack.json()["detail"]
    assert FederatedLedger(owner.client, deployment.federated_ledger).task(task).open_round == 1  # still open
    participant = EthereumDid(accounts[5], owner.client.chain_id)
    with node.client(participant) as http:  # the participant may follow the round, not close it
        assert http.get(f"/v1/fl/tasks/{task}/rounds/1").json()["state"] == "open"
        assert _type(http.post(f"/v1/fl/tasks/{task}/rounds/1/checkpoint")) == "fl/not-task-creator"
    with node.client(creator) as http:
        done = http.post(f"/v1/fl/tasks/{task}/rounds/1/checkpoint")
    assert done.status_code == 200 and done.json()["verified"] is True, done.text


def test_gas_the_node_pays_per_did_is_bounded(
    anvil: str, deployment: Deployment, accounts: list[LocalAccount], tmp_path: Path, creator: DidKey
):
    # room for one task creation (reserved at up to 200,000 gas, ~100,000 used), not two
    node = start_node(tmp_path / "node", anvil, deployment, accounts[8], fl_task_creators=[creator.did],
                      fl_gas_per_did=250_000)  # fmt: skip
    try:
        assert _open_task(node, creator).status_code == 201
        balance = node.runtime.client.w3.eth.get_balance(node.runtime.client.address)
        over = _open_task(node, creator)
        assert over.status_code == 429 and _type(over) == "fl/gas-budget-exhausted"
        assert creator.did in over.json()["detail"] and "250,000" in over.json()["detail"]
        assert over.json()["budget"] == 250_000 and 50_000 < over.json()["spent"] < 200_000  # used, not reserved
        assert node.runtime.client.w3.eth.get_balance(node.runtime.client.address) == balance
    finally:
        node.stop()


def test_node_on_a_local_chain_signs_with_its_own_key(anvil: str, tmp_path: Path, fresh_state: None):
    """No key configured on a local chain: the node makes its own (0600), funded from a dev account."""
    settings = NodeSettings(data_dir=tmp_path / "data", rpc_url=anvil)
    runtime = NodeRuntime(settings)
    address = runtime.client.address
    assert address not in {Account.from_key(k).address for k in DEV_KEYS}
    key_file = tmp_path / "data" / "node" / "account-key"
    assert key_file.stat().st_mode & 0o777 == 0o600
    assert runtime.client.w3.eth.get_balance(address) > 0
    assert NodeRuntime(settings).client.address == address  # the same key on the next start
