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
from twinledger.chain.ledger import FederatedLedger, GrantRequest, TwinLedger
from twinledger.federated import serialize, tensors
from twinledger.identity import EthereumDid

from .conftest import initial_model, local_update

pytestmark = pytest.mark.chain


@pytest.fixture(scope="module")
def node(anvil: str, deployment: Deployment, accounts: list[LocalAccount], tmp_path_factory) -> Iterator[RunningNode]:
    creator = EthereumDid(accounts[6], 31337).did  # the owner of the first twin also opens the task
    running = start_node(tmp_path_factory.mktemp("fl-node"), anvil, deployment, accounts[8], fl_task_creators=[creator])
    try:
        yield running
    finally:
        running.stop()


def _type(response) -> str:
    assert response.headers["content-type"].startswith("application/problem+json"), response.text
    return response.json()["type"].removeprefix("urn:twinledger:problem:")


def test_task_update_status_checkpoint_over_http(
    node: RunningNode, anvil: str, deployment: Deployment, accounts: list[LocalAccount], tmp_path: Path
) -> None:
    node_did = node.runtime.node_key.did
    owners = [TwinLedger(ChainClient(anvil, accounts[i]), deployment.twin_ledger) for i in (6, 7)]
    signers = [EthereumDid(o.client.account, o.client.chain_id) for o in owners]  # type: ignore[arg-type]
    twins = [o.register("asset")[0] for o in owners]
    federated = [FederatedLedger(o.client, deployment.federated_ledger) for o in owners]
    owners[0].grant(GrantRequest.of(twins[0], node_did, "research", "train", owners[0].client.chain_time() + 3600))

    with node.client(signers[0]) as http:
        created = http.post(
            "/v1/fl/tasks", params={"purpose": "research", "encrypt": "true"}, content=serialize(initial_model())
        )
        assert created.status_code == 201, created.text
        task = created.json()["taskId"]
        update = serialize(local_update(1))
        digest = tensors.digest(update)
        deadline = owners[0].client.chain_time() + 600

        def signed(i: int, twin: int, samples: int, data_digest: bytes = digest) -> dict[str, str]:
            """The owner's signed commit, which the node relays (no approval for the twin)."""
            commit = federated[i].sign_commit(
                owners[i].client.account, task, 1, twin, data_digest, samples, deadline=deadline
            )
            return {"Twinledger-Commit-Signature": "0x" + commit.signature.hex(),
                    "Twinledger-Commit-Deadline": str(deadline)}  # fmt: skip

        sent = http.post(
            f"/v1/fl/tasks/{task}/rounds/1/updates",
            params={"twinId": twins[0], "numSamples": 12},
            headers={"Twinledger-Update-Sha256": digest.hex(), **signed(0, twins[0], 12)},
            content=update,
        )
        assert sent.status_code == 201, sent.text
        # bad input: digest mismatch, malformed file, someone else's twin, no or a wrong signed commit
        wrong = http.post(
            f"/v1/fl/tasks/{task}/rounds/1/updates",
            params={"twinId": twins[0], "numSamples": 12},
            headers={"Twinledger-Update-Sha256": "00" * 32, **signed(0, twins[0], 12)},
            content=update,
        )
        assert wrong.status_code == 422 and "hashes to" in wrong.json()["detail"]
        garbage = http.post(
            f"/v1/fl/tasks/{task}/rounds/1/updates",
            params={"twinId": twins[0], "numSamples": 1},
            headers=signed(0, twins[0], 1),
            content=b"junk",
        )
        assert garbage.status_code == 400 and "tensor file" in garbage.json()["detail"]
        foreign = http.post(
            f"/v1/fl/tasks/{task}/rounds/1/updates",
            params={"twinId": twins[1], "numSamples": 1},
            headers=signed(0, twins[1], 1),
            content=update,
        )
        assert foreign.status_code == 403
        unsigned = http.post(
            f"/v1/fl/tasks/{task}/rounds/1/updates", params={"twinId": twins[0], "numSamples": 12}, content=update
        )
        assert unsigned.status_code == 400 and _type(unsigned) == "fl/commit-signature-required"
        other_samples = http.post(  # signed for 12 samples, sent as 13
            f"/v1/fl/tasks/{task}/rounds/1/updates",
            params={"twinId": twins[0], "numSamples": 13},
            headers=signed(0, twins[0], 12),
            content=update,
        )
        assert other_samples.status_code == 403 and _type(other_samples) == "fl/bad-commit-signer"
        assert f"not by its owner {owners[0].client.address}" in other_samples.json()["detail"]
    with node.client(signers[1]) as http:  # owner of twin 2 has not granted TRAIN
        refused = http.post(
            f"/v1/fl/tasks/{task}/rounds/1/updates",
            params={"twinId": twins[1], "numSamples": 3},
            headers=signed(1, twins[1], 3),
            content=update,
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
            f"/v1/fl/tasks/{task}/rounds/1/updates",
            params={"twinId": twins[0], "numSamples": 12},
            headers=signed(0, twins[0], 12),
            content=update,
        )
        assert closed.status_code == 400 and "is not open" in closed.json()["detail"]
        audit = http.get(f"/v1/twins/{twins[0]}/audit").json()
    assert "federated-use" in [e["kind"] for e in audit["entries"]]
