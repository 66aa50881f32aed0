"""Nobody but the owner can spend the owner's relay quota: forged or replayed consents naming the owner's twin
are counted against the client that sent them, and the owner's genuine revocation still gets relayed."""

from __future__ import annotations

from eth_account import Account

from tests.security._http_helpers import problem_slug, quiet_node
from twinledger.chain.client import ChainClient
from twinledger.chain.ledger import GrantRequest, TwinLedger
from twinledger.identity import DidKey

PER_SIGNER = 3  # the owner's own relays per minute
PER_CLIENT = 5  # refused (unverified or stale) relays per client per minute


def _relayable(ledger: TwinLedger, signed) -> dict:
    return {**signed.as_json(), "chainId": ledger.client.chain_id, "verifyingContract": ledger.address}


def test_forged_and_replayed_consents_do_not_starve_the_owners_revocation(
    anvil, deployment, accounts, fresh_state, tmp_path
):
    owner = accounts[2]
    ledger = TwinLedger(ChainClient(anvil, owner), deployment.twin_ledger)
    attacker = Account.create()
    reader = DidKey.generate()
    settings = {"relay_per_signer_per_minute": PER_SIGNER, "relay_unverified_per_client_per_minute": PER_CLIENT}
    with quiet_node(tmp_path / "node", anvil, deployment, accounts[8], **settings) as node, node.client() as http:
        twin, _ = ledger.register("asset")
        node.wait_indexed()
        now = ledger.client.chain_time()
        grant = GrantRequest.of(twin, reader.did, "research", "read", now + 3600)
        genuine_grant = _relayable(ledger, ledger.sign_grant(owner, grant, deadline=now + 600))
        assert http.post("/v1/consents", json=genuine_grant).status_code == 202  # one of the owner's PER_SIGNER
        assert ledger.is_authorized(twin, reader.did, "research", "read")

        # The attack: consents naming the owner's twin, signed by someone else, with the owner's next nonce...
        nonce = ledger.nonce_of(owner.address)
        refused = []
        for i in range(2 * PER_SIGNER + PER_CLIENT):
            forged = ledger.sign_revoke(attacker, twin, reader.did, "research", deadline=now + 600 + i, nonce=nonce)
            refused.append(http.post("/v1/consents", json=_relayable(ledger, forged)))
        slugs = [problem_slug(r) for r in refused]
        assert slugs[:PER_CLIENT] == ["not-owner-signature"] * PER_CLIENT, slugs
        assert set(slugs[PER_CLIENT:]) == {"relay/client-rate-limited"}, slugs
        assert {r.status_code for r in refused[PER_CLIENT:]} == {429}
        # ...and the owner's own grant replayed (its nonce is spent): refused, and not counted against the owner
        replayed = [http.post("/v1/consents", json=genuine_grant) for _ in range(PER_SIGNER + 1)]
        assert {(r.status_code, problem_slug(r)) for r in replayed} == {(409, "wrong-nonce")}

        # The owner's genuine revocation, from the same client address, is relayed and ends the grant.
        revoke = ledger.sign_revoke(owner, twin, reader.did, "research", deadline=now + 600)
        revoked = http.post("/v1/consents", json=_relayable(ledger, revoke))
        assert revoked.status_code == 202, revoked.text
        assert not ledger.is_authorized(twin, reader.did, "research", "read")
        assert ledger.nonce_of(owner.address) == nonce + 1


def test_the_owners_grants_cannot_starve_their_revocation(anvil, deployment, accounts, fresh_state, tmp_path):
    owner = accounts[2]
    ledger = TwinLedger(ChainClient(anvil, owner), deployment.twin_ledger)
    readers = [DidKey.generate() for _ in range(PER_SIGNER + 1)]
    settings = {"relay_per_signer_per_minute": PER_SIGNER}
    with quiet_node(tmp_path / "node", anvil, deployment, accounts[8], **settings) as node, node.client() as http:
        twin, _ = ledger.register("asset")
        node.wait_indexed()
        now = ledger.client.chain_time()
        answers = []
        for reader in readers:
            signed = ledger.sign_grant(
                owner, GrantRequest.of(twin, reader.did, "research", "read", now + 3600), deadline=now + 600
            )
            answers.append(http.post("/v1/consents", json=_relayable(ledger, signed)))
        assert [a.status_code for a in answers] == [202] * PER_SIGNER + [429]
        assert problem_slug(answers[-1]) == "rate-limited" and owner.address in answers[-1].json()["detail"]
        revoke = ledger.sign_revoke(owner, twin, readers[0].did, "research", deadline=now + 600)
        revoked = http.post("/v1/consents", json=_relayable(ledger, revoke))
        assert revoked.status_code == 202, revoked.text
        assert not ledger.is_authorized(twin, readers[0].did, "research", "read")


def _forged_revocations(ledger: TwinLedger, twin: int, count: int) -> list[dict]:
    attacker, reader = Account.create(), DidKey.generate()
    now, nonce = ledger.client.chain_time(), ledger.nonce_of(ledger.client.account.address)  # type: ignore[union-attr]
    return [
        _relayable(
            ledger, ledger.sign_revoke(attacker, twin, reader.did, "research", deadline=now + 600 + i, nonce=nonce)
        )
        for i in range(count)
    ]


def test_behind_a_trusted_proxy_one_abuser_does_not_spend_the_other_clients_budget(
    anvil, deployment, accounts, fresh_state, tmp_path
):
    """Every client behind a reverse proxy has the proxy's address: with the proxy trusted to name them
    (TWINLEDGER_FORWARDED_ALLOW_IPS), each is limited on its own."""
    ledger = TwinLedger(ChainClient(anvil, accounts[2]), deployment.twin_ledger)
    settings = {"relay_unverified_per_client_per_minute": PER_CLIENT, "forwarded_allow_ips": "*"}
    with quiet_node(tmp_path / "node", anvil, deployment, accounts[8], **settings) as node, node.client() as http:
        twin, _ = ledger.register("asset")
        node.wait_indexed()
        forged = _forged_revocations(ledger, twin, PER_CLIENT + 2)
        abuser = [problem_slug(http.post("/v1/consents", json=f, headers={"X-Forwarded-For": "203.0.113.7"}))
                  for f in forged[:-1]]  # fmt: skip
        assert abuser[-1] == "relay/client-rate-limited", abuser
        other = http.post("/v1/consents", json=forged[-1], headers={"X-Forwarded-For": "198.51.100.9"})
        assert problem_slug(other) == "not-owner-signature"  # decided on its merits, not refused for the abuser


def test_an_untrusted_peer_cannot_dodge_its_limit_by_naming_other_clients(
    anvil, deployment, accounts, fresh_state, tmp_path
):
    """X-Forwarded-For from a peer that is not a trusted proxy is ignored: an attacker rotating it is still one
    client (the node trusts only 10.9.9.9 here, and the test's requests come from 127.0.0.1)."""
    ledger = TwinLedger(ChainClient(anvil, accounts[2]), deployment.twin_ledger)
    settings = {"relay_unverified_per_client_per_minute": PER_CLIENT, "forwarded_allow_ips": "10.9.9.9"}
    with quiet_node(tmp_path / "node", anvil, deployment, accounts[8], **settings) as node, node.client() as http:
        twin, _ = ledger.register("asset")
        node.wait_indexed()
        slugs = [problem_slug(http.post("/v1/consents", json=f, headers={"X-Forwarded-For": f"198.51.100.{i}"}))
                 for i, f in enumerate(_forged_revocations(ledger, twin, PER_CLIENT + 1))]  # fmt: skip
        assert slugs[:PER_CLIENT] == ["not-owner-signature"] * PER_CLIENT and slugs[-1] == "relay/client-rate-limited"
