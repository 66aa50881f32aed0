"""Offline verification: a genuine provenance CAR verifies; a tampered manifest, receipt or anchor fails exactly."""

from __future__ import annotations

import io
import json
from typing import Any

import dag_cbor
import pytest
from eth_account.signers.local import LocalAccount
from multiformats import CID

from tests.sdk.conftest import PASSPHRASE, Stack, client_for
from twinledger.chain.client import ChainClient
from twinledger.chain.ledger import TwinLedger
from twinledger.chain.types import BatchKind
from twinledger.client import parse_expiry
from twinledger.identity import DidKey
from twinledger.ipfs.cids import block_cid, to_cid
from twinledger.merkle import StandardMerkleTree
from twinledger.provenance import json_block
from twinledger.verify import VerificationFailed, index_block, read_bundle, verify_twin, write_bundle


@pytest.fixture(scope="module")
def provenance(stack: Stack) -> tuple[int, bytes]:
    """A twin with two device snapshots and one read, all anchored; its provenance CAR."""
    device = DidKey.generate()
    researcher = stack.store.unlock("researcher", PASSPHRASE)
    with client_for(stack, "owner") as tl, client_for(stack, "researcher") as reader:
        twin = tl.register_twin("asset", device_did=device.did).twin_id
        tl.push_snapshot(twin, b"first", as_device=device)
        tl.push_snapshot(twin, b"second", as_device=device)
        tl.grant(twin, researcher.did_key.did, purpose="research", scopes="read", expiry=parse_expiry("1d"))
        reader.fetch_snapshot(twin, 2, purpose="research")
        tl.wait_anchored(twin, 2)
        for _ in range(200):  # until both snapshots and the read's receipt are anchored
            statuses = [e.proof.get("status") for e in tl.audit(twin) if e.kind in ("snapshot", "read")]
            if statuses == ["anchored"] * 3:
                return twin, tl.provenance_car(twin)
            stack.node.runtime.anchors.tick(force=True)
        raise AssertionError(f"not all anchored: {statuses}")


def _rebuild(car: bytes, replace: dict[bytes, bytes], relink: dict[str, Any] | None = None) -> bytes:
    """The CAR with some blocks replaced (new CIDs) and the index pointing at them."""
    index, blocks = read_bundle(io.BytesIO(car))
    lists = {"manifests": index.manifests, "batches": index.batches, "receipts": index.receipts}
    out_blocks = dict(blocks.data)
    for old, new_data in replace.items():
        cid = next(c for group in lists.values() for c in group if bytes(c) == old)
        is_cbor = cid.codec.name == "dag-cbor"
        new = to_cid(block_cid(new_data, codec=0x71 if is_cbor else 0x55, version=1))
        out_blocks[bytes(new)] = new_data
        for name, group in lists.items():
            lists[name] = [new if bytes(c) == old else c for c in group]
    root = index_block(
        index.twin_id, index.chain_id, index.registry, lists["manifests"], lists["batches"], lists["receipts"]
    )
    out = io.BytesIO()
    write_bundle(out, root, [(CID.decode(k), v) for k, v in out_blocks.items()])
    return out.getvalue()


def test_genuine_car_verifies(stack: Stack, provenance: tuple[int, bytes]):
    twin, car = provenance
    with client_for(stack, "owner") as tl:
        lines: list[str] = []
        report = verify_twin(tl.ledger, twin, io.BytesIO(car), on_check=lines.append)
    assert (report.snapshots, report.receipts) == (2, 1) and report.batches >= 2 and not report.pending
    assert any("snapshot #2" in line and "Merkle proof" in line for line in lines)
    assert report.node_dids == {tl.node.did}


def test_tampered_manifest_fails(stack: Stack, provenance: tuple[int, bytes]):
    twin, car = provenance
    index, blocks = read_bundle(io.BytesIO(car))
    manifest = json.loads(blocks.get(index.manifests[1]))
    manifest["plaintext"]["size"] += 1  # one field changed; the block re-encoded canonically
    forged = _rebuild(car, {bytes(index.manifests[1]): json_block(manifest).data})
    with client_for(stack, "owner") as tl, pytest.raises(VerificationFailed, match=r"snapshot #2 .*node's signature"):
        verify_twin(tl.ledger, twin, io.BytesIO(forged))


def test_tampered_receipt_fails(stack: Stack, provenance: tuple[int, bytes]):
    twin, car = provenance
    index, blocks = read_bundle(io.BytesIO(car))
    receipt = json.loads(blocks.get(index.receipts[0]))
    receipt["reader"] = DidKey.generate().did  # blame someone else for the read
    forged = _rebuild(car, {bytes(index.receipts[0]): json_block(receipt).data})
    with client_for(stack, "owner") as tl, pytest.raises(VerificationFailed, match=r"receipt .*node's signature"):
        verify_twin(tl.ledger, twin, io.BytesIO(forged))


def test_tampered_anchor_fails(stack: Stack, provenance: tuple[int, bytes]):
    twin, car = provenance
    index, blocks = read_bundle(io.BytesIO(car))
    snapshot_batch = next(c for c in index.batches if dag_cbor.decode(blocks.get(c))["kind"] == "snapshots")
    document = dag_cbor.decode(blocks.get(snapshot_batch))
    # A batch whose tree is rebuilt consistently over a forged leaf: its root was never anchored on chain.
    values = [[int(v["value"][0]), int(v["value"][1]), bytes.fromhex("ab" * 32)] for v in document["tree"]["values"]]
    tree = StandardMerkleTree.of(values, ["uint256", "uint256", "bytes32"])
    forged_doc = {**document, "tree": tree.dump()}
    forged = _rebuild(car, {bytes(snapshot_batch): dag_cbor.encode(forged_doc)})
    with (
        client_for(stack, "owner") as tl,
        pytest.raises(VerificationFailed, match=r"is not anchored by 0x\w+ on chain"),
    ):
        verify_twin(tl.ledger, twin, io.BytesIO(forged))


def test_anchor_by_another_account_does_not_count(
    stack: Stack, provenance: tuple[int, bytes], accounts: list[LocalAccount]
):
    """Someone anchors the node's snapshot root under their own account, with a batch block naming them: the
    manifests the node signed name the node's account, so that anchor anchors nothing of theirs."""
    twin, car = provenance
    index, blocks = read_bundle(io.BytesIO(car))
    snapshot_batch = next(c for c in index.batches if dag_cbor.decode(blocks.get(c))["kind"] == "snapshots")
    document = dag_cbor.decode(blocks.get(snapshot_batch))
    copier = accounts[6]
    copied = dag_cbor.encode({**document, "anchorer": copier.address})
    with client_for(stack, "owner") as tl:
        stranger = TwinLedger(ChainClient(stack.rpc_url, copier), tl.ledger.address)
        root = bytes.fromhex(document["tree"]["tree"][0][2:])
        cid = to_cid(block_cid(copied, codec=0x71, version=1))
        stranger.anchor_batch(BatchKind.SNAPSHOTS, root, len(document["tree"]["values"]), str(cid))
        forged = _rebuild(car, {bytes(snapshot_batch): copied})
        with pytest.raises(VerificationFailed, match=r"snapshot #1 .* is not a leaf of any batch anchored on chain"):
            verify_twin(tl.ledger, twin, io.BytesIO(forged))


def test_omitted_snapshot_and_wrong_twin_fail(stack: Stack, provenance: tuple[int, bytes]):
    twin, car = provenance
    index, blocks = read_bundle(io.BytesIO(car))
    root = index_block(twin, index.chain_id, index.registry, index.manifests[:1], index.batches, [])
    out = io.BytesIO()
    write_bundle(out, root, [(CID.decode(k), v) for k, v in blocks.data.items()])
    with client_for(stack, "owner") as tl:
        with pytest.raises(VerificationFailed, match=r"anchors snapshot #2 .* which the CAR omits"):
            verify_twin(tl.ledger, twin, io.BytesIO(out.getvalue()))
        with pytest.raises(VerificationFailed, match=f"provenance of twin {twin}, not twin {twin + 1000}"):
            verify_twin(tl.ledger, twin + 1000, io.BytesIO(car))
