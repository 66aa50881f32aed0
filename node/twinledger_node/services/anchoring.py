"""The anchor worker: snapshot manifests and access receipts go on chain in Merkle batches.

A batch is cut once `batch_size` rows are pending or `batch_seconds` have passed since the worker first saw the
oldest of them: a monotonic, sub-second timer (the worker looks every `SEE_INTERVAL` while the queue is empty and
wakes at the deadline once it is not), so an item waits at most the batch interval, plus the look, plus the block
its anchor lands in. A batch takes every pending row up to `MAX_BATCH_LEAVES`: under sustained load batches grow
with the queue (while one transaction waits for its block the next batch fills), so the queue drains whatever the
read rate, and a batch's block stays under the 1 MiB Kubo accepts.

The batch's receipt blocks and its own block (dag-cbor: the StandardMerkleTree dump and links to every record) are
written and pinned in one block-store transaction, the batch is recorded as `sending` together with each row's proof
in one database transaction, and only then is the transaction sent. After a crash or an RPC failure the worker asks
the chain whether the root is anchored before it sends again, so every batch is anchored exactly once.

The chain keys a batch by (anchorer, root) and anyone may anchor any root, so the worker only ever looks at anchors
by its own account: a copy of a pending root sent first by someone else (front-running) is that someone's record,
and the node's own transaction still anchors the node's. The account is named in every manifest and receipt the
node signs (`anchorer`) and in the batch block, which is how a verifier knows whose anchor to look up.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, cast

import dag_cbor
from multiformats import CID

from twinledger.chain.errors import ContractRevert
from twinledger.chain.ledger import TwinLedger
from twinledger.chain.logs import DEFAULT_PAGE, LogScanner, event_filter
from twinledger.chain.types import BatchKind
from twinledger.ipfs import BlockStore, parse_cid
from twinledger.ipfs.cids import block_cid, cid_text, to_cid
from twinledger.merkle import StandardMerkleTree
from twinledger.provenance import RECEIPT_LEAF_TYPES, SNAPSHOT_LEAF_TYPES, json_block
from twinledger_node.state import NodeState

log = logging.getLogger("twinledger.anchoring")
DAG_CBOR = 0x71
# Most leaves in one batch: its block (tree dump and a link per record, at most ~430 bytes a leaf) stays under
# 1 MiB, the largest block Kubo accepts; the anchoring transaction costs the same gas whatever the count.
MAX_BATCH_LEAVES = 2048
MAX_BATCH_BLOCK = 1 << 20
SEE_INTERVAL = 0.05  # seconds between looks at an empty queue: the delay before the batch timer starts


@dataclass(frozen=True)
class BatchSpec:
    kind: BatchKind
    table: str
    types: tuple[str, ...]


SPECS = (
    BatchSpec(BatchKind.SNAPSHOTS, "snapshots", SNAPSHOT_LEAF_TYPES),
    BatchSpec(BatchKind.ACCESS_RECEIPTS, "receipts", RECEIPT_LEAF_TYPES),
)


class AnchorWorker:
    def __init__(
        self,
        state: NodeState,
        store: BlockStore,
        ledger: TwinLedger,
        *,
        batch_size: int,
        batch_seconds: float,
        deploy_block: int,
        log_page: int = DEFAULT_PAGE,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.state, self.store, self.ledger = state, store, ledger
        self.batch_size, self.batch_seconds = batch_size, batch_seconds
        self.clock = clock
        # per table: the monotonic time the worker first saw its oldest pending row (None: nothing pending)
        self._first_seen: dict[str, float | None] = {spec.table: None for spec in SPECS}
        self.deploy_block = deploy_block
        self.scanner = LogScanner(ledger.client.w3, page=log_page)
        self._lock = threading.Lock()

    @property
    def anchorer(self) -> str:
        """The node's chain account: the only anchorer whose batches the node counts as its own."""
        account = self.ledger.client.account
        if account is None:
            raise RuntimeError("the node has no chain account to anchor with (set TWINLEDGER_PRIVATE_KEY)")
        return str(account.address)

    # ------------------------------------------------------------------ queue

    def queue_depth(self) -> int:
        """Rows not anchored yet: pending ones plus those of batches in flight (both read through partial indexes,
        so the cost follows the queue, not what is stored)."""
        db = self.state.connection()
        pending = sum(
            int(db.execute(f"SELECT COUNT(*) FROM {spec.table} WHERE batch_root IS NULL").fetchone()[0])  # noqa: S608
            for spec in SPECS
        )
        sending = db.execute("SELECT COALESCE(SUM(count), 0) FROM batches WHERE status = 'sending'").fetchone()[0]
        return pending + int(sending)

    def _pending(self, spec: BatchSpec) -> list[Any]:
        key = "twin_id, seq" if spec.table == "snapshots" else "id"
        return (
            self.state.connection()
            .execute(
                f"SELECT * FROM {spec.table} WHERE batch_root IS NULL ORDER BY created, {key} LIMIT ?",  # noqa: S608
                (MAX_BATCH_LEAVES,),
            )
            .fetchall()
        )

    def _queued(self, spec: BatchSpec) -> tuple[int, float]:
        """How many rows are pending (counted up to a batch's worth) and the creation time of the oldest."""
        count, oldest = (
            self.state.connection()
            .execute(
                f"SELECT COUNT(*), MIN(created) FROM (SELECT created FROM {spec.table} "  # noqa: S608
                "WHERE batch_root IS NULL LIMIT ?)",
                (MAX_BATCH_LEAVES,),
            )
            .fetchone()
        )
        return int(count), float(oldest or 0)

    def _due_in(self, spec: BatchSpec, pending: int, *, force: bool = False) -> float | None:
        """Seconds until a batch of `spec` is due (0: now), None when nothing is pending; the timer starts when
        the worker first sees a pending row."""
        if not pending:
            self._first_seen[spec.table] = None
            return None
        now = self.clock()
        first = self._first_seen[spec.table]
        if first is None:
            first = self._first_seen[spec.table] = now
        if force or pending >= self.batch_size:
            return 0.0
        return max(0.0, first + self.batch_seconds - now)

    # ------------------------------------------------------------------ one pass

    def tick(self, *, force: bool = False) -> int:
        """Finish batches in flight, then cut new ones that are due; returns how many batches got anchored."""
        with self._lock:
            anchored = self._finish_in_flight()
            for spec in SPECS:
                while True:
                    count, oldest = self._queued(spec)
                    wait = self._due_in(spec, count, force=force)
                    if wait and time.time() - oldest >= self.batch_seconds + 1:
                        wait = 0.0  # `created` is whole seconds, floored: one second more and it surely waited
                    if wait is None or wait > 0:
                        break
                    self._first_seen[spec.table] = None  # what arrives from now on is timed from its first sight
                    root = self._cut(spec, self._pending(spec))
                    anchored += self._send(root)
            return anchored

    def next_due(self) -> float | None:
        """Seconds until the earliest batch timer runs out (None: no timer running), for the loop's sleep."""
        now = self.clock()
        deadlines = [first + self.batch_seconds - now for first in self._first_seen.values() if first is not None]
        return max(0.0, min(deadlines)) if deadlines else None

    def _cut(self, spec: BatchSpec, rows: list[Any]) -> str:
        blocks: list[tuple[CID, bytes]] = []
        if spec.kind is BatchKind.SNAPSHOTS:
            values = [[r["twin_id"], r["seq"], bytes.fromhex(r["manifest_digest"][2:])] for r in rows]
            records = [parse_cid(r["manifest_cid"]) for r in rows]
        else:
            values = [[r["twin_id"], bytes.fromhex(r["digest"][2:])] for r in rows]
            records = []
            for r in rows:  # receipts reach IPFS here, as blocks linked from their batch
                block = json_block(json.loads(r["body"]))
                blocks.append((block.cid, block.data))
                records.append(block.cid)
        tree, leaves, data = batch_block(spec, self.anchorer, values, records)
        # One store transaction for the whole batch: its receipt blocks and its batch block, pinned as one DAG.
        self.store.put_dag(leaves, [*blocks, (leaves, data)])
        root = "0x" + tree.root.hex()
        key = ("twin_id", "seq") if spec.kind is BatchKind.SNAPSHOTS else ("id",)
        with self.state.write() as db:
            db.execute(
                "INSERT INTO batches (root, kind, count, leaves_cid, status, created) "
                "VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING",
                (root, int(spec.kind), len(rows), cid_text(leaves), "sending", time.time()),
            )
            for i, row in enumerate(rows):
                proof = json.dumps(["0x" + p.hex() for p in tree.proof(i)])
                where = " AND ".join(f"{k} = ?" for k in key)
                db.execute(
                    f"UPDATE {spec.table} SET batch_root = ?, proof = ? WHERE {where}",  # noqa: S608
                    (root, proof, *(row[k] for k in key)),
                )
        return root

    def _finish_in_flight(self) -> int:
        rows = self.state.connection().execute("SELECT root FROM batches WHERE status = 'sending'").fetchall()
        return sum(self._send(r["root"]) for r in rows)

    def _send(self, root: str) -> int:
        db = self.state.connection()
        batch = db.execute("SELECT * FROM batches WHERE root = ?", (root,)).fetchone()
        root_bytes = bytes.fromhex(root[2:])
        try:
            anchored_at, _, _ = self.ledger.batch_of(self.anchorer, root_bytes)
            if anchored_at == 0:
                result = self.ledger.anchor_batch(
                    BatchKind(batch["kind"]), root_bytes, batch["count"], batch["leaves_cid"]
                )
                tx, block = result.tx_hash, result.block_number
            else:
                tx, block = self._find_anchor_tx(root)
        except ContractRevert as revert:
            if revert.error != "BatchAlreadyAnchored":
                self._failed(root, revert)
                return 0
            tx, block = self._find_anchor_tx(root)  # only this account's own anchor makes it revert so
        except Exception as error:  # RPC down or slow: keep the batch, retry on the next tick
            self._failed(root, error)
            return 0
        table = "snapshots" if batch["kind"] == int(BatchKind.SNAPSHOTS) else "receipts"
        with self.state.write() as w:
            w.execute("UPDATE batches SET status = 'anchored', tx_hash = ?, block_number = ? WHERE root = ?",
                      (tx, block, root))  # fmt: skip
            # `anchor_tx IS NULL` lets SQLite find the batch's rows through the partial index of unanchored rows: a
            # plain `batch_root = ?` scanned every row stored, once per batch.
            w.execute(f"UPDATE {table} SET anchor_tx = ?, anchor_block = ? "  # noqa: S608
                      "WHERE batch_root = ? AND anchor_tx IS NULL", (tx, block, root))  # fmt: skip
        log.info("anchored %s batch %s (%d leaves) in %s", table, root[:18], batch["count"], tx)
        return 1

    def _find_anchor_tx(self, root: str) -> tuple[str, int]:
        """The transaction by which this node's account anchored `root` (found in the chain's logs after a crash
        mid-send), read back from the head in pages, no further than the deployment block; anchors of the same root
        by other accounts are theirs, not the node's."""
        query = event_filter(self.ledger.contract, "BatchAnchored", bytes.fromhex(root[2:]), None, self.anchorer)
        entry = self.scanner.latest(query, self.deploy_block)
        if entry is None:
            raise RuntimeError(f"batch {root} is anchored by {self.anchorer} but its event was not found")
        return "0x" + bytes(entry["transactionHash"]).hex(), int(entry["blockNumber"])

    def _failed(self, root: str, error: BaseException) -> None:
        message = f"{error.__class__.__name__}: {str(error)[:200]}"
        log.warning("anchoring batch %s failed, will retry: %s", root[:18], message)
        with self.state.write() as db:
            db.execute("UPDATE batches SET attempts = attempts + 1, last_error = ? WHERE root = ?", (message, root))

    # ------------------------------------------------------------------ loop

    def run(self, stop: threading.Event, interval: float = 0.5) -> None:
        """Tick until `stop`: while batches fail to send, back off from `interval`; otherwise sleep until the next
        batch timer runs out, looking every SEE_INTERVAL for a first pending row."""
        backoff = interval
        while not stop.is_set():
            try:
                self.tick()
                failing = (
                    self.state.connection()
                    .execute("SELECT MAX(attempts) FROM batches WHERE status = 'sending'")
                    .fetchone()[0]
                )
                due = self.next_due()
                backoff = (
                    min(30.0, interval * 2 ** min(int(failing or 0), 6))
                    if failing
                    else min(SEE_INTERVAL if due is None else due, interval)
                )
            except Exception as error:  # never let the worker die; the queue is durable
                log.warning("anchor worker pass failed: %s", error)
            stop.wait(backoff)


def batch_block(
    spec: BatchSpec, anchorer: str, values: list[list[Any]], records: list[CID]
) -> tuple[StandardMerkleTree, CID, bytes]:
    """The Merkle tree of a batch and its IPFS block (dag-cbor: the tree dump and a link to every record)."""
    tree = StandardMerkleTree.of(values, list(spec.types))
    document = {
        "type": "twinledger/batch", "kind": spec.kind.name.lower(), "anchorer": anchorer,
        "tree": tree.dump(), "records": records,
    }  # fmt: skip
    data = dag_cbor.encode(cast(Any, document))
    return tree, to_cid(block_cid(data, codec=DAG_CBOR, version=1)), data
