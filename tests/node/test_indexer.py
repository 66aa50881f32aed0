"""The index follows the chain: events into SQLite, decisions equal to the contract's, reorgs rolled back."""

from __future__ import annotations

import pytest

from tests.contracts.helpers import DID_A, DID_B
from twinledger.chain.client import ChainClient
from twinledger.chain.ledger import GrantRequest, all_events
from twinledger.chain.localchain import rpc_call
from twinledger.chain.types import Scope, purpose_code
from twinledger.identity import did_hash
from twinledger_node.consent.decision import Outcome, decide
from twinledger_node.indexer.db import IndexDB
from twinledger_node.indexer.indexer import Indexer


@pytest.fixture
def index(tmp_path, anvil, deployment, fresh_state, accounts):
    ledger, federated = deployment.bind(ChainClient(anvil, accounts[0]))
    db = IndexDB(tmp_path / "index.sqlite")
    indexer = Indexer(
        db,
        ledger.client,
        all_events(ledger, federated),
        [deployment.twin_ledger, deployment.federated_ledger],
        start_block=deployment.deploy_block,
    )
    yield indexer
    db.close()


def _decide(indexer, twin, did, purpose, scope):
    indexer.sync_once()
    conn = indexer.db.connection()
    return decide(conn, twin, did_hash(did), purpose_code(purpose), Scope.parse(scope), indexer.head.chain_now())


def test_index_mirrors_twins_grants_and_decisions(index, ledger_as, accounts):
    owner = ledger_as(accounts[1])
    system, _ = owner.register("system")
    component, _ = owner.register("component", parent_id=system, device_did=DID_B)
    expiry = owner.client.chain_time() + 3600
    owner.grant(GrantRequest.of(system, DID_A, "research", "read,inherit", expiry))
    assert _decide(index, component, DID_A, "research", "read").allowed
    row = index.db.connection().execute("SELECT * FROM twins WHERE twin_id = ?", (component,)).fetchone()
    assert (row["owner"], row["parent_id"], row["device_did"]) == (accounts[1].address, system, DID_B)
    assert _decide(index, component, DID_A, "research", "train").outcome is Outcome.WRONG_SCOPE
    assert _decide(index, component, DID_A, "maintenance", "read").outcome is Outcome.NO_GRANT
    assert _decide(index, 99, DID_A, "research", "read").outcome is Outcome.UNKNOWN_TWIN
    owner.grant(GrantRequest.of(component, DID_B, "maintenance", "write", expiry))
    assert _decide(index, component, DID_B, "research", "write").outcome is Outcome.WRONG_PURPOSE
    owner.revoke(system, DID_A, "research")
    assert _decide(index, component, DID_A, "research", "read").outcome is Outcome.REVOKED
    owner.transfer(component, accounts[2].address)
    assert _decide(index, component, DID_B, "maintenance", "write").outcome is Outcome.EARLIER_PERIOD


def test_expiry_follows_chain_time(index, ledger_as, accounts, anvil):
    owner = ledger_as(accounts[1])
    twin, _ = owner.register("asset")
    owner.grant(GrantRequest.of(twin, DID_A, "research", "read", owner.client.chain_time() + 100))
    assert _decide(index, twin, DID_A, "research", "read").allowed
    rpc_call(anvil, "evm_increaseTime", [200])
    rpc_call(anvil, "evm_mine")
    assert _decide(index, twin, DID_A, "research", "read").outcome is Outcome.EXPIRED


def test_reorg_that_removes_a_revocation_restores_the_grant(index, ledger_as, accounts, anvil):
    owner = ledger_as(accounts[1])
    twin, _ = owner.register("asset")
    owner.grant(GrantRequest.of(twin, DID_A, "research", "read", owner.client.chain_time() + 3600))
    assert _decide(index, twin, DID_A, "research", "read").allowed
    fork = rpc_call(anvil, "evm_snapshot")
    owner.revoke(twin, DID_A, "research")
    assert _decide(index, twin, DID_A, "research", "read").outcome is Outcome.REVOKED
    rpc_call(anvil, "evm_revert", [fork])  # the revocation's block is orphaned...
    for _ in range(2):
        rpc_call(anvil, "evm_mine")  # ...and the chain grows past it on another branch
    decision = _decide(index, twin, DID_A, "research", "read")
    assert decision.allowed, decision.detail
    assert index.db.connection().execute("SELECT COUNT(*) FROM events WHERE name = 'Revoked'").fetchone()[0] == 0


def test_reorg_that_removes_a_grant_refuses_again(index, ledger_as, accounts, anvil):
    owner = ledger_as(accounts[1])
    twin, _ = owner.register("asset")
    index.sync_once()
    fork = rpc_call(anvil, "evm_snapshot")
    owner.grant(GrantRequest.of(twin, DID_A, "research", "read", owner.client.chain_time() + 3600))
    assert _decide(index, twin, DID_A, "research", "read").allowed
    rpc_call(anvil, "evm_revert", [fork])
    owner.bind_device(twin, DID_B)  # a different block at the same height
    assert _decide(index, twin, DID_A, "research", "read").outcome is Outcome.NO_GRANT


def test_rebuild_from_scratch_gives_the_same_state(index, ledger_as, accounts):
    owner = ledger_as(accounts[1])
    a, _ = owner.register("system")
    b, _ = owner.register("asset", parent_id=a)
    owner.grant(GrantRequest.of(b, DID_A, "research", "read", owner.client.chain_time() + 3600))
    owner.anchor_snapshot(b, 1, b"\x22" * 32)
    index.sync_once()
    conn = index.db.connection()
    tables = ("twins", "grants", "snapshot_anchors", "events")
    before = {t: [tuple(r) for r in conn.execute(f"SELECT * FROM {t} ORDER BY 1, 2")] for t in tables}
    index.rebuild()
    assert conn.execute("SELECT COUNT(*) FROM twins").fetchone()[0] == 0
    index.sync_once()
    after = {t: [tuple(r) for r in conn.execute(f"SELECT * FROM {t} ORDER BY 1, 2")] for t in tables}
    assert after == before
