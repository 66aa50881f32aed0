"""Only the owner gives consent (docs/architecture.md, "Consent semantics").

The attack: an owner approves an operator, as ERC-721 tools and the old federated flow asked, so that it may anchor
for them. The operator then grants its accomplice READ on the owner's twin, recorded with the owner as grantor, and
the node serves the accomplice the owner's data; or it revokes a grant the owner gave. Performed on the session's
anvil and a real node over HTTP.
"""

from __future__ import annotations

import pytest
from eth_account.signers.local import LocalAccount

from tests.contracts.helpers import reverts
from tests.node.conftest import Owner, RunningNode
from twinledger.chain.client import ChainClient
from twinledger.chain.deploy import Deployment
from twinledger.chain.ledger import GrantRequest, TwinLedger
from twinledger.identity import DidKey

HOUR = 3600


@pytest.fixture(scope="module")
def operator(anvil: str, deployment: Deployment, accounts: list[LocalAccount]) -> TwinLedger:
    return TwinLedger(ChainClient(anvil, accounts[7]), deployment.twin_ledger)


def test_an_approved_operator_cannot_give_consent_in_the_owners_name(
    node: RunningNode, owner: Owner, operator: TwinLedger
) -> None:
    twin, _ = owner.ledger.register("asset")
    owner.ledger.set_approval_for_all(operator.client.address, True)
    node.wait_indexed()
    with node.client(owner.pkh) as http:
        assert http.post(f"/v1/twins/{twin}/snapshots", content=b"the owner's reading").status_code == 202
    accomplice = DidKey.generate()
    expiry = owner.ledger.client.chain_time() + HOUR
    reverts(
        "NotTwinOwner",
        lambda: operator.grant(GrantRequest.of(twin, accomplice.did, "research", "read", expiry)),
        twinId=twin,
        caller=operator.client.address,
    )
    reverts(
        "NotTwinOwner",
        lambda: operator.grant_batch([GrantRequest.of(twin, accomplice.did, "research", "read", expiry)]),
    )
    node.wait_indexed()
    with node.client(accomplice) as http:
        refused = http.get(f"/v1/twins/{twin}/snapshots/latest", params={"purpose": "research"})
    assert refused.status_code == 403, refused.text
    assert refused.headers["content-type"].startswith("application/problem+json")


def test_an_approved_operator_cannot_withdraw_the_owners_consent(
    node: RunningNode, owner: Owner, operator: TwinLedger
) -> None:
    twin, _ = owner.ledger.register("asset")
    owner.ledger.set_approval_for_all(operator.client.address, True)
    reader = DidKey.generate()
    owner.ledger.grant(GrantRequest.of(twin, reader.did, "research", "read", owner.ledger.client.chain_time() + HOUR))
    node.wait_indexed()
    with node.client(owner.pkh) as http:
        assert http.post(f"/v1/twins/{twin}/snapshots", content=b"shared with the reader").status_code == 202
    reverts("NotTwinOwner", lambda: operator.revoke(twin, reader.did, "research"))
    reverts("NotTwinOwner", lambda: operator.revoke_batch([(twin, reader.did, "research")]))
    node.wait_indexed()
    with node.client(reader) as http:
        served = http.get(f"/v1/twins/{twin}/snapshots/latest", params={"purpose": "research"})
    assert served.status_code == 200 and served.content == b"shared with the reader"
