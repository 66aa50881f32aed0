"""The group committer on its own: many queued pushes and receipts share one sync round and one transaction."""

from __future__ import annotations

from pathlib import Path

import pytest

from twinledger.identity.errors import ReplayedNonce
from twinledger.ipfs import FileBlockStore
from twinledger.ipfs import store as store_module
from twinledger.ipfs.cids import block_cid, to_cid
from twinledger.ipfs.packed import PACKED_BLOCK_BYTES
from twinledger.ipfs.pins import PinIndex
from twinledger_node.auth import Nonce
from twinledger_node.services.commit import GroupCommitter, NonceWork, PushWork, ReceiptWork
from twinledger_node.state import NodeState


def _push(store: FileBlockStore, twin: int, nonce: Nonce) -> PushWork:
    """A push of a small block (a row of the store's blocks.sqlite) and a large one (a file)."""
    staged = store.stage()
    data = b"block of twin %d" % twin
    cid = to_cid(block_cid(data, codec=0x55, version=1))
    staged.put(cid, data)
    large = data * (PACKED_BLOCK_BYTES // len(data) + 1)
    staged.put(to_cid(block_cid(large, codec=0x55, version=1)), large)
    row = (twin, 1, str(cid), str(cid), "0x00", len(data), "00", "did:x", 0, 0)
    return PushWork(twin, 0, row, [str(cid)], staged, nonce)


def test_queued_pushes_and_receipts_share_one_sync_round_and_one_transaction(tmp_path: Path, monkeypatch) -> None:
    state = NodeState(tmp_path / "state.sqlite")
    store = FileBlockStore(tmp_path / "ipfs", pins=PinIndex(state.path))
    commits = GroupCommitter(state, store, capacity=16)
    syncs: list[Path] = []
    real_syncfs = store_module._syncfs
    monkeypatch.setattr(store_module, "_syncfs", lambda path: syncs.append(path) or real_syncfs(path))
    packed_writes: list[int] = []
    real_put = store.packed.put

    def counted_put(rows) -> None:  # type: ignore[no-untyped-def]
        rows = list(rows)
        packed_writes.append(len(rows))
        real_put(rows)

    monkeypatch.setattr(store.packed, "put", counted_put)
    started = commits._ensure_running
    monkeypatch.setattr(commits, "_ensure_running", lambda: None)  # queue everything first, then let it run
    pushes = [_push(store, twin, Nonce(b"p%d" % twin, 2**40, "did:x")) for twin in range(1, 6)]
    futures = [commits.submit(work) for work in pushes]
    reads = [
        commits.submit(ReceiptWork(7, lambda previous, i=i: {"seq": 1, "reader": "did:r", "purpose": "0x",
                                                             "time": i, "previous": previous},
                                   Nonce(b"r%d" % i, 2**40, "did:r")))
        for i in range(3)
    ]  # fmt: skip
    replay = commits.submit(NonceWork(Nonce(b"r0", 2**40, "did:r")))  # the same nonce as a read in this group
    started()
    for future in futures:
        future.result(timeout=30)
    receipts = [future.result(timeout=30) for future in reads]
    with pytest.raises(ReplayedNonce):
        replay.result(timeout=30)
    commits.stop()

    assert len(syncs) == 2  # the large blocks of five pushes: one syncfs for their bytes, one for their renames
    assert packed_writes == [5]  # their small blocks: one SQLite transaction
    db = state.connection()
    assert db.execute("SELECT COUNT(*) FROM snapshots").fetchone()[0] == 5
    assert {str(c) for c in store.pins()} == {work.pins[0] for work in pushes}
    assert receipts[1]["previous"] != receipts[0]["previous"]  # chained inside the one transaction
    assert db.execute("SELECT COUNT(*) FROM receipts").fetchone()[0] == 3
    assert all(work.nonce is not None and work.nonce.spent for work in pushes)
    assert commits.in_flight() == 0
