"""The provenance CAR: one dag-cbor index block (the root) listing a twin's snapshots and access receipts in order,
each with the Merkle proof of its own leaf in the batch that anchors it, followed by the records' blocks.

It holds the twin's own leaves only: never a batch block, whose leaves and links belong to every twin cut into the
same batch. Whoever may not learn what a manifest says of the plaintext (an AUDIT-only grantee) gets a CAR without
the manifest blocks: each snapshot is then its manifest's CID, the leaf it makes and that leaf's proof.

An owner's export (`GET /v1/twins/{id}/export.car`) is the same CAR with each snapshot's content (its ciphertext's
UnixFS blocks) added and linked from the index (version 3), so the whole DAG hangs off the root: any IPFS node that
imports the CAR and pins its root keeps every block.

The node writes it; `twinledger verify` reads it and trusts none of it: every block is re-hashed, and everything is
checked against signatures and the chain."""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, BinaryIO, Protocol, cast

import dag_cbor
from dag_cbor.decoding import DAGCBORDecodingError
from eth_utils import to_checksum_address
from multiformats import CID

from twinledger.errors import IntegrityError, NotFound
from twinledger.ipfs.car import read_car_into, write_car
from twinledger.ipfs.cids import block_cid, to_cid, verify_block

PROVENANCE_TYPE = "twinledger/provenance"
PAGE_TYPE = "twinledger/provenance-page"
# 1 carried whole batch blocks; 2 listed every entry in the root, one block that a twin's few thousandth record took
# past the 2 MiB a block may have; 3 links pages of entries, and a snapshot's entry may link its content.
VERSION = 3
READABLE_VERSIONS = (2, 3)
PAGE_ENTRIES = 1024  # what `index_blocks` puts in a page: some 450 KiB
DAG_CBOR = 0x71


class StagedBlocks(Protocol):
    """Where `read_bundle` keeps a CAR's blocks, each checked against its CID."""

    def has(self, cid: CID) -> bool: ...
    def get(self, cid: CID) -> bytes: ...
    def put(self, cid: CID, data: bytes) -> None: ...
    def __len__(self) -> int: ...


def _not_in_car(cid: CID) -> NotFound:
    return NotFound(
        f"block {cid} is not in the provenance CAR", hint="fetch the CAR again from a node that holds this twin"
    )


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
            raise _not_in_car(cid) from None

    def __len__(self) -> int:
        return len(self.data)


class FileBlocks:
    """A CAR file's blocks by their place in the file, read again (and re-hashed) when asked for: an export of
    every snapshot a twin holds is opened holding one block at a time, not the file."""

    def __init__(self, file: BinaryIO) -> None:
        self.file = file
        self.places: dict[bytes, tuple[int, int]] = {}  # binary CID -> (offset, length)

    def has(self, cid: CID) -> bool:
        return bytes(cid) in self.places

    def put(self, cid: CID, data: bytes) -> None:
        verify_block(cid, data)  # called by `read_car_into` right after the block's bytes were read
        self.places[bytes(cid)] = (self.file.tell() - len(data), len(data))

    def get(self, cid: CID) -> bytes:
        try:
            offset, length = self.places[bytes(cid)]
        except KeyError:
            raise _not_in_car(cid) from None
        self.file.seek(offset)
        data = self.file.read(length)
        verify_block(cid, data)  # the file may have changed since it was read
        return data

    def __len__(self) -> int:
        return len(self.places)


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
    """One record of the twin (a manifest or a receipt) by CID, and its anchor (None while pending); in an export,
    a snapshot's entry also links its content's root (the CID its manifest names, whose blocks the CAR holds)."""

    cid: CID
    anchor: Anchor | None
    content: CID | None = None

    def as_cbor(self) -> dict[str, Any]:
        value: dict[str, Any] = {"cid": self.cid, "anchor": self.anchor.as_cbor() if self.anchor else None}
        if self.content is not None:
            value["content"] = self.content
        return value

    @classmethod
    def from_cbor(cls, value: Any) -> Entry:
        # shown as base32, as the node and Kubo print CIDv1 (a CAR header may carry base58)
        content = value.get("content")
        if content is not None and not isinstance(content, CID):
            raise ValueError("an entry's content is not a CID")
        return cls(
            value["cid"].set(base="base32"),
            Anchor.from_cbor(value["anchor"]),
            content.set(base="base32") if content is not None and content.version == 1 else content,
        )


@dataclass(frozen=True)
class ProvenanceIndex:
    twin_id: int
    chain_id: int
    registry: str
    snapshots: list[Entry]  # in sequence order: snapshots[i] is snapshot #i+1
    receipts: list[Entry]  # in the order of their hash chain


def _cbor_block(document: Any) -> tuple[CID, bytes]:
    data = dag_cbor.encode(cast(Any, document))
    return to_cid(block_cid(data, codec=DAG_CBOR, version=1)), data


def index_page(entries: Iterable[Entry]) -> tuple[CID, bytes]:
    """One page of the index: consecutive snapshots or receipts (a writer chooses how many; a page stays far
    below the 2 MiB a block may have)."""
    return _cbor_block({"type": PAGE_TYPE, "entries": [e.as_cbor() for e in entries]})


def index_root(
    twin_id: int, chain_id: int, registry: str, snapshot_pages: Iterable[CID], receipt_pages: Iterable[CID]
) -> tuple[CID, bytes]:
    """The CAR's root: the twin, its chain and registry, and the links to its index pages in order."""
    return _cbor_block({
        "type": PROVENANCE_TYPE, "version": VERSION, "twinId": twin_id, "chainId": chain_id, "registry": registry,
        "snapshots": list(snapshot_pages), "receipts": list(receipt_pages),
    })  # fmt: skip


def index_blocks(
    twin_id: int, chain_id: int, registry: str, snapshots: Sequence[Entry], receipts: Sequence[Entry]
) -> list[tuple[CID, bytes]]:
    """The whole index of these entries, built in memory: the root first, then its pages."""
    pages = [
        [index_page(group[i : i + PAGE_ENTRIES]) for i in range(0, len(group), PAGE_ENTRIES)]
        for group in (snapshots, receipts)
    ]
    root = index_root(twin_id, chain_id, registry, *([cid for cid, _ in group] for group in pages))
    return [root, *pages[0], *pages[1]]


def write_bundle(out: BinaryIO, index: Sequence[tuple[CID, bytes]], blocks: Iterable[tuple[CID, bytes]]) -> None:
    """A provenance CAR in memory: `index` as `index_blocks` returns it (the root first), then `blocks`."""
    unique: dict[bytes, tuple[CID, bytes]] = {}
    for cid, data in itertools.chain(index, blocks):
        unique.setdefault(bytes(cid), (cid, data))
    write_car(out, [index[0][0]], list(unique.values()))


def read_bundle(stream: BinaryIO) -> tuple[ProvenanceIndex, Blocks]:
    """Parse a provenance CAR: every block re-hashed, exactly one root, and that root a provenance index."""
    blocks = Blocks()
    return _read_index(stream, blocks), blocks


def read_bundle_file(file: BinaryIO) -> tuple[ProvenanceIndex, FileBlocks]:
    """`read_bundle` of a seekable file whose blocks stay in it (`FileBlocks`)."""
    blocks = FileBlocks(file)
    return _read_index(file, blocks), blocks


def _read_index(stream: BinaryIO, blocks: StagedBlocks) -> ProvenanceIndex:
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
        if document.get("version") not in READABLE_VERSIONS:
            raise IntegrityError(
                f"the CAR is a version {document.get('version')} provenance index, this verifier reads versions "
                f"{', '.join(map(str, READABLE_VERSIONS))}",
                hint="fetch the CAR again from an up-to-date node",
            )
        version = document["version"]
        lists = [
            [Entry.from_cbor(e) for e in (document[k] if version == 2 else _paged(blocks, document[k]))]
            for k in ("snapshots", "receipts")
        ]
        index = ProvenanceIndex(int(document["twinId"]), int(document["chainId"]), str(document["registry"]), *lists)
    except IntegrityError:
        raise
    except (KeyError, TypeError, ValueError, AttributeError, DAGCBORDecodingError):
        raise IntegrityError(f"the CAR's root {roots[0]} is not a twinledger provenance index") from None
    return index


def _paged(blocks: StagedBlocks, pages: Any) -> Iterator[Any]:
    """The entries of a version 3 index, page after page."""
    for cid in pages:
        if not isinstance(cid, CID):
            raise ValueError("an index page link is not a CID")
        try:
            page: Any = dag_cbor.decode(blocks.get(cid))
        except NotFound:
            raise IntegrityError(f"the CAR lacks page {cid} of its index", hint="fetch the CAR again") from None
        if not isinstance(page, dict) or page.get("type") != PAGE_TYPE:
            raise ValueError("not an index page")
        yield from page["entries"]
