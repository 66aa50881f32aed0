"""Offline verification: a genuine provenance CAR verifies; a tampered manifest, receipt or anchor fails exactly."""

from __future__ import annotations

import io
import json

import pytest
from multiformats import CID

from tests.sdk.conftest import PASSPHRASE, Stack, client_for
from twinledger.chain.client import ChainClient
from twinledger.chain.ledger import TwinLedger
from twinledger.chain.types import BatchKind
from twinledger.client import parse_expiry
from twinledger.identity import DidKey
from twinledger.merkle import StandardMerkleTree
from twinledger.provenance import json_block
from twinledger.verify import Anchor, Entry, VerificationFailed, index_blocks, read_bundle, verify_twin, write_bundle


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


def _rebuild(car: bytes, replace: dict[bytes, bytes]) -> bytes:
    """The CAR with some record blocks replaced (new CIDs) and the index pointing at them, proofs unchanged."""
    index, blocks = read_bundle(io.BytesIO(car))
    out_blocks = dict(blocks.data)
    lists = {"snapshots": index.snapshots, "receipts": index.receipts}
    for old, new_data in replace.items():
        new = json_block(json.loads(new_data)).cid
        out_blocks[bytes(new)] = new_data
        for name, group in lists.items():
            lists[name] = [Entry(new, e.anchor) if bytes(e.cid) == old else e for e in group]
    root = index_blocks(index.twin_id, index.chain_id, index.registry, lists["snapshots"], lists["receipts"])
    out = io.BytesIO()
    write_bundle(out, root, [(CID.decode(k), v) for k, v in out_blocks.items()])
    return out.getvalue()


def test_genuine_car_verifies(stack: Stack, provenance: tuple[int, bytes]):
    twin, car = provenance
    with client_for(stack, "owner") as tl:
        lines: list[str] = []
        report = verify_twin(tl.ledger, twin, io.BytesIO(car), on_check=lines.append)
    assert (report.snapshots, report.receipts) == (2, 1) and report.batches >= 2 and not report.pending
    assert not report.withheld
    assert any("snapshot #2" in line and "Merkle proof" in line for line in lines)
    assert report.node_dids == {tl.node.did}


def test_tampered_manifest_fails(stack: Stack, provenance: tuple[int, bytes]):
    twin, car = provenance
    index, blocks = read_bundle(io.BytesIO(car))
    manifest = json.loads(blocks.get(index.snapshots[1].cid))
    manifest["plaintext"]["size"] += 1  # one field changed; the block re-encoded canonically
    forged = _rebuild(car, {bytes(index.snapshots[1].cid): json_block(manifest).data})
    with client_for(stack, "owner") as tl, pytest.raises(VerificationFailed, match=r"snapshot #2 .*node's signature"):
        verify_twin(tl.ledger, twin, io.BytesIO(forged))


def test_tampered_receipt_fails(stack: Stack, provenance: tuple[int, bytes]):
    twin, car = provenance
    index, blocks = read_bundle(io.BytesIO(car))
    receipt = json.loads(blocks.get(index.receipts[0].cid))
    receipt["reader"] = DidKey.generate().did  # blame someone else for the read
    forged = _rebuild(car, {bytes(index.receipts[0].cid): json_block(receipt).data})
    with client_for(stack, "owner") as tl, pytest.raises(VerificationFailed, match=r"receipt .*node's signature"):
        verify_twin(tl.ledger, twin, io.BytesIO(forged))


def _reindex(car: bytes, snapshots: list[Entry], receipts: list[Entry]) -> bytes:
    index, blocks = read_bundle(io.BytesIO(car))
    root = index_blocks(index.twin_id, index.chain_id, index.registry, snapshots, receipts)
    out = io.BytesIO()
    write_bundle(out, root, [(CID.decode(k), v) for k, v in blocks.data.items()])
    return out.getvalue()


def test_tampered_anchor_fails(stack: Stack, provenance: tuple[int, bytes]):
    twin, car = provenance
    index, _ = read_bundle(io.BytesIO(car))
    first = index.snapshots[0]
    assert first.anchor is not None
    # A proof that leads to a root of its own making: a tree over the genuine leaf and a forged one.
    forged_tree = StandardMerkleTree.of(
        [[twin, 1, bytes(first.cid.raw_digest)], [twin, 9, bytes.fromhex("ab" * 32)]], ["uint256", "uint256", "bytes32"]
    )
    forged_anchor = Anchor(forged_tree.root, forged_tree.proof(0))
    forged = _reindex(car, [Entry(first.cid, forged_anchor), *index.snapshots[1:]], index.receipts)
    # and a genuine root with a proof that does not lead there
    wrong_proof = Anchor(first.anchor.root, [bytes.fromhex("cd" * 32), *first.anchor.proof[1:]])
    misproved = _reindex(car, [Entry(first.cid, wrong_proof), *index.snapshots[1:]], index.receipts)
    with client_for(stack, "owner") as tl:
        with pytest.raises(VerificationFailed, match=r"snapshot #1 .*is not anchored by 0x\w+ on chain"):
            verify_twin(tl.ledger, twin, io.BytesIO(forged))
        with pytest.raises(VerificationFailed, match=r"snapshot #1 .*Merkle proof does not lead to batch root"):
            verify_twin(tl.ledger, twin, io.BytesIO(misproved))


def test_omitted_records_and_wrong_twin_fail(stack: Stack, provenance: tuple[int, bytes]):
    twin, car = provenance
    index, _ = read_bundle(io.BytesIO(car))
    with client_for(stack, "owner") as tl:
        # leaving the first snapshot out renumbers the second: its leaf (twin, 1, digest) was never anchored
        with pytest.raises(VerificationFailed, match=r"snapshot #1 .*(seq 2|Merkle proof)"):
            verify_twin(tl.ledger, twin, io.BytesIO(_reindex(car, index.snapshots[1:], index.receipts)))
        with pytest.raises(VerificationFailed, match=r"names snapshot #2 .* not in the chain of manifests"):
            verify_twin(tl.ledger, twin, io.BytesIO(_reindex(car, index.snapshots[:1], index.receipts)))
        with pytest.raises(VerificationFailed, match=f"provenance of twin {twin}, not twin {twin + 1000}"):
            verify_twin(tl.ledger, twin + 1000, io.BytesIO(car))


def test_a_withheld_manifest_fails_unless_allowed_and_is_then_reported(stack: Stack, provenance: tuple[int, bytes]):
    twin, car = provenance
    index, blocks = read_bundle(io.BytesIO(car))
    kept = {k: v for k, v in blocks.data.items() if k != bytes(index.snapshots[0].cid)}
    root = index_blocks(index.twin_id, index.chain_id, index.registry, index.snapshots, index.receipts)
    out = io.BytesIO()
    write_bundle(out, root, [(CID.decode(k), v) for k, v in kept.items()])
    with client_for(stack, "owner") as tl:
        with pytest.raises(VerificationFailed, match=r"snapshot #1 .*withholds this manifest"):
            verify_twin(tl.ledger, twin, io.BytesIO(out.getvalue()))
        report = verify_twin(tl.ledger, twin, io.BytesIO(out.getvalue()), allow_withheld=True)
    assert report.withheld == [str(index.snapshots[0].cid)] and report.snapshots == 2


def test_only_the_anchorer_the_node_signed_counts(stack: Stack, provenance: tuple[int, bytes], accounts):
    """Someone anchors the node's snapshot root under their own account and names themselves in the CAR index: a
    present manifest is checked under the anchorer the node signed into it, and a withheld one under the index's
    only if that is an account the node's signed records name."""
    twin, car = provenance
    index, blocks = read_bundle(io.BytesIO(car))
    first = index.snapshots[0]
    assert first.anchor is not None and first.anchor.anchorer is not None
    copier = accounts[6]
    with client_for(stack, "owner") as tl:
        stranger = TwinLedger(ChainClient(stack.rpc_url, copier), tl.ledger.address)
        stranger.anchor_batch(BatchKind.SNAPSHOTS, first.anchor.root, 1, str(first.cid))
        claimed = Entry(first.cid, Anchor(first.anchor.root, first.anchor.proof, copier.address))
        relabelled = _reindex(car, [claimed, *index.snapshots[1:]], index.receipts)
        assert verify_twin(tl.ledger, twin, io.BytesIO(relabelled)).snapshots == len(index.snapshots)
        kept = {k: v for k, v in blocks.data.items() if k != bytes(first.cid)}
        root = index_blocks(
            index.twin_id, index.chain_id, index.registry, [claimed, *index.snapshots[1:]], index.receipts
        )
        out = io.BytesIO()
        write_bundle(out, root, [(CID.decode(k), v) for k, v in kept.items()])
        with pytest.raises(VerificationFailed, match=rf"says {copier.address} anchored it, but the node's signed"):
            verify_twin(tl.ledger, twin, io.BytesIO(out.getvalue()), allow_withheld=True)


def test_a_version_2_car_with_its_entries_in_the_root_still_verifies(stack: Stack, provenance: tuple[int, bytes]):
    """Version 3 links pages of entries from the root; a version 2 CAR (every entry in the root, as nodes before
    the export served) is still read."""
    import dag_cbor

    from twinledger.ipfs.cids import block_cid, to_cid
    from twinledger.verify.bundle import PAGE_TYPE

    twin, car = provenance
    index, blocks = read_bundle(io.BytesIO(car))
    root_cid = CID.decode(bytes(next(iter(blocks.data))))  # the root comes first
    pages = dag_cbor.decode(blocks.get(root_cid))
    assert pages["version"] == 3 and all(isinstance(p, CID) for p in pages["snapshots"] + pages["receipts"])
    assert dag_cbor.decode(blocks.get(pages["snapshots"][0]))["type"] == PAGE_TYPE
    document = {
        "type": "twinledger/provenance", "version": 2, "twinId": index.twin_id, "chainId": index.chain_id,
        "registry": index.registry, "snapshots": [e.as_cbor() for e in index.snapshots],
        "receipts": [e.as_cbor() for e in index.receipts],
    }  # fmt: skip
    data = dag_cbor.encode(document)
    old = io.BytesIO()
    records = [
        (CID.decode(k), v)
        for k, v in blocks.data.items()
        if k not in {bytes(root_cid), *map(bytes, pages["snapshots"] + pages["receipts"])}
    ]
    write_bundle(old, [(to_cid(block_cid(data, codec=0x71, version=1)), data)], records)
    assert read_bundle(io.BytesIO(old.getvalue()))[0] == index
    with client_for(stack, "owner") as tl:
        assert verify_twin(tl.ledger, twin, io.BytesIO(old.getvalue())).snapshots == 2
