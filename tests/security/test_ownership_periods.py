"""A grant belongs to one ownership period and ends with it for good (docs/architecture.md, "Consent").

The attack: Alice grants Bob, transfers the twin to Mallory, Mallory pushes data while she owns it and hands the
twin back. Alice is the grantor and the owner again, so a rule of "live while the grantor owns the twin" revives
Bob's grant, and the node served him what Mallory pushed. Performed on the session's anvil and a real node over
HTTP.
"""

from __future__ import annotations

import pytest
from eth_account.signers.local import LocalAccount

from tests.node.conftest import Owner, RunningNode, owner_at
from twinledger.chain.client import ChainClient
from twinledger.chain.deploy import Deployment
from twinledger.chain.ledger import GrantRequest, TwinLedger
from twinledger.chain.localchain import rpc_call
from twinledger.identity import DidKey

HOUR = 3600


def _problem(response) -> str:
    assert response.headers["content-type"].startswith("application/problem+json"), response.text
    return response.json()["type"].rsplit(":", 1)[-1].rsplit("/", 1)[-1]


@pytest.fixture(scope="module")
def mallory(node: RunningNode, anvil: str, deployment: Deployment, accounts: list[LocalAccount]) -> Owner:
    return owner_at(node, anvil, deployment, accounts[6])


def _push(node: RunningNode, who: Owner, twin: int, body: bytes) -> int:
    with node.client(who.pkh) as http:
        pushed = http.post(f"/v1/twins/{twin}/snapshots", content=body)
    assert pushed.status_code == 202, pushed.text
    return int(pushed.json()["seq"])


def test_grant_does_not_revive_when_the_twin_comes_back(node: RunningNode, owner: Owner, mallory: Owner) -> None:
    alice, bob = owner, DidKey.generate()
    twin, _ = alice.ledger.register("asset")
    node.wait_indexed()
    alices = _push(node, alice, twin, b"alice, first period")
    alice.ledger.grant(GrantRequest.of(twin, bob.did, "research", "read", alice.ledger.client.chain_time() + HOUR))
    node.wait_indexed()
    reader = node.client(bob)
    read = reader.get(f"/v1/twins/{twin}/snapshots/latest", params={"purpose": "research"})
    assert read.status_code == 200 and read.content == b"alice, first period"

    alice.ledger.transfer(twin, mallory.account.address)
    node.wait_indexed()
    malloris = _push(node, mallory, twin, b"pushed by mallory while she owned it")
    mallory.ledger.transfer(twin, alice.account.address)
    node.wait_indexed()

    # Alice owns the twin again and is the grantor, but the grant belonged to her first period.
    assert not alice.ledger.is_authorized(twin, bob.did, "research", "read")
    for path in ("latest", str(malloris), str(alices)):
        refused = reader.get(f"/v1/twins/{twin}/snapshots/{path}", params={"purpose": "research"})
        assert refused.status_code == 403, (path, refused.status_code, refused.content)
        assert _problem(refused) == "grant-from-earlier-period", refused.json()
        assert "ownership period" in refused.json()["detail"]
    listing = reader.get(f"/v1/twins/{twin}/snapshots", params={"purpose": "research"})
    assert listing.status_code == 403

    # A new grant from this period serves only what was pushed in this period: neither Mallory's data nor the
    # data of Alice's first period, which Bob's old grant covered.
    alice.ledger.grant(GrantRequest.of(twin, bob.did, "research", "read", alice.ledger.client.chain_time() + HOUR))
    node.wait_indexed()
    assert alice.ledger.is_authorized(twin, bob.did, "research", "read")
    for path in ("latest", str(malloris), str(alices)):
        refused = reader.get(f"/v1/twins/{twin}/snapshots/{path}", params={"purpose": "research"})
        assert refused.status_code == 403, (path, refused.status_code, refused.content)
        assert _problem(refused) == "snapshot-from-another-period", refused.json()
    manifest = reader.get(f"/v1/twins/{twin}/snapshots/{malloris}/manifest", params={"purpose": "research"})
    assert manifest.status_code == 403 and _problem(manifest) == "snapshot-from-another-period"
    assert reader.get(f"/v1/twins/{twin}/snapshots", params={"purpose": "research"}).json()["snapshots"] == []
    current = _push(node, alice, twin, b"alice, third period")
    read = reader.get(f"/v1/twins/{twin}/snapshots/latest", params={"purpose": "research"})
    assert read.status_code == 200 and read.content == b"alice, third period"
    assert read.headers["twinledger-seq"] == str(current)
    listed = reader.get(f"/v1/twins/{twin}/snapshots", params={"purpose": "research"}).json()["snapshots"]
    assert [s["seq"] for s in listed] == [current]
    reader.close()

    # The owner still reads every period of their own twin.
    with node.client(alice.pkh) as http:
        assert http.get(f"/v1/twins/{twin}/snapshots/{malloris}").content == b"pushed by mallory while she owned it"


def test_round_trip_within_one_block_still_ends_the_grant(
    anvil: str, deployment: Deployment, accounts: list[LocalAccount], fresh_state: None
) -> None:
    """Periods are counted, not timed: A -> M -> A inside one block (one timestamp) still ends A's grant."""
    alice = TwinLedger(ChainClient(anvil, accounts[1]), deployment.twin_ledger)
    mallory = TwinLedger(ChainClient(anvil, accounts[6]), deployment.twin_ledger)
    did = DidKey.generate().did
    twin, _ = alice.register("asset")
    alice.grant(GrantRequest.of(twin, did, "research", "read", alice.client.chain_time() + HOUR))
    assert alice.is_authorized(twin, did, "research", "read")
    w3 = alice.client.w3
    rpc_call(anvil, "evm_setAutomine", [False])
    try:
        there = alice.contract.functions.transferFrom(alice.client.address, mallory.client.address, twin)
        back = mallory.contract.functions.transferFrom(mallory.client.address, alice.client.address, twin)
        hashes = [
            ledger.client.w3.eth.send_raw_transaction(
                ledger.client.account.sign_transaction(
                    fn.build_transaction(
                        {
                            "from": ledger.client.address,
                            "nonce": w3.eth.get_transaction_count(ledger.client.address, "pending"),
                            "gas": 200_000,
                        }
                    )
                ).raw_transaction
            )
            for ledger, fn in ((alice, there), (mallory, back))
        ]
        rpc_call(anvil, "evm_mine")
    finally:
        rpc_call(anvil, "evm_setAutomine", [True])
    receipts = [w3.eth.get_transaction_receipt(h) for h in hashes]
    assert [r["status"] for r in receipts] == [1, 1]
    assert receipts[0]["blockNumber"] == receipts[1]["blockNumber"]
    assert alice.owner_of(twin) == alice.client.address
    assert not alice.is_authorized(twin, did, "research", "read")
