"""TwinRegistry: registration, hierarchy, devices, ERC-721 behaviour, and each of its reverts."""

from __future__ import annotations

import pytest
from eth_utils import keccak

from tests.contracts.helpers import DID_A, DID_B, DIGEST, reverts
from twinledger.chain.localchain import rpc_call
from twinledger.chain.types import TwinKind
from twinledger.identity.errors import MalformedDid

ZERO = "0x0000000000000000000000000000000000000000"


def test_register_mints_to_caller_with_kind_parent_and_device(ledger_as, accounts):
    owner = ledger_as(accounts[1])
    system_id, result = owner.register("system", metadata_digest=DIGEST)
    component_id, child = owner.register(TwinKind.COMPONENT, parent_id=system_id, device_did=DID_A)
    assert (system_id, component_id) == (1, 2)
    assert owner.total_twins() == 2
    assert owner.balance_of(accounts[1].address) == 2
    record = owner.twin(component_id)
    assert (record.owner, record.parent_id, record.kind, record.head_seq) == (
        accounts[1].address, system_id, TwinKind.COMPONENT, 0,
    )  # fmt: skip
    registered = child.event("TwinRegistered").args
    assert registered["deviceDid"] == DID_A
    assert registered["deviceDidHash"] == keccak(text=DID_A)
    assert registered["parentId"] == system_id
    transfer = child.event("Transfer").args
    assert (transfer["from"], transfer["to"], transfer["tokenId"]) == (
        ZERO,
        accounts[1].address,
        component_id,
    )
    assert result.event("TwinRegistered").args["metadataDigest"] == DIGEST


def test_register_refuses_bad_kind_did_and_foreign_parent(ledger_as, accounts):
    owner, stranger = ledger_as(accounts[1]), ledger_as(accounts[2])
    parent, _ = owner.register("asset")
    fn = owner.contract.functions
    reverts("InvalidTwinKind", lambda: owner.client.send(fn.register(4, 0, DIGEST, "")), kind=4)
    reverts("InvalidDid", lambda: owner.client.send(fn.register(1, 0, DIGEST, "key:z6Mk")), did="key:z6Mk")
    reverts("InvalidDid", lambda: owner.client.send(fn.register(1, 0, DIGEST, "did:x")))
    with pytest.raises(MalformedDid):  # the SDK refuses a non-canonical DID before sending anything
        owner.register("asset", device_did="did:key:not-base58")
    reverts("TwinNotFound", lambda: owner.register("asset", parent_id=99), twinId=99)
    reverts("NotTwinController", lambda: stranger.register("component", parent_id=parent), twinId=parent)
    assert owner.total_twins() == 1


def test_bind_device_emits_binding_and_unbinding(ledger_as, accounts):
    owner = ledger_as(accounts[1])
    twin, _ = owner.register("asset")
    bound = owner.bind_device(twin, DID_B).event("DeviceBound").args
    assert (bound["deviceDid"], bound["deviceDidHash"], bound["by"]) == (
        DID_B,
        keccak(text=DID_B),
        accounts[1].address,
    )
    assert owner.bind_device(twin, "").event("DeviceBound").args["deviceDidHash"] == b"\x00" * 32
    reverts("NotTwinController", lambda: ledger_as(accounts[2]).bind_device(twin, DID_A))
    reverts("InvalidDid", lambda: owner.client.send(owner.contract.functions.bindDevice(twin, "did:")))


def test_set_parent_links_detaches_and_refuses_cycles(ledger_as, accounts):
    owner = ledger_as(accounts[1])
    a, _ = owner.register("system")
    b, _ = owner.register("asset", parent_id=a)
    c, _ = owner.register("component", parent_id=b)
    reverts("ParentCycle", lambda: owner.set_parent(a, c), twinId=a, parentId=c)
    reverts("ParentCycle", lambda: owner.set_parent(a, a))
    changed = owner.set_parent(c, a).event("ParentChanged").args
    assert (changed["previousParentId"], changed["newParentId"]) == (b, a)
    owner.set_parent(c, 0)
    assert owner.twin(c).parent_id == 0
    reverts("TwinNotFound", lambda: owner.set_parent(c, 77), twinId=77)


def test_hierarchy_depth_is_bounded(ledger_as, accounts):
    owner = ledger_as(accounts[1])
    parent = 0
    for _ in range(8):  # a chain of 8: the deepest twin has 7 ancestors
        parent, _ = owner.register("component", parent_id=parent)
    ninth, _ = owner.register("component", parent_id=parent)  # 8 ancestors: still within MAX_DEPTH
    reverts("HierarchyTooDeep", lambda: owner.register("component", parent_id=ninth), parentId=ninth, maxDepth=8)


def test_set_parent_needs_control_of_both_twins(ledger_as, accounts):
    mine, theirs = ledger_as(accounts[1]), ledger_as(accounts[2])
    child, _ = mine.register("component")
    foreign, _ = theirs.register("system")
    reverts("NotTwinController", lambda: mine.set_parent(child, foreign), twinId=foreign)
    reverts("NotTwinController", lambda: theirs.set_parent(child, foreign), twinId=child)


def test_transfer_approvals_and_operators(ledger_as, accounts):
    owner, operator, buyer = ledger_as(accounts[1]), ledger_as(accounts[2]), ledger_as(accounts[3])
    twin, _ = owner.register("asset")
    reverts("ERC721InsufficientApproval", lambda: operator.transfer(twin, accounts[3].address))
    owner.approve(accounts[2].address, twin)
    assert operator.is_controller(twin, accounts[2].address)
    operator.transfer(twin, accounts[3].address)
    assert owner.owner_of(twin) == accounts[3].address
    assert owner.contract.functions.getApproved(twin).call() == ZERO  # approval cleared by the transfer
    assert not owner.is_controller(twin, accounts[2].address)
    buyer.set_approval_for_all(accounts[2].address, True)
    operator.transfer(twin, accounts[1].address)
    assert (owner.balance_of(accounts[1].address), owner.balance_of(accounts[3].address)) == (1, 0)


def test_erc721_reverts(ledger_as, accounts, deployment):
    owner, stranger = ledger_as(accounts[1]), ledger_as(accounts[2])
    twin, _ = owner.register("asset")
    fn = owner.contract.functions
    reverts("ERC721InvalidOwner", lambda: owner.balance_of(ZERO))
    reverts("ERC721NonexistentToken", lambda: owner.owner_of(42), tokenId=42)
    reverts("ERC721NonexistentToken", lambda: owner.client.call(fn.getApproved(42)))
    reverts("ERC721InvalidApprover", lambda: stranger.approve(accounts[2].address, twin))
    reverts("ERC721InvalidOperator", lambda: owner.client.send(fn.setApprovalForAll(ZERO, True)))
    reverts("ERC721InvalidReceiver", lambda: owner.client.send(fn.transferFrom(accounts[1].address, ZERO, twin)))
    reverts(
        "ERC721IncorrectOwner",
        lambda: owner.client.send(fn.transferFrom(accounts[2].address, accounts[3].address, twin)),
    )
    reverts(
        "ERC721NonexistentToken",
        lambda: owner.client.send(fn.transferFrom(accounts[1].address, accounts[2].address, 9)),
    )
    # A contract that does not implement onERC721Received cannot receive a twin by safe transfer.
    reverts("ERC721InvalidReceiver", lambda: owner.transfer(twin, deployment.federated_ledger, safe=True))
    assert owner.owner_of(twin) == accounts[1].address


def test_twin_of_unknown_and_interfaces(ledger_as, accounts):
    owner = ledger_as(accounts[1])
    reverts("TwinNotFound", lambda: owner.twin(5), twinId=5)
    assert owner.contract.functions.supportsInterface(bytes.fromhex("80ac58cd")).call()  # IERC721
    assert owner.contract.functions.supportsInterface(bytes.fromhex("01ffc9a7")).call()  # IERC165
    assert not owner.contract.functions.supportsInterface(bytes.fromhex("ffffffff")).call()
    assert owner.contract.functions.name().call() == "twinledger twin"
    assert not owner.is_controller(5, accounts[1].address)


@pytest.mark.parametrize("kind", list(TwinKind))
def test_every_kind_registers(ledger_as, accounts, kind):
    owner = ledger_as(accounts[1])
    twin, _ = owner.register(kind)
    assert owner.twin(twin).kind == kind


def test_every_transfer_starts_an_ownership_period_and_the_counter_never_wraps(ledger_as, accounts, anvil):
    owner, buyer = ledger_as(accounts[1]), ledger_as(accounts[2])
    parent, _ = owner.register("system")
    twin, _ = owner.register("asset", parent_id=parent)
    assert owner.twin(twin).period == 0
    owner.transfer(twin, buyer.client.address)
    buyer.transfer(twin, owner.client.address)
    record = owner.twin(twin)
    assert (record.owner, record.parent_id, record.kind, record.period) == (
        owner.client.address,
        parent,
        TwinKind.ASSET,
        2,
    )  # fmt: skip  (the transfer's single SSTORE keeps parent and kind)

    # The last period a uint16 holds: one more transfer would wrap to a period whose grants could revive.
    slot = int.from_bytes(keccak(twin.to_bytes(32, "big") + (0).to_bytes(32, "big")), "big")  # _twins is slot 0
    word = int(rpc_call(anvil, "eth_getStorageAt", [owner.address, hex(slot), "latest"]), 16)
    rpc_call(anvil, "anvil_setStorageAt", [owner.address, hex(slot), "0x%064x" % (word | 0xFFFF << 240)])
    assert owner.twin(twin).period == 0xFFFF
    reverts("OwnershipPeriodsExhausted", lambda: owner.transfer(twin, buyer.client.address), twinId=twin)
    assert owner.twin(twin).owner == owner.client.address
