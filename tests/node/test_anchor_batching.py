"""When the anchor worker cuts a batch (a sub-second timer from the first pending item, or the size), how big a
batch gets (everything pending, up to a bound), and that the biggest batch's block fits IPFS's block limit."""

from __future__ import annotations

import os
import time
from types import SimpleNamespace
from typing import Any

import pytest

from twinledger.chain.types import BatchKind
from twinledger.provenance import json_block
from twinledger_node.services.anchoring import MAX_BATCH_BLOCK, MAX_BATCH_LEAVES, SPECS, AnchorWorker, batch_block
from twinledger_node.state import NodeState

ANCHORER = "0x" + "ab" * 20


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def queue(tmp_path) -> tuple[NodeState, AnchorWorker, Clock, list[int]]:
    """A worker on a real state database whose cut-and-send only records the batch sizes (and marks the rows)."""
    state, clock, cuts = NodeState(tmp_path / "state.sqlite"), Clock(), []
    ledger: Any = SimpleNamespace(client=SimpleNamespace(w3=None, account=None))
    worker = AnchorWorker(state, None, ledger, batch_size=8, batch_seconds=30.0, deploy_block=0, clock=clock)  # type: ignore[arg-type]

    def cut(spec: Any, rows: list[Any]) -> str:
        cuts.append(len(rows))
        with state.write() as db:
            db.executemany("UPDATE receipts SET batch_root = 'cut' WHERE id = ?", [(r["id"],) for r in rows])
        return "cut"

    worker._cut = cut  # type: ignore[method-assign]
    worker._send = lambda root: 1  # type: ignore[method-assign]
    return state, worker, clock, cuts


def add_receipts(state: NodeState, count: int) -> None:
    with state.write() as db:
        db.executemany(
            "INSERT INTO receipts (twin_id, seq, reader, purpose, digest, body, created) VALUES (1, 1, ?, ?, ?, ?, ?)",
            [("did:key:z", "0x00", "0x" + os.urandom(32).hex(), "{}", int(time.time())) for _ in range(count)],
        )


def test_a_partial_batch_is_cut_when_the_interval_has_passed_since_the_first_pending_item(queue):
    state, worker, clock, cuts = queue
    assert worker.tick() == 0 and worker.next_due() is None  # nothing pending: no timer
    add_receipts(state, 1)
    assert worker.tick() == 0 and worker.next_due() == 30.0  # the timer starts when the worker first sees it
    clock.now += 10.25
    add_receipts(state, 1)  # a later item does not restart the timer
    assert worker.tick() == 0 and worker.next_due() == pytest.approx(19.75)
    clock.now += 19.7
    assert worker.tick() == 0 and cuts == []  # 50 ms early: sub-second, not whole seconds
    clock.now += 0.05
    assert worker.tick() == 1 and cuts == [2]
    assert worker.next_due() is None  # the queue is empty again


def test_a_full_batch_is_cut_at_once_and_takes_everything_pending_up_to_the_bound(queue):
    state, worker, _clock, cuts = queue
    add_receipts(state, 7)
    assert worker.tick() == 0
    add_receipts(state, 1)
    assert worker.tick() == 1 and cuts == [8]
    add_receipts(state, MAX_BATCH_LEAVES + 100)  # a backlog: batches as big as allowed, then the rest
    assert worker.tick() == 2 and cuts == [8, MAX_BATCH_LEAVES, 100]
    assert worker.queue_depth() == 0


@pytest.mark.parametrize("kind", [BatchKind.SNAPSHOTS, BatchKind.ACCESS_RECEIPTS])
def test_the_largest_batch_block_fits_the_ipfs_block_limit(kind):
    spec = next(s for s in SPECS if s.kind is kind)
    widest = 2**256 - 1
    digest = b"\xff" * 32
    values = [[widest, widest, digest] if kind is BatchKind.SNAPSHOTS else [widest, digest]] * MAX_BATCH_LEAVES
    record = json_block({"type": "twinledger/receipt", "n": 0}).cid
    _tree, _cid, data = batch_block(spec, ANCHORER, values, [record] * MAX_BATCH_LEAVES)
    assert len(data) <= MAX_BATCH_BLOCK, len(data)
