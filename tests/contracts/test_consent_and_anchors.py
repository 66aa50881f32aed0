"""ConsentRegistry (grants, batches, inheritance, transfers) and SnapshotAnchors: successes and reverts."""

from __future__ import annotations

from eth_utils import keccak

from tests.conftest import increase_time
from tests.contracts.helpers import DID_A, DID_B, DIGEST, reverts
from twinledger.chain.ledger import GrantRequest
from twinledger.chain.types import BatchKind, Scope, purpose_code

DAY = 86_400
LEAVES_CID = "bafybeigmix7t42i6jacydtquhet7srwvgpizfg7gjbq7627d35mjomtu64"


def _expiry(ledger, seconds=30 * DAY):
    return ledger.client.chain_time() + seconds


def test_grant_authorizes_until_expiry_and_records_the_grantor(anvil, ledger_as, accounts):
    owner = ledger_as(accounts[1])
    twin, _ = owner.register("asset")
    expiry = _expiry(owner, DAY)
    granted = owner.grant(GrantRequest.of(twin, DID_A, "research", "read,train", expiry)).event("Granted").args
    assert granted["did"] == DID_A and granted["didHash"] == keccak(text=DID_A)
    assert granted["purpose"] == purpose_code("research")
    assert (granted["scopes"], granted["expiry"]) == (Scope.READ | Scope.TRAIN, expiry)
    record = owner.grant_of(twin, DID_A, "research")
    assert record.grantor == accounts[1].address and record.exists
    assert owner.is_authorized(twin, DID_A, "research", "read")
    assert owner.is_authorized(twin, DID_A, "research", "read,train")
    assert not owner.is_authorized(twin, DID_A, "research", "write")
    assert not owner.is_authorized(twin, DID_A, "maintenance", "read")
    assert not owner.is_authorized(twin, DID_B, "research", "read")
    increase_time(anvil, DAY + 1)
    assert not owner.is_authorized(twin, DID_A, "research", "read")


def test_revoke_ends_authorization(ledger_as, accounts):
    owner = ledger_as(accounts[1])
    twin, _ = owner.register("asset")
    owner.grant(GrantRequest.of(twin, DID_A, "research", "read", _expiry(owner)))
    revoked = owner.revoke(twin, DID_A, "research").event("Revoked").args
    assert (revoked["twinId"], revoked["didHash"], revoked["revoker"]) == (
        twin,
        keccak(text=DID_A),
        accounts[1].address,
    )
    assert not owner.is_authorized(twin, DID_A, "research", "read")
    assert not owner.grant_of(twin, DID_A, "research").exists
    reverts("GrantNotFound", lambda: owner.revoke(twin, DID_A, "research"), twinId=twin)


def test_grant_validation_reverts(ledger_as, accounts):
    owner, stranger = ledger_as(accounts[1]), ledger_as(accounts[2])
    twin, _ = owner.register("asset")
    now = owner.client.chain_time()
    fn = owner.contract.functions
    purpose = purpose_code("research")
    reverts("InvalidScopes", lambda: owner.client.send(fn.grant(twin, DID_A, purpose, 0x08, now + DAY)), scopes=8)
    reverts("InvalidScopes", lambda: owner.client.send(fn.grant(twin, DID_A, purpose, 0x20, now + DAY)))
    reverts("InvalidExpiry", lambda: owner.client.send(fn.grant(twin, DID_A, purpose, 1, now - 1)), expiry=now - 1)
    reverts("InvalidExpiry", lambda: owner.client.send(fn.grant(twin, DID_A, purpose, 1, 2**40)))
    reverts("InvalidPurpose", lambda: owner.client.send(fn.grant(twin, DID_A, b"\x00" * 32, 1, now + DAY)))
    reverts("InvalidDid", lambda: owner.client.send(fn.grant(twin, "did", purpose, 1, now + DAY)), did="did")
    reverts("InvalidDid", lambda: owner.client.send(fn.grant(twin, "dix:key:z6Mk", purpose, 1, now + DAY)))
    reverts("InvalidDid", lambda: owner.client.send(fn.grant(twin, "did:x:1", purpose, 1, now + DAY)))  # 7 chars
    reverts("NotTwinOwner", lambda: stranger.grant(GrantRequest.of(twin, DID_A, purpose, "read", now + DAY)))
    reverts("TwinNotFound", lambda: owner.grant(GrantRequest.of(99, DID_A, purpose, "read", now + DAY)))
    reverts("NotTwinOwner", lambda: stranger.revoke(twin, DID_A, "research"))


def test_an_approved_operator_gives_and_withdraws_no_consent(ledger_as, accounts):
    """Only the owner gives consent: an ERC-721 approval (for all, or for the twin) lets an operator anchor, never
    grant or revoke in the owner's name."""
    owner, operator, single = ledger_as(accounts[1]), ledger_as(accounts[2]), ledger_as(accounts[3])
    twin, _ = owner.register("asset")
    owner.set_approval_for_all(accounts[2].address, True)
    owner.client.send(owner.contract.functions.approve(accounts[3].address, twin))
    expiry = _expiry(owner)
    for sender in (operator, single):
        who = sender.client.address
        reverts("NotTwinOwner", lambda s=sender: s.grant(GrantRequest.of(twin, DID_A, "research", "read", expiry)),
                twinId=twin, caller=who)  # fmt: skip
        reverts(
            "NotTwinOwner", lambda s=sender: s.grant_batch([GrantRequest.of(twin, DID_A, "research", "read", expiry)])
        )
    assert owner.grant_of(twin, DID_A, "research").grantor == "0x0000000000000000000000000000000000000000"
    owner.grant(GrantRequest.of(twin, DID_A, "research", "read", expiry))
    for sender in (operator, single):
        reverts("NotTwinOwner", lambda s=sender: s.revoke(twin, DID_A, "research"))
        reverts("NotTwinOwner", lambda s=sender: s.revoke_batch([(twin, DID_A, "research")]))
    assert owner.is_authorized(twin, DID_A, "research", "read")
    operator.anchor_snapshot(twin, 1, DIGEST)  # what an approval is for


def test_transfer_ends_the_previous_owners_consent(ledger_as, accounts):
    seller, buyer = ledger_as(accounts[1]), ledger_as(accounts[2])
    twin, _ = seller.register("asset")
    seller.grant(GrantRequest.of(twin, DID_A, "research", "read", _expiry(seller)))
    seller.transfer(twin, accounts[2].address)
    assert not buyer.is_authorized(twin, DID_A, "research", "read")
    reverts(
        "NotTwinOwner",
        lambda: seller.grant(GrantRequest.of(twin, DID_B, "research", "read", _expiry(seller))),
    )
    buyer.grant(GrantRequest.of(twin, DID_A, "research", "read", _expiry(buyer)))
    assert buyer.is_authorized(twin, DID_A, "research", "read")


def test_inherit_reaches_descendants_of_the_same_owner_only(ledger_as, accounts):
    owner, other = ledger_as(accounts[1]), ledger_as(accounts[2])
    system, _ = owner.register("system")
    asset, _ = owner.register("asset", parent_id=system)
    component, _ = owner.register("component", parent_id=asset)
    owner.grant(GrantRequest.of(system, DID_A, "research", "read", _expiry(owner)))
    assert not owner.is_authorized(component, DID_A, "research", "read")  # no INHERIT: the system twin only
    owner.grant(GrantRequest.of(system, DID_A, "research", "read,inherit", _expiry(owner)))
    assert owner.is_authorized(component, DID_A, "research", "read")
    assert not owner.is_authorized(component, DID_A, "research", "train")
    owner.transfer(component, accounts[2].address)  # consent never crosses to another owner's twin
    assert not other.is_authorized(component, DID_A, "research", "read")
    assert owner.is_authorized(asset, DID_A, "research", "read")


def test_batches_grant_and_revoke_in_one_transaction(ledger_as, accounts):
    owner, stranger = ledger_as(accounts[1]), ledger_as(accounts[2])
    a, _ = owner.register("asset")
    b, _ = owner.register("asset")
    expiry = _expiry(owner)
    result = owner.grant_batch([GrantRequest.of(a, DID_A, "research", "read", expiry),
                                GrantRequest.of(b, DID_B, "maintenance", "write", expiry)])  # fmt: skip
    assert [e.name for e in result.events] == ["Granted", "Granted"]
    assert owner.is_authorized(b, DID_B, "maintenance", "write")
    owner.revoke_batch([(a, DID_A, "research"), (b, DID_B, "maintenance")])
    assert not owner.is_authorized(a, DID_A, "research", "read")
    reverts("EmptyBatch", lambda: owner.grant_batch([]))
    reverts("EmptyBatch", lambda: owner.revoke_batch([]))
    reverts(
        "NotTwinOwner",
        lambda: stranger.grant_batch([GrantRequest.of(a, DID_A, "research", "read", expiry)]),
    )
    reverts("GrantNotFound", lambda: owner.revoke_batch([(a, DID_A, "research")]))


def test_is_authorized_is_false_for_unknown_twins_and_empty_scope(ledger_as, accounts):
    owner = ledger_as(accounts[1])
    twin, _ = owner.register("asset")
    owner.grant(GrantRequest.of(twin, DID_A, "research", "read", _expiry(owner)))
    fn = owner.contract.functions
    assert not fn.isAuthorized(twin, keccak(text=DID_A), purpose_code("research"), 0).call()
    assert not fn.isAuthorized(twin, keccak(text=DID_A), purpose_code("research"), 0x08).call()
    assert not owner.is_authorized(1234, DID_A, "research", "read")


def test_anchor_snapshot_requires_increasing_sequence(ledger_as, accounts):
    owner, operator, stranger = ledger_as(accounts[1]), ledger_as(accounts[2]), ledger_as(accounts[3])
    twin, _ = owner.register("asset")
    anchored = owner.anchor_snapshot(twin, 1, DIGEST).event("SnapshotAnchored").args
    assert (anchored["seq"], anchored["manifestDigest"], anchored["anchorer"]) == (
        1,
        DIGEST,
        accounts[1].address,
    )
    reverts("SnapshotSeqNotIncreasing", lambda: owner.anchor_snapshot(twin, 1, DIGEST), seq=1, headSeq=1)
    owner.anchor_snapshot(twin, 5, DIGEST)  # gaps allowed: batched snapshots are anchored in batches
    assert owner.twin(twin).head_seq == 5
    reverts("SnapshotSeqOverflow", lambda: owner.anchor_snapshot(twin, 2**32, DIGEST))
    reverts("ZeroDigest", lambda: owner.anchor_snapshot(twin, 6, b"\x00" * 32))
    reverts("NotTwinController", lambda: stranger.anchor_snapshot(twin, 6, DIGEST))
    owner.set_approval_for_all(accounts[2].address, True)  # how a node anchors for an owner
    operator.anchor_snapshot(twin, 6, DIGEST)


def test_anchor_batch_records_root_once(ledger_as, accounts):
    node = ledger_as(accounts[4])
    root = keccak(b"root")
    result = node.anchor_batch(BatchKind.ACCESS_RECEIPTS, root, 12, LEAVES_CID).event("BatchAnchored").args
    assert (result["kind"], result["count"], result["leavesCid"]) == (
        BatchKind.ACCESS_RECEIPTS,
        12,
        LEAVES_CID,
    )
    at, kind, count = node.batch_of(accounts[4].address, root)
    assert (kind, count) == (BatchKind.ACCESS_RECEIPTS, 12) and at > 0 and result["anchorer"] == accounts[4].address
    reverts(
        "BatchAlreadyAnchored",
        lambda: node.anchor_batch(BatchKind.SNAPSHOTS, root, 1, LEAVES_CID),
        anchorer=accounts[4].address,
        root=root,
    )
    fn = node.contract.functions
    reverts("InvalidBatchKind", lambda: node.client.send(fn.anchorBatch(3, keccak(b"x"), 1, LEAVES_CID)), kind=3)
    reverts("ZeroDigest", lambda: node.anchor_batch(BatchKind.SNAPSHOTS, b"\x00" * 32, 1, LEAVES_CID))
    reverts("InvalidBatchCount", lambda: node.anchor_batch(BatchKind.SNAPSHOTS, keccak(b"y"), 0, LEAVES_CID))
    reverts("InvalidBatchCount", lambda: node.anchor_batch(BatchKind.SNAPSHOTS, keccak(b"y"), 2**32, LEAVES_CID))
    reverts("EmptyLeavesCid", lambda: node.anchor_batch(BatchKind.SNAPSHOTS, keccak(b"y"), 1, ""))
    assert node.batch_of(accounts[4].address, keccak(b"y"))[0] == 0


def test_anchor_batch_is_keyed_by_its_anchorer(ledger_as, accounts):
    """Anchoring someone else's root first records it under the copier: the original anchorer's is untouched."""
    node, copier = ledger_as(accounts[4]), ledger_as(accounts[5])
    root = keccak(b"front-run")
    copier.anchor_batch(BatchKind.ACCESS_RECEIPTS, root, 7, "bafkreicopy")
    assert node.batch_of(accounts[4].address, root) == (0, BatchKind.SNAPSHOTS, 0)
    node.anchor_batch(BatchKind.SNAPSHOTS, root, 3, LEAVES_CID)
    assert node.batch_of(accounts[4].address, root)[1:] == (BatchKind.SNAPSHOTS, 3)
    assert copier.batch_of(accounts[5].address, root)[1:] == (BatchKind.ACCESS_RECEIPTS, 7)
