"""`verify_twin`: a twin's whole provenance checked from a provenance CAR and the chain, trusting no node."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, BinaryIO

import dag_cbor
from multiformats import CID

from twinledger.chain.ledger import TwinLedger
from twinledger.chain.types import BatchKind
from twinledger.errors import TwinledgerError
from twinledger.ipfs import parse_cid
from twinledger.merkle import StandardMerkleTree
from twinledger.provenance import RECEIPT_LEAF_TYPES, SNAPSHOT_LEAF_TYPES, read_json_block, receipt_digest
from twinledger.verify.bundle import Blocks, read_bundle
from twinledger.verify.checks import (
    RECEIPT_TYPE,
    VerificationFailed,
    _fail,
    check_anchor,
    check_node_signature,
    check_producer,
    check_reader_request,
    read_manifest,
    record_anchorer,
    run,
    sha256,
)


@dataclass
class VerifyReport:
    """What `verify_twin` established, one line per check, plus counts."""

    twin_id: int
    snapshots: int = 0
    receipts: int = 0
    batches: int = 0
    pending: list[str] = field(default_factory=list)
    lines: list[str] = field(default_factory=list)
    node_dids: set[str] = field(default_factory=set)

    def as_dict(self) -> dict[str, Any]:
        return {
            "twinId": self.twin_id,
            "verified": True,
            "snapshots": self.snapshots,
            "receipts": self.receipts,
            "batches": self.batches,
            "pending": self.pending,
            "nodeDids": sorted(self.node_dids),
            "checks": self.lines,
        }


@dataclass(frozen=True)
class _Batch:
    cid: CID
    kind: BatchKind
    anchorer: str
    tree: StandardMerkleTree
    records: list[bytes]

    def position(self, leaf: tuple[Any, ...]) -> int | None:
        try:
            return self.tree.values.index(leaf)
        except ValueError:
            return None


def _cid_or_none(text: Any) -> CID | None:
    """A CID named in a record, in any multibase; None for null or text that is no CID (reported as a mismatch)."""
    if text is None:
        return None
    try:
        return parse_cid(str(text))
    except TwinledgerError:
        return None


def _leaf_value(kind: str, raw: Any) -> Any:
    return int(raw) if kind == "uint256" else bytes.fromhex(str(raw).removeprefix("0x"))


def _load_batch(ledger: TwinLedger, cid: CID, blocks: Blocks) -> _Batch:
    """Decode a batch block, rebuild its tree from the leaf values, and check the chain anchored that root with
    this block as its leaf list."""
    what = f"batch {cid}"
    try:
        document: Any = dag_cbor.decode(blocks.get(cid))
        dump = document["tree"]
        kind = {"snapshots": BatchKind.SNAPSHOTS, "access_receipts": BatchKind.ACCESS_RECEIPTS}[document["kind"]]
        types = list(dump["leafEncoding"])
        values = [
            tuple(_leaf_value(t, v) for t, v in zip(types, entry["value"], strict=True))
            for entry in sorted(dump["values"], key=lambda e: -int(e["treeIndex"]))
        ]
        records = [bytes(c) for c in document["records"]]
        anchorer = record_anchorer(document, what)
    except TwinledgerError:
        raise
    except Exception as error:  # any shape error in a block we did not write ourselves
        raise _fail(f"{what} is not a twinledger batch block: {error.__class__.__name__}") from None
    expected_types = SNAPSHOT_LEAF_TYPES if kind is BatchKind.SNAPSHOTS else RECEIPT_LEAF_TYPES
    if tuple(types) != expected_types:
        raise _fail(f"{what}: leaf encoding {types} is not {list(expected_types)}")
    tree = StandardMerkleTree.of(values, types)
    if ["0x" + n.hex() for n in tree.tree] != list(dump["tree"]):
        raise _fail(f"{what}: its Merkle tree does not match its leaves (root {dump['tree'][0]})")
    root = "0x" + tree.root.hex()
    at, on_chain_kind, count = ledger.batch_of(anchorer, tree.root)
    if at == 0:
        raise _fail(f"{what}: its root {root} is not anchored by {anchorer} on chain {ledger.client.chain_id}")
    if on_chain_kind is not kind or count != len(values):
        raise _fail(
            f"{what}: {anchorer} anchored root {root} as {count} {on_chain_kind.name.lower()} leaves, the "
            f"block holds {len(values)} {kind.name.lower()}"
        )
    logs = ledger.contract.events.BatchAnchored().get_logs(
        from_block=0, argument_filters={"root": tree.root, "anchorer": anchorer}
    )
    if not logs or bytes(_cid_or_none(logs[-1]["args"]["leavesCid"]) or b"") != bytes(cid):
        raise _fail(
            f"{what}: {anchorer} anchored root {root} with another leaf list "
            f"({logs[-1]['args']['leavesCid'] if logs else 'none'})"
        )
    return _Batch(cid, kind, anchorer, tree, records)


def _anchoring_batch(
    batches: list[_Batch], kind: BatchKind, leaf: tuple[Any, ...], what: str, allow_pending: bool, anchorer: str
) -> tuple[_Batch, int] | None:
    """The batch of `kind` anchored by `anchorer` (the account the node-signed record names) holding `leaf`, and
    its position; None (only when pending is allowed) if none."""
    for batch in batches:
        if batch.kind is kind and batch.anchorer == anchorer and (position := batch.position(leaf)) is not None:
            return batch, position
    if not allow_pending:
        raise _fail(
            f"{what} is not a leaf of any batch anchored on chain",
            hint="the node anchors in batches: retry in a minute, or pass --allow-pending",
        )
    return None


def verify_twin(
    ledger: TwinLedger,
    twin_id: int,
    car: BinaryIO,
    *,
    allow_pending: bool = False,
    on_check: Callable[[str], None] | None = None,
) -> VerifyReport:
    """Check twin `twin_id`'s provenance CAR against the chain; raise VerificationFailed at the first mismatch.

    Checked: every block's hash; the manifest chain (sequence numbers 1..n, `previous` hash links, twin, chain and
    registry); the node's signature and the producer's own request signature on every manifest; that each batch
    block's Merkle tree rebuilds from its leaves and that the chain anchored exactly that root with that leaf list;
    that every manifest and receipt is a leaf of such a batch; every receipt's node signature and the reader's
    signed request; and that the twin's on-chain head anchor, if any, is in the chain of manifests.

    >>> with open("twin-7.car", "rb") as car:  # doctest: +SKIP
    ...     report = verify_twin(ledger, 7, car)
    """
    report = VerifyReport(twin_id)

    def ok(line: str) -> None:
        report.lines.append(line)
        if on_check:
            on_check(line)

    index, blocks = read_bundle(car)
    chain_id, registry = ledger.client.chain_id, ledger.address
    if index.twin_id != twin_id:
        raise _fail(f"the CAR is the provenance of twin {index.twin_id}, not twin {twin_id}")
    if index.chain_id != chain_id or index.registry.lower() != registry.lower():
        raise _fail(
            f"the CAR is for chain {index.chain_id} / {index.registry}, the RPC is chain {chain_id} / {registry}",
            hint="pass the --rpc-url of the chain this twin lives on",
        )
    ok(f"CAR: {len(blocks.data)} blocks, each matches its CID")
    record = ledger.twin(twin_id)
    ok(f"twin {twin_id} exists on chain {chain_id} (owner {record.owner})")

    batches = [_load_batch(ledger, cid, blocks) for cid in index.batches]
    for batch in batches:
        ok(
            f"batch {batch.cid}: {len(batch.tree.values)} {batch.kind.name.lower()} leaves, root "
            f"0x{batch.tree.root.hex()[:16]}… anchored on chain by {batch.anchorer}"
        )
    report.batches = len(batches)

    previous: CID | None = None
    manifests: dict[bytes, dict[str, Any]] = {}
    for position, cid in enumerate(index.manifests, start=1):
        what = f"snapshot #{position} ({cid})"
        data = blocks.get(cid)
        manifest = read_manifest(cid, data, twin_id=twin_id, chain_id=chain_id, registry=registry)
        if manifest["seq"] != position:
            raise _fail(f"{what}: the manifest says seq {manifest['seq']}; the chain of manifests has a gap")
        if (_cid_or_none(manifest["previous"]) or None) != previous:
            raise _fail(f"{what}: hash link broken: previous is {manifest['previous']}, expected {previous}")
        report.node_dids.add(run(check_node_signature(manifest, what)))
        producer = run(check_producer(manifest, what))
        leaf = (twin_id, position, sha256(data))
        anchorer = record_anchorer(manifest, what)
        found = _anchoring_batch(batches, BatchKind.SNAPSHOTS, leaf, what, allow_pending, anchorer)
        if found is None:
            report.pending.append(str(cid))
            ok(f"snapshot #{position}: signed by producer {producer}, hash-linked; NOT YET ANCHORED")
        else:
            batch, i = found
            if bytes(cid) not in batch.records:
                raise _fail(f"{what}: batch {batch.cid} anchors its digest but does not link the manifest")
            proof = ["0x" + p.hex() for p in batch.tree.proof(i)]
            check_anchor(
                ledger, BatchKind.SNAPSHOTS, leaf, "0x" + batch.tree.root.hex(), proof, what, anchorer=anchorer
            )
            ok(
                f"snapshot #{position}: signed by producer {producer}, hash-linked, Merkle proof to anchored root "
                f"0x{batch.tree.root.hex()[:16]}…"
            )
        manifests[bytes(cid)] = manifest
        previous = cid
    report.snapshots = len(index.manifests)
    for batch in batches:  # a batch may not anchor snapshots of this twin that the CAR leaves out
        for value in batch.tree.values:
            if batch.kind is BatchKind.SNAPSHOTS and value[0] == twin_id and value[1] > len(index.manifests):
                raise _fail(f"batch {batch.cid} anchors snapshot #{value[1]} of twin {twin_id}, which the CAR omits")
    if record.head_seq:
        if record.head_seq > len(index.manifests):
            raise _fail(f"the chain's head anchor is snapshot #{record.head_seq}, the CAR has {len(index.manifests)}")
        ok(f"on-chain head anchor #{record.head_seq} is within the chain of manifests")

    for cid in index.receipts:
        what = f"receipt {cid}"
        try:
            receipt = read_json_block(cid, blocks.get(cid))
        except TwinledgerError as error:
            raise _fail(f"{what}: {error.message}") from None
        if receipt.get("type") != RECEIPT_TYPE or receipt.get("twinId") != twin_id:
            raise _fail(f"{what} is not an access receipt of twin {twin_id}")
        named = manifests.get(bytes(_cid_or_none(receipt.get("manifestCid")) or b""))
        if named is None or named["seq"] != receipt.get("seq"):
            raise _fail(
                f"{what}: names snapshot #{receipt.get('seq')} ({receipt.get('manifestCid')}), which is not "
                f"in the chain of manifests"
            )
        report.node_dids.add(run(check_node_signature(receipt, what)))
        reader = run(check_reader_request(receipt, what))
        receipt_leaf = (twin_id, receipt_digest(receipt))
        anchorer = record_anchorer(receipt, what)
        found = _anchoring_batch(batches, BatchKind.ACCESS_RECEIPTS, receipt_leaf, what, allow_pending, anchorer)
        if found is None:
            report.pending.append(str(cid))
            ok(f"read of snapshot #{receipt['seq']} by {reader}: signed; NOT YET ANCHORED")
            continue
        batch, i = found
        proof = ["0x" + p.hex() for p in batch.tree.proof(i)]
        check_anchor(
            ledger,
            BatchKind.ACCESS_RECEIPTS,
            receipt_leaf,
            "0x" + batch.tree.root.hex(),
            proof,
            what,
            anchorer=anchorer,
        )
        ok(
            f"read of snapshot #{receipt['seq']} by {reader} for purpose {receipt['purpose'][:10]}…: receipt signed, "
            f"reader's request signed, Merkle proof to anchored root 0x{batch.tree.root.hex()[:16]}…"
        )
    report.receipts = len(index.receipts)
    return report


__all__ = ["VerificationFailed", "VerifyReport", "verify_twin"]
