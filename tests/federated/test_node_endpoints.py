"""The node's federated endpoints over HTTP: create a task, submit updates as the twin's owner, round status,
checkpoint; refusals are problems and leave nothing on chain; updates show in the twin's audit trail."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from eth_account.signers.local import LocalAccount

from tests.node.conftest import RunningNode, start_node
from twinledger.chain.client import ChainClient
from twinledger.chain.deploy import Deployment
from twinledger.chain.ledger import GrantRequest, TwinLedger
from twinledger.federated import serialize, tensors
from twinledger.identity import EthereumDid

from .conftest import initial_model, local_update

pytestmark = pytest.mark.chain


@pytest.fixture(scope="module")
def node(anvil: str, deployment: Deployment, accounts: list[LocalAccount], tmp_path_factory) -> Iterator[RunningNode]:
    running = start_node(tmp_path_factory.mktemp("fl-node"), anvil, deployment, accounts[8])
    try:
        yield running
    finally:
        running.stop()


def test_task_update_status_checkpoint_over_http(
    node: RunningNode, anvil: str, deployment: Deployment, accounts: list[LocalAccount], tmp_path: Path
) -> None:
    node_did = node.runtime.node_key.did
    owners = [TwinLedger(ChainClient(anvil, accounts[i]), deployment.twin_ledger) for i in (6, 7)]
    signers = [EthereumDid(o.client.account, o.client.chain_id) for o in owners]  # type: ignore[arg-type]
    twins = [o.register("asset")[0] for o in owners]
    node_account = node.runtime.client.address
    for owner, twin in zip(owners, twins, strict=True):
        owner.approve(node_account, twin)  # the node's account commits on the owner's behalf
    owners[0].grant(GrantRequest.of(twins[0], node_did, "research", "train", owners[0].client.chain_time() + 3600))

    with node.client(signers[0]) as http:
        created = http.post(
            "/v1/fl/tasks", params={"purpose": "research", "encrypt": "true"}, content=serialize(initial_model())
        )
        assert created.status_code == 201, created.text
        task = created.json()["taskId"]
        update = serialize(local_update(1))
        sent = http.post(
            f"/v1/fl/tasks/{task}/rounds/1/updates",
            params={"twinId": twins[0], "numSamples": 12},
            headers={"Twinledger-Update-Sha256": tensors.digest(update).hex()},
            content=update,
        )
        assert sent.status_code == 201, sent.text
        # bad input: digest mismatch, malformed file, someone else's twin
        wrong = http.post(
            f"/v1/fl/tasks/{task}/rounds/1/updates",
            params={"twinId": twins[0], "numSamples": 12},
            headers={"Twinledger-Update-Sha256": "00" * 32},
            content=update,
        )
        assert wrong.status_code == 422 and "hashes to" in wrong.json()["detail"]
        garbage = http.post(
            f"/v1/fl/tasks/{task}/rounds/1/updates", params={"twinId": twins[0], "numSamples": 1}, content=b"junk"
        )
        assert garbage.status_code == 400 and "tensor file" in garbage.json()["detail"]
        foreign = http.post(
            f"/v1/fl/tasks/{task}/rounds/1/updates", params={"twinId": twins[1], "numSamples": 1}, content=update
        )
        assert foreign.status_code == 403
    with node.client(signers[1]) as http:  # owner of twin 2 has not granted TRAIN
        refused = http.post(
            f"/v1/fl/tasks/{task}/rounds/1/updates", params={"twinId": twins[1], "numSamples": 3}, content=update
        )
        assert refused.status_code == 403 and "has not granted TRAIN" in refused.json()["detail"]

    node.wait_indexed()
    with node.client(signers[0]) as http:
        status = http.get(f"/v1/fl/tasks/{task}/rounds/1").json()
        assert status["state"] == "open"
        assert [u["twinId"] for u in status["updates"]] == [twins[0]]  # refused updates were not committed
        done = http.post(f"/v1/fl/tasks/{task}/rounds/1/checkpoint")
        assert done.status_code == 200, done.text
        assert done.json()["verified"] is True and done.json()["count"] == 1
        node.wait_indexed()
        status = http.get(f"/v1/fl/tasks/{task}/rounds/1").json()
        assert status["state"] == "checkpointed" and status["checkpoint"]["count"] == 1
        closed = http.post(
            f"/v1/fl/tasks/{task}/rounds/1/updates", params={"twinId": twins[0], "numSamples": 12}, content=update
        )
        assert closed.status_code == 400 and "is not open" in closed.json()["detail"]
        audit = http.get(f"/v1/twins/{twins[0]}/audit").json()
    assert "federated-use" in [e["kind"] for e in audit["entries"]]
