"""The provenance CAR: one dag-cbor index block (the root) listing a twin's snapshots and access receipts in order,
each with the Merkle proof of its own leaf in the batch that anchors it, followed by the records' blocks.

It holds the twin's own leaves only: never a batch block, whose leaves and links belong to every twin cut into the
same batch. Whoever may not learn what a manifest says of the plaintext (an AUDIT-only grantee) gets a CAR without
the manifest blocks: each snapshot is then its manifest's CID, the leaf it makes and that leaf's proof.

The node writes it; `twinledger verify` reads it and trusts none of it: every block is re-hashed, and everything is
checked against signatures and the chain."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, BinaryIO, cast

import dag_cbor
from dag_cbor.decoding import DAGCBORDecodingError
from eth_utils import to_checksum_address
from multiformats import CID

from twinledger.errors import IntegrityError, NotFound
from twinledger.ipfs.car import read_car_into, write_car
from twinledger.ipfs.cids import block_cid, to_cid, verify_block

PROVENANCE_TYPE = "twinledger/provenance"
VERSION = 2  # 1 carried whole batch blocks
DAG_CBOR = 0x71


@dataclass
class Blocks:
    """Blocks in memory, each checked against its CID when stored (what `read_car_into` stages into)."""

    # Keyed by the binary CID: the same CID may print in different multibases (a CAR header's base58 vs base32).
    data: dict[bytes, bytes] = field(default_factory=dict)

    def has(self, cid: CID) -> bool:
        return bytes(cid) in self.data

    def put(self, cid: CID, data: bytes) -> None:
        verify_block(cid, data)
        self.data[bytes(cid)] = data

    def get(self, cid: CID) -> bytes:
        try:
            return self.data[bytes(cid)]
        except KeyError:
            raise NotFound(
                f"block {cid} is not in the provenance CAR", hint="fetch the CAR again from a node that holds this twin"
            ) from None


@dataclass(frozen=True)
class Anchor:
    """Where a leaf is anchored: the batch root on chain, the leaf's StandardMerkleTree proof up to it, and the
    account that anchored it (the chain keys batches by anchorer; a verifier takes the anchorer from the node-signed
    record, and from here only for a manifest the CAR withholds)."""

    root: bytes
    proof: list[bytes]
    anchorer: str | None = None

    def as_cbor(self) -> dict[str, Any]:
        value: dict[str, Any] = {"root": self.root, "proof": self.proof}
        if self.anchorer is not None:
            value["anchorer"] = bytes.fromhex(self.anchorer.removeprefix("0x"))
        return value

    @classmethod
    def from_cbor(cls, value: Any) -> Anchor | None:
        if value is None:
            return None
        anchorer = value.get("anchorer")
        return cls(
            bytes(value["root"]),
            [bytes(p) for p in value["proof"]],
            to_checksum_address(bytes(anchorer)) if anchorer is not None else None,
        )

    @classmethod
    def from_hex(cls, root: str | None, proof: list[str] | None, anchorer: str | None = None) -> Anchor | None:
        """From the node's records (hex strings); None while the leaf is not anchored."""
        if root is None or proof is None:
            return None
        return cls(
            bytes.fromhex(root.removeprefix("0x")),
            [bytes.fromhex(p.removeprefix("0x")) for p in proof],
            anchorer,
        )


@dataclass(frozen=True)
class Entry:
    """One record of the twin (a manifest or a receipt) by CID, and its anchor (None while pending)."""

    cid: CID
    anchor: Anchor | None


@dataclass(frozen=True)
class ProvenanceIndex:
    twin_id: int
    chain_id: int
    registry: str
    snapshots: list[Entry]  # in sequence order: snapshots[i] is snapshot #i+1
    receipts: list[Entry]  # in the order of their hash chain


def index_block(
    twin_id: int, chain_id: int, registry: str, snapshots: Iterable[Entry], receipts: Iterable[Entry]
) -> tuple[CID, bytes]:
    def entries(items: Iterable[Entry]) -> list[dict[str, Any]]:
        return [{"cid": e.cid, "anchor": e.anchor.as_cbor() if e.anchor else None} for e in items]

    document = {
        "type": PROVENANCE_TYPE,
        "version": VERSION,
        "twinId": twin_id,
        "chainId": chain_id,
        "registry": registry,
        "snapshots": entries(snapshots),
        "receipts": entries(receipts),
    }
    data = dag_cbor.encode(cast(Any, document))
    return to_cid(block_cid(data, codec=DAG_CBOR, version=1)), data


def write_bundle(out: BinaryIO, root: tuple[CID, bytes], blocks: Iterable[tuple[CID, bytes]]) -> None:
    unique = {bytes(root[0]): root}
    for cid, data in blocks:
        unique.setdefault(bytes(cid), (cid, data))
    write_car(out, [root[0]], list(unique.values()))


def read_bundle(stream: BinaryIO) -> tuple[ProvenanceIndex, Blocks]:
    """Parse a provenance CAR: every block re-hashed, exactly one root, and that root a provenance index."""
    blocks = Blocks()
    roots = read_car_into(blocks, stream, require_complete=False)
    if len(roots) != 1:
        raise IntegrityError(
            f"a provenance CAR has one root, this one has {len(roots)}",
            hint="fetch it with `GET /v1/twins/{id}/provenance.car`",
        )
    try:
        document: Any = dag_cbor.decode(blocks.get(roots[0]))
        if not isinstance(document, dict) or document.get("type") != PROVENANCE_TYPE:
            raise ValueError("not a provenance index")
        if document.get("version") != VERSION:
            raise IntegrityError(
                f"the CAR is a version {document.get('version')} provenance index, this verifier reads version "
                f"{VERSION}",
                hint="fetch the CAR again from an up-to-date node",
            )
        # shown as base32, as the node and Kubo print CIDv1 (a CAR header may carry base58)
        lists = [
            [Entry(e["cid"].set(base="base32"), Anchor.from_cbor(e["anchor"])) for e in document[k]]
            for k in ("snapshots", "receipts")
        ]
        index = ProvenanceIndex(int(document["twinId"]), int(document["chainId"]), str(document["registry"]), *lists)
    except IntegrityError:
        raise
    except (KeyError, TypeError, ValueError, AttributeError, DAGCBORDecodingError):
        raise IntegrityError(f"the CAR's root {roots[0]} is not a twinledger provenance index") from None
    return index, blocks
