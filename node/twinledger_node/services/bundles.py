"""A twin's provenance CAR (`GET …/provenance.car`), and the owner's export of it with every snapshot's content
(`GET …/export.car`), streamed whatever the twin holds.

Two passes over the twin's rows, a page at a time. The first builds the index (the CAR's root, which must come
first) and notes the last snapshot and receipt it lists; the second streams the blocks of exactly those rows,
bounded by what the first noted: rows are only ever appended, so later pushes and reads never slip in. The node
holds the index entries (a CID and a proof per record), one page of rows and one block at a time; never the
manifests, receipts or content of the whole twin."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from multiformats import CID

from twinledger.ipfs import BlockStore, parse_cid
from twinledger.ipfs.dag import walk_dag
from twinledger.provenance import json_block
from twinledger.verify import Anchor, Entry, index_block, stream_bundle
from twinledger_node.db.base import Row
from twinledger_node.state import NodeState

PAGE = 256  # rows per query: one page of receipt bodies is a few hundred KiB
_LAST = 2**63 - 1  # no upper bound (SQLite's largest integer)
SNAPSHOT_PAGE = (
    "SELECT seq, manifest_cid, content_cid, batch_root, proof, anchor_tx FROM snapshots "
    "WHERE twin_id = ? AND seq > ? AND seq <= ? ORDER BY seq LIMIT ?"
)
RECEIPT_PAGE = (
    "SELECT id, body, batch_root, proof, anchor_tx FROM receipts "
    "WHERE twin_id = ? AND id > ? AND id <= ? ORDER BY twin_id, id LIMIT ?"
)


@dataclass(frozen=True)
class Bundle:
    """What one CAR holds, fixed by the first pass."""

    twin_id: int
    root: tuple[CID, bytes]
    last_seq: int  # the newest snapshot listed (0: none)
    head_manifest: str | None  # its manifest CID
    last_receipt: int  # the id of the newest receipt listed (0: none)
    manifests: bool  # the manifest blocks are in it (not for an AUDIT-only grantee)
    content: bool  # the snapshots' content blocks are in it (the owner's export)


class Bundles:
    def __init__(self, state: NodeState, store: BlockStore, *, chain_id: int, registry: str) -> None:
        self.state, self.store, self.chain_id, self.registry = state, store, chain_id, registry

    def plan(self, twin_id: int, *, manifests: bool, content: bool = False) -> Bundle:
        """The index of the twin's records as they are now (the first pass)."""
        snapshots: list[Entry] = []
        last_seq, head_manifest = 0, None
        for row in self._pages(SNAPSHOT_PAGE, twin_id, "seq", _LAST):
            cid = parse_cid(row["manifest_cid"])
            anchorer = json.loads(self.store.get(cid)).get("anchorer")
            snapshots.append(Entry(cid, _anchor(row, anchorer), parse_cid(row["content_cid"]) if content else None))
            last_seq, head_manifest = int(row["seq"]), str(row["manifest_cid"])
        receipts: list[Entry] = []
        last_receipt = 0
        for row in self._pages(RECEIPT_PAGE, twin_id, "id", _LAST):
            body = json.loads(row["body"])
            receipts.append(Entry(json_block(body).cid, _anchor(row, body.get("anchorer"))))
            last_receipt = int(row["id"])
        root = index_block(twin_id, self.chain_id, self.registry, snapshots, receipts)
        return Bundle(twin_id, root, last_seq, head_manifest, last_receipt, manifests, content)

    def stream(self, bundle: Bundle) -> Iterator[bytes]:
        """The CAR (the second pass): the index, then per snapshot its manifest and content, then the receipts."""
        return stream_bundle(bundle.root, self._blocks(bundle))

    def _blocks(self, bundle: Bundle) -> Iterator[tuple[CID, bytes]]:
        # Each block comes once without a set of the CIDs seen: manifests and receipts are distinct records, and
        # each snapshot's ciphertext is under a fresh key, so no two snapshots share a content block.
        if bundle.manifests or bundle.content:
            for row in self._pages(SNAPSHOT_PAGE, bundle.twin_id, "seq", bundle.last_seq):
                if bundle.manifests:
                    cid = parse_cid(row["manifest_cid"])
                    yield cid, self.store.get(cid)
                if bundle.content:
                    yield from walk_dag(parse_cid(row["content_cid"]), self.store.get)
        for row in self._pages(RECEIPT_PAGE, bundle.twin_id, "id", bundle.last_receipt):
            block = json_block(json.loads(row["body"]))
            yield block.cid, block.data

    def _pages(self, query: str, twin_id: int, key: str, last: int) -> Iterator[Row]:
        after = 0
        while True:
            rows = self.state.connection().execute(query, (twin_id, after, last, PAGE)).fetchall()
            yield from rows
            if len(rows) < PAGE:
                return
            after = rows[-1][key]


def _anchor(row: Any, anchorer: str | None) -> Anchor | None:
    """The row's leaf proof once its batch is anchored (a batch cut but not yet on chain counts as pending), with
    the anchorer its signed record names (what a verifier uses for a manifest the CAR withholds)."""
    if row["anchor_tx"] is None:
        return None
    return Anchor.from_hex(row["batch_root"], json.loads(row["proof"]) if row["proof"] else None, anchorer)
