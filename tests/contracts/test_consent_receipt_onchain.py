"""A consent receipt (W3C VC) for a real grant verifies against the chain, and stops verifying once revoked."""

from __future__ import annotations

import asyncio

import pytest

from tests.contracts.helpers import DID_A
from twinledger.chain.ledger import GrantRequest, OnChainGrants
from twinledger.identity import ConsentGrant, DidKey, issue_consent_receipt, verify_consent_receipt
from twinledger.identity.errors import GrantNotStanding


def test_receipt_verifies_while_the_grant_stands_on_chain(ledger_as, accounts):
    owner = ledger_as(accounts[1])
    twin, _ = owner.register("asset")
    expiry = owner.client.chain_time() + 86_400
    tx = owner.grant(GrantRequest.of(twin, DID_A, "research", "read", expiry)).tx_hash
    owner_key = DidKey.generate()
    grant = ConsentGrant(twin, DID_A, "research", 1, expiry, owner.client.chain_id, owner.address, tx)
    receipt = asyncio.run(issue_consent_receipt(owner_key, grant))
    lookup = OnChainGrants(owner)
    verified = asyncio.run(verify_consent_receipt(receipt, lookup, expected_issuer=owner_key.did))
    assert verified.grant.twin_id == twin
    owner.revoke(twin, DID_A, "research")
    with pytest.raises(GrantNotStanding):
        asyncio.run(verify_consent_receipt(receipt, lookup, expected_issuer=owner_key.did))
