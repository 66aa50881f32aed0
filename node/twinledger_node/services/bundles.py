"""A twin's provenance CAR (`GET …/provenance.car`), and the owner's export of it with every snapshot's content
(`GET …/export.car`), streamed whatever the twin holds.

Two passes over the twin's rows, a page at a time. The first builds the index: a page block per page of rows,
spooled (to a temporary file past a few MiB), and the root that links them, which a CAR sends first; it notes
the last snapshot and receipt it lists. The second streams the root, the spooled pages, then the blocks of exactly
the rows indexed, bounded by what the first noted: rows are only ever appended, so later pushes and reads never
slip in. The node holds one page of rows, the page links and one block at a time, whatever the twin holds."""

from __future__ import annotations

import json
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from typing import IO, Any

from multiformats import CID

from twinledger.ipfs import BlockStore, parse_cid
from twinledger.ipfs.car import car_header, car_section, section_prefix
from twinledger.ipfs.dag import walk_dag
from twinledger.provenance import json_block
from twinledger.verify import Anchor, Entry, index_page, index_root
from twinledger_node.db.base import Row
from twinledger_node.state import NodeState

PAGE = 512  # rows per query and entries per index page (some 230 KiB as a block)
SPOOL_BYTES = 8 * 1024 * 1024  # index pages up to this stay in memory (some 18,000 records), more go to a file
COPY = 64 * 1024
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
    pages: IO[bytes]  # the index pages, as CAR sections (closed once streamed)
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
        pages = tempfile.SpooledTemporaryFile(max_size=SPOOL_BYTES)  # noqa: SIM115 - closed by stream() or close()
        try:
            links: dict[str, list[CID]] = {"snapshots": [], "receipts": []}

            def page(kind: str, entries: list[Entry]) -> None:
                if entries:
                    cid, data = index_page(entries)
                    pages.write(car_section(cid, data))
                    links[kind].append(cid)

            last_seq, head_manifest = 0, None
            for rows in self._pages(SNAPSHOT_PAGE, twin_id, "seq", _LAST):
                entries = []
                for row in rows:
                    cid = parse_cid(row["manifest_cid"])
                    anchorer = json.loads(self.store.get(cid)).get("anchorer")
                    content_cid = parse_cid(row["content_cid"]) if content else None
                    entries.append(Entry(cid, _anchor(row, anchorer), content_cid))
                    last_seq, head_manifest = int(row["seq"]), str(row["manifest_cid"])
                page("snapshots", entries)
            last_receipt = 0
            for rows in self._pages(RECEIPT_PAGE, twin_id, "id", _LAST):
                entries = []
                for row in rows:
                    body = json.loads(row["body"])
                    entries.append(Entry(json_block(body).cid, _anchor(row, body.get("anchorer"))))
                    last_receipt = int(row["id"])
                page("receipts", entries)
            root = index_root(twin_id, self.chain_id, self.registry, links["snapshots"], links["receipts"])
        except BaseException:
            pages.close()
            raise
        return Bundle(twin_id, root, pages, last_seq, head_manifest, last_receipt, manifests, content)

    def stream(self, bundle: Bundle) -> Iterator[bytes]:
        """The CAR (the second pass): the root and the index pages, then per snapshot its manifest and content,
        then the receipts."""
        with bundle.pages:
            yield car_header([bundle.root[0]])
            yield car_section(*bundle.root)
            bundle.pages.seek(0)
            while chunk := bundle.pages.read(COPY):
                yield chunk
            for cid, data in self._blocks(bundle):
                yield section_prefix(cid, len(data))
                yield data  # as the store gave it: a content block is 1 MiB, not copied again

    def _blocks(self, bundle: Bundle) -> Iterator[tuple[CID, bytes]]:
        # Each block comes once without a set of the CIDs seen: manifests and receipts are distinct records, and
        # each snapshot's ciphertext is under a fresh key, so no two snapshots share a content block.
        if bundle.manifests or bundle.content:
            for rows in self._pages(SNAPSHOT_PAGE, bundle.twin_id, "seq", bundle.last_seq):
                for row in rows:
                    if bundle.manifests:
                        cid = parse_cid(row["manifest_cid"])
                        yield cid, self.store.get(cid)
                    if bundle.content:
                        yield from walk_dag(parse_cid(row["content_cid"]), self.store.get)
        for rows in self._pages(RECEIPT_PAGE, bundle.twin_id, "id", bundle.last_receipt):
            for row in rows:
                block = json_block(json.loads(row["body"]))
                yield block.cid, block.data

    def _pages(self, query: str, twin_id: int, key: str, last: int) -> Iterator[list[Row]]:
        after = 0
        while True:
            rows = self.state.connection().execute(query, (twin_id, after, last, PAGE)).fetchall()
            if rows:
                yield rows
            if len(rows) < PAGE:
                return
            after = rows[-1][key]


def _anchor(row: Any, anchorer: str | None) -> Anchor | None:
    """The row's leaf proof once its batch is anchored (a batch cut but not yet on chain counts as pending), with
    the anchorer its signed record names (what a verifier uses for a manifest the CAR withholds)."""
    if row["anchor_tx"] is None:
        return None
    return Anchor.from_hex(row["batch_root"], json.loads(row["proof"]) if row["proof"] else None, anchorer)
