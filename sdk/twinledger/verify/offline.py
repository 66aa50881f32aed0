"""`verify_twin`: a twin's whole provenance checked from a provenance CAR and the chain, trusting no node."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, BinaryIO

from multiformats import CID

from twinledger.chain.ledger import TwinLedger
from twinledger.chain.types import BatchKind
from twinledger.errors import TwinledgerError
from twinledger.ipfs import parse_cid
from twinledger.provenance import (
    DENIAL_TYPE,
    RECEIPT_GENESIS,
    read_json_block,
    receipt_digest,
    receipt_leaf,
    snapshot_leaf,
)
from twinledger.verify.bundle import Entry, ProvenanceIndex, StagedBlocks, read_bundle
from twinledger.verify.checks import (
    RECEIPT_TYPE,
    AnchorCheck,
    VerificationFailed,
    _fail,
    check_anchor,
    check_denial,
    check_node_signature,
    check_producer,
    check_reader_request,
    read_manifest,
    record_anchorer,
    run,
)

RAW, SHA2_256 = "raw", "sha2-256"


@dataclass
class VerifyReport:
    """What `verify_twin` established, one line per check, plus counts."""

    twin_id: int
    snapshots: int = 0
    receipts: int = 0
    denials: int = 0  # denial records (refused reads) in the same chain as the receipts
    batches: int = 0
    pending: list[str] = field(default_factory=list)
    withheld: list[str] = field(default_factory=list)  # manifests left out of an AUDIT-only view (CID only)
    lines: list[str] = field(default_factory=list)
    checks: list[dict[str, Any]] = field(default_factory=list)  # the same checks, one object each, for --json
    node_dids: set[str] = field(default_factory=set)
    anchors_checked: bool = True  # False when verified without the chain: signatures and hash links only

    def as_dict(self) -> dict[str, Any]:
        return {
            "twinId": self.twin_id,
            "verified": True,
            "snapshots": self.snapshots,
            "receipts": self.receipts,
            "denials": self.denials,
            "batches": self.batches,
            "pending": self.pending,
            "withheld": self.withheld,
            "nodeDids": sorted(self.node_dids),
            "anchorsChecked": self.anchors_checked,
            "checks": self.checks,
        }


def _cid_or_none(text: Any) -> CID | None:
    """A CID named in a record, in any multibase; None for null or text that is no CID (reported as a mismatch)."""
    if text is None:
        return None
    try:
        return parse_cid(str(text))
    except TwinledgerError:
        return None


def _record_digest(entry: Entry, what: str) -> bytes:
    """The sha256 inside a record's CID (v1, raw, sha2-256): the digest its Merkle leaf anchors."""
    cid = entry.cid
    if cid.version != 1 or cid.codec.name != RAW or cid.hashfun.name != SHA2_256:
        raise _fail(f"{what}: {cid} is not a CIDv1 of a raw block hashed with sha2-256")
    return bytes(cid.raw_digest)


def _anchored(
    ledger: TwinLedger | None,
    kind: BatchKind,
    leaf: tuple[Any, ...],
    entry: Entry,
    what: str,
    seen: dict[tuple[str, bytes], AnchorCheck],
    allow_pending: bool,
    anchorer: str | None,
) -> AnchorCheck | None:
    """The entry's leaf and Merkle proof against its batch root as anchored on chain by `anchorer` (the account the
    node-signed record names); None for a pending one, when allowed, and for every one without a chain (`ledger`
    None: the caller said the anchors are not to be checked)."""
    if ledger is None:
        return None
    if entry.anchor is None:
        if not allow_pending:
            raise _fail(
                f"{what} is not anchored on chain yet",
                hint="the node anchors in batches: retry in a minute, or pass --allow-pending",
            )
        return None
    if anchorer is None:  # a withheld manifest: the index names the anchorer, checked against the signed records
        anchorer = entry.anchor.anchorer
        if anchorer is None:
            raise _fail(f"{what}: the CAR index names no anchoring account for this withheld manifest")
    proof = ["0x" + p.hex() for p in entry.anchor.proof]
    return check_anchor(ledger, kind, leaf, "0x" + entry.anchor.root.hex(), proof, what, anchorer=anchorer, seen=seen)


def verify_twin(
    ledger: TwinLedger,
    twin_id: int,
    car: BinaryIO,
    *,
    allow_pending: bool = False,
    allow_withheld: bool = False,
    on_check: Callable[[str], None] | None = None,
) -> VerifyReport:
    """Check twin `twin_id`'s provenance CAR against the chain; raise VerificationFailed at the first mismatch.

    Checked: every block's hash; the snapshots numbered 1..n; for each manifest in the CAR its twin, chain and
    registry, its `previous` hash link, the node's signature and the producer's own request signature; that every
    snapshot's leaf (twin, seq, manifest digest) and every receipt's leaf reach, by their Merkle proofs, a batch
    root anchored on chain as a batch of that kind; every receipt's node signature, the reader's signed request,
    the snapshot it names, and its `previous` link to the twin's receipt before it; every denial record (a refused
    read, in the same chain) likewise, with the requester's signed request when it was recorded on its own; and that
    the twin's on-chain head anchor, if any, is within the snapshots.

    A CAR made for an AUDIT-only grantee has no manifest blocks (they name the plaintext's sha256 and size): with
    `allow_withheld`, such a snapshot is checked by its manifest's CID, leaf and proof alone, and listed in
    `report.withheld`; without it, a withheld manifest fails verification.

    >>> with open("twin-7.car", "rb") as car:  # doctest: +SKIP
    ...     report = verify_twin(ledger, 7, car)
    """
    index, blocks = read_bundle(car)
    return verify_bundle(
        ledger, twin_id, index, blocks, allow_pending=allow_pending, allow_withheld=allow_withheld, on_check=on_check
    )


def verify_bundle(
    ledger: TwinLedger | None,
    twin_id: int,
    index: ProvenanceIndex,
    blocks: StagedBlocks,
    *,
    allow_pending: bool = False,
    allow_withheld: bool = False,
    on_check: Callable[[str], None] | None = None,
) -> VerifyReport:
    """`verify_twin` of a CAR already read (`read_bundle`). With `ledger` None nothing is asked of the chain: the
    signatures and hash links are checked, the anchors and the on-chain head are not (`report.anchors_checked`)."""
    report = VerifyReport(twin_id, anchors_checked=ledger is not None)

    def ok(check: str, line: str, **facts: Any) -> None:
        report.lines.append(line)
        report.checks.append({"check": check, "passed": True, **facts, "detail": line})
        if on_check:
            on_check(line)

    if index.twin_id != twin_id:
        raise _fail(f"the CAR is the provenance of twin {index.twin_id}, not twin {twin_id}")
    if ledger is None:
        chain_id, registry = index.chain_id, index.registry
    else:
        chain_id, registry = ledger.client.chain_id, ledger.address
    if index.chain_id != chain_id or index.registry.lower() != registry.lower():
        raise _fail(
            f"the CAR is for chain {index.chain_id} / {index.registry}, the RPC is chain {chain_id} / {registry}",
            hint="pass the --rpc-url of the chain this twin lives on",
        )
    ok("blocks", f"CAR: {len(blocks)} blocks, each matches its CID", blocks=len(blocks))
    record = ledger.twin(twin_id) if ledger is not None else None
    if record is not None:
        ok("twin", f"twin {twin_id} exists on chain {chain_id} (owner {record.owner})",
           twinId=twin_id, chainId=chain_id, owner=record.owner)  # fmt: skip
    seen: dict[tuple[str, bytes], AnchorCheck] = {}
    signed_anchorers: set[str] = set()  # the accounts node-signed records name as their anchorer
    withheld_anchorers: dict[str, str] = {}  # what -> the anchorer only the index names

    previous: CID | None = None
    snapshots: dict[bytes, int] = {}  # manifest CID -> seq
    for seq, entry in enumerate(index.snapshots, start=1):
        cid = entry.cid
        what = f"snapshot #{seq} ({cid})"
        if blocks.has(cid):
            manifest = read_manifest(cid, blocks.get(cid), twin_id=twin_id, chain_id=chain_id, registry=registry)
            if manifest["seq"] != seq:
                raise _fail(f"{what}: the manifest says seq {manifest['seq']}; the chain of manifests has a gap")
            if (_cid_or_none(manifest["previous"]) or None) != previous:
                raise _fail(f"{what}: hash link broken: previous is {manifest['previous']}, expected {previous}")
            report.node_dids.add(run(check_node_signature(manifest, what)))
            producer: str | None = run(check_producer(manifest, what))
            checked = f"signed by producer {producer}, hash-linked"
            anchorer: str | None = record_anchorer(manifest, what)
            signed_anchorers.add(str(anchorer))
        elif allow_withheld:
            report.withheld.append(str(cid))
            checked = "manifest withheld (audit view)"
            anchorer = producer = None
            if entry.anchor is not None and entry.anchor.anchorer is not None:
                withheld_anchorers[what] = entry.anchor.anchorer
        else:
            raise _fail(
                f"{what}: the CAR withholds this manifest (an AUDIT-only view)",
                hint="as the owner or a READ grantee, fetch the CAR with your own key; as an auditor, pass "
                "--allow-withheld to check the manifests' digests and anchors only",
            )
        leaf = snapshot_leaf(twin_id, seq, _record_digest(entry, what))
        anchor = _anchored(ledger, BatchKind.SNAPSHOTS, leaf, entry, what, seen, allow_pending, anchorer)
        facts = {"seq": seq, "cid": str(cid), "producer": producer, "withheld": producer is None}
        if ledger is None:
            ok("snapshot", f"snapshot #{seq}: {checked}; anchor NOT CHECKED", **facts, anchored=None)
        elif anchor is None:
            report.pending.append(str(cid))
            ok("snapshot", f"snapshot #{seq}: {checked}; NOT YET ANCHORED", **facts, anchored=False)
        else:
            ok(
                "snapshot",
                f"snapshot #{seq}: {checked}, Merkle proof to root {anchor.root[:18]}… anchored on chain by "
                f"{anchor.anchorer}",
                **facts, anchored=True, batchRoot=anchor.root, anchorer=anchor.anchorer,
            )  # fmt: skip
        snapshots[bytes(cid)] = seq
        previous = cid
    report.snapshots = len(index.snapshots)
    if record is not None and record.head_seq:
        if record.head_seq > len(index.snapshots):
            raise _fail(f"the chain's head anchor is snapshot #{record.head_seq}, the CAR has {len(index.snapshots)}")
        ok("head-anchor", f"on-chain head anchor #{record.head_seq} is within the chain of manifests",
           seq=record.head_seq)  # fmt: skip

    previous_receipt = RECEIPT_GENESIS
    for entry in index.receipts:
        cid = entry.cid
        what = f"receipt {cid}"
        try:
            receipt = read_json_block(cid, blocks.get(cid))
        except TwinledgerError as error:
            raise _fail(f"{what}: {error.message}") from None
        denial = receipt.get("type") == DENIAL_TYPE
        if receipt.get("type") not in (RECEIPT_TYPE, DENIAL_TYPE) or receipt.get("twinId") != twin_id:
            raise _fail(f"{what} is not an access receipt nor a denial record of twin {twin_id}")
        if not denial and snapshots.get(bytes(_cid_or_none(receipt.get("manifestCid")) or b"")) != receipt.get("seq"):
            raise _fail(
                f"{what}: names snapshot #{receipt.get('seq')} ({receipt.get('manifestCid')}), which is not "
                f"in the chain of manifests"
            )
        if receipt.get("previous") != previous_receipt:
            raise _fail(
                f"{what}: hash link broken: previous is {receipt.get('previous')}, expected {previous_receipt} "
                "(the twin's receipt before it)"
            )
        report.node_dids.add(run(check_node_signature(receipt, what)))
        reader = check_denial(receipt, what) if denial else run(check_reader_request(receipt, what))
        receipt_anchorer = record_anchorer(receipt, what)
        signed_anchorers.add(receipt_anchorer)
        digest = receipt_digest(receipt)
        previous_receipt = "0x" + digest.hex()
        anchor = _anchored(
            ledger,
            BatchKind.ACCESS_RECEIPTS,
            receipt_leaf(twin_id, digest),
            entry,
            what,
            seen,
            allow_pending,
            receipt_anchorer,
        )
        if denial:
            report.denials += 1
            _denial_checked(ok, receipt, str(cid), reader, anchor, report, unchecked=ledger is None)
            continue
        report.receipts += 1
        facts = {"seq": receipt["seq"], "cid": str(cid), "reader": reader, "purpose": receipt["purpose"]}
        if anchor is None:
            unchecked = ledger is None
            if not unchecked:
                report.pending.append(str(cid))
            ok("receipt", f"read of snapshot #{receipt['seq']} by {reader}: signed, hash-linked; "
               + ("anchor NOT CHECKED" if unchecked else "NOT YET ANCHORED"),
               **facts, anchored=None if unchecked else False)  # fmt: skip
            continue
        ok(
            "receipt",
            f"read of snapshot #{receipt['seq']} by {reader} for purpose {receipt['purpose'][:10]}…: receipt signed, "
            f"hash-linked, reader's request signed, Merkle proof to root {anchor.root[:18]}… anchored on chain by "
            f"{anchor.anchorer}",
            **facts, anchored=True, batchRoot=anchor.root, anchorer=anchor.anchorer,
        )  # fmt: skip
    for what, anchorer in withheld_anchorers.items():
        # Only the index names a withheld manifest's anchorer; it must be an account the node named in what it signed.
        if signed_anchorers and anchorer not in signed_anchorers:
            raise _fail(
                f"{what}: the CAR index says {anchorer} anchored it, but the node's signed records name "
                f"{', '.join(sorted(signed_anchorers))}"
            )
    report.batches = len(seen)
    return report


def _denial_checked(
    ok: Callable[..., None], record: dict[str, Any], cid: str, requester: str | None, anchor: AnchorCheck | None,
    report: VerifyReport, *, unchecked: bool = False,
) -> None:  # fmt: skip
    """The check line of a denial record (see `twinledger_node.services.denials` for what one says)."""
    count = record.get("count", 1)
    who = requester or "DIDs past the twin's cap"
    what = f"refused read by {who}" if "count" not in record else f"{count} refused reads by {who} (counted)"
    signed = "record signed, hash-linked" + (", requester's request signed" if "count" not in record else "")
    facts = {"cid": cid, "requester": requester, "count": count}
    if anchor is None:  # no chain to ask (`unchecked`), or not in an anchored batch yet
        if not unchecked:
            report.pending.append(cid)
        ok("denial", f"{what}: {signed}; " + ("anchor NOT CHECKED" if unchecked else "NOT YET ANCHORED"), **facts,
           anchored=None if unchecked else False)  # fmt: skip
        return
    ok("denial", f"{what}: {signed}, Merkle proof to root {anchor.root[:18]}… anchored on chain by {anchor.anchorer}",
       **facts, anchored=True, batchRoot=anchor.root, anchorer=anchor.anchorer)  # fmt: skip


__all__ = ["VerificationFailed", "VerifyReport", "verify_bundle", "verify_twin"]
