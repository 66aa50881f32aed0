"""The provenance CAR: one dag-cbor index block (the root) naming a twin's manifests, the batch blocks that anchor
them and its access receipts, followed by those blocks. The node writes it; `twinledger verify` reads it and
trusts none of it: every block is re-hashed, and everything is checked against signatures and the chain."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, BinaryIO, cast

import dag_cbor
from dag_cbor.decoding import DAGCBORDecodingError
from multiformats import CID

from twinledger.errors import IntegrityError, NotFound
from twinledger.ipfs.car import read_car_into, write_car
from twinledger.ipfs.cids import block_cid, to_cid, verify_block

PROVENANCE_TYPE = "twinledger/provenance"
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
class ProvenanceIndex:
    twin_id: int
    chain_id: int
    registry: str
    manifests: list[CID]
    batches: list[CID]
    receipts: list[CID]


def index_block(
    twin_id: int,
    chain_id: int,
    registry: str,
    manifests: Iterable[CID],
    batches: Iterable[CID],
    receipts: Iterable[CID],
) -> tuple[CID, bytes]:
    document = {
        "type": PROVENANCE_TYPE,
        "version": 1,
        "twinId": twin_id,
        "chainId": chain_id,
        "registry": registry,
        "manifests": list(manifests),
        "batches": list(batches),
        "receipts": list(receipts),
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
        index = ProvenanceIndex(
            int(document["twinId"]),
            int(document["chainId"]),
            str(document["registry"]),
            # shown as base32, as the node and Kubo print CIDv1 (a CAR header may carry base58)
            *[[c.set(base="base32") for c in document[k]] for k in ("manifests", "batches", "receipts")],
        )
    except (KeyError, TypeError, ValueError, DAGCBORDecodingError):
        raise IntegrityError(f"the CAR's root {roots[0]} is not a twinledger provenance index") from None
    return index, blocks
