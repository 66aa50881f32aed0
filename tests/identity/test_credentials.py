import asyncio
import copy
import time

import pytest

from twinledger.identity import (
    ConsentGrant,
    CredentialExpired,
    DidKey,
    GrantNotStanding,
    InvalidCredential,
    Scope,
    did_hash,
    issue_consent_receipt,
    purpose_code,
    verify_consent_receipt,
)

GRANTEE = "did:pkh:eip155:31337:0xb9c5714089478a327f09197987f16f9e5d936e8a"


class InMemoryGrants:
    """What the chain bindings will provide: grants keyed by (twin, didHash, purpose)."""

    def __init__(self):
        self.grants: dict[tuple[int, bytes, bytes], tuple[int, int]] = {}

    def grant(self, twin_id, did, purpose, scopes, expires_at):
        self.grants[(twin_id, did_hash(did), purpose_code(purpose))] = (scopes, expires_at)

    def revoke(self, twin_id, did, purpose):
        del self.grants[(twin_id, did_hash(did), purpose_code(purpose))]

    def is_authorized(self, twin_id, did_hash, purpose, scope):
        scopes, expires_at = self.grants.get((twin_id, did_hash, purpose), (0, 0))
        return scopes & scope == scope and expires_at > time.time()


def make_grant(expires_at=None, scopes=Scope.READ | Scope.TRAIN):
    return ConsentGrant(
        twin_id=7,
        grantee_did=GRANTEE,
        purpose="dpv:ScientificResearch",
        scopes=int(scopes),
        expires_at=expires_at or int(time.time()) + 3600,
        chain_id=31337,
        registry="0x5fbdb2315678afecb367f032d93f642f64180aa3",
        tx_hash="0x" + "ab" * 32,
    )


@pytest.fixture
def setup():
    owner = DidKey.generate()
    grant = make_grant()
    chain = InMemoryGrants()
    chain.grant(7, GRANTEE, "dpv:ScientificResearch", int(Scope.READ | Scope.TRAIN | Scope.AUDIT), grant.expires_at)
    vc = asyncio.run(issue_consent_receipt(owner, grant))
    return owner, grant, chain, vc


def test_scopes_and_purpose_match_contracts():
    assert [int(s) for s in Scope] == [0x01, 0x02, 0x04, 0x08, 0x10]
    # keccak256("dpv:ScientificResearch"), computed independently with pycryptodome's Keccak-256
    assert purpose_code("dpv:ScientificResearch").hex() == (
        "5f7a35740f36d1c666df2a4089e831ae2b7c204ee84450282e7a7d5bef19e848"
    )


def test_issue_and_verify(setup):
    owner, grant, chain, vc = setup
    assert vc["issuer"] == owner.did
    assert vc["credentialSubject"]["scopes"] == ["READ", "TRAIN"]  # words, not a bit mask
    assert "proof" in vc
    receipt = asyncio.run(verify_consent_receipt(vc, chain, expected_issuer=owner.did))
    assert receipt.grant == grant
    assert receipt.issuer == owner.did


def test_revoked_grant_no_longer_stands(setup):
    _owner, _, chain, vc = setup
    chain.revoke(7, GRANTEE, "dpv:ScientificResearch")
    with pytest.raises(GrantNotStanding):
        asyncio.run(verify_consent_receipt(vc, chain))


def test_tampered_claims_fail_proof(setup):
    _, _, chain, vc = setup
    forged = copy.deepcopy(vc)
    forged["credentialSubject"]["scopes"] = ["READ", "TRAIN", "AUDIT"]
    with pytest.raises(InvalidCredential, match="proof"):
        asyncio.run(verify_consent_receipt(forged, chain))


def test_other_issuer_refused(setup):
    _, _, chain, vc = setup
    with pytest.raises(InvalidCredential, match="owner"):
        asyncio.run(verify_consent_receipt(vc, chain, expected_issuer=DidKey.generate().did))


def test_issuer_swapped_refused(setup):
    _, _, chain, vc = setup
    forged = copy.deepcopy(vc)
    forged["issuer"] = DidKey.generate().did
    with pytest.raises(InvalidCredential):
        asyncio.run(verify_consent_receipt(forged, chain))


def test_expired_receipt(setup):
    owner, _, chain, _ = setup
    vc = asyncio.run(issue_consent_receipt(owner, make_grant(expires_at=int(time.time()) + 60)))
    with pytest.raises(CredentialExpired):
        asyncio.run(verify_consent_receipt(vc, chain, now=int(time.time()) + 120))


def test_malformed_subject(setup):
    _, _, chain, vc = setup
    broken = copy.deepcopy(vc)
    del broken["proof"]
    with pytest.raises(InvalidCredential, match="no proof"):
        asyncio.run(verify_consent_receipt(broken, chain))
    with pytest.raises(InvalidCredential):
        asyncio.run(verify_consent_receipt("not json", chain))
