"""The chain going away, reorgs that remove a revocation or a grant, and the disk failing mid-import."""

from __future__ import annotations

import errno
import io
import os

import pytest

from tests.reliability.conftest import NodeProcess, Stack, until
from twinledger.chain.ledger import GrantRequest
from twinledger.chain.localchain import rpc_call
from twinledger.errors import Unavailable
from twinledger.identity import DidKey
from twinledger.ipfs import FileBlockStore, ImportOptions, cat, import_file
from twinledger.ipfs import store as store_module

pytestmark = pytest.mark.reliability


def test_chain_outage_ingest_queues_reads_fail_closed_everything_resumes(stack: Stack, tmp_path):
    device, reader = DidKey.generate(), DidKey.generate()
    twin, _ = stack.owner.register("asset", device_did=device.did)
    stack.owner.grant(GrantRequest.of(twin, reader.did, "research", "read", stack.owner.client.chain_time() + 3600))
    node = NodeProcess(stack, tmp_path / "node", freshness_window=1, anchor_batch_size=2, anchor_batch_seconds=0.2)
    node.start()
    try:
        node.register_recovery()
        with node.client(device) as producer, node.client(reader) as consumer:
            stack.chain.down()
            until(lambda: producer.get("/readyz").status_code == 503, "the node to notice the outage")
            accepted = [producer.post(f"/v1/twins/{twin}/snapshots", content=b"during outage %d" % i) for i in range(3)]
            assert [r.status_code for r in accepted] == [202, 202, 202]  # ingest keeps accepting
            assert node.metric("twinledger_anchor_queue_depth") == 3  # and queues the anchors
            refused = consumer.get(f"/v1/twins/{twin}/snapshots/latest", params={"purpose": "research"})
            assert refused.status_code == 503 and refused.json()["type"].endswith("index-stale")  # reads fail closed
            stack.chain.up()  # same port, same state
            until(lambda: producer.get("/readyz").status_code == 200, "the node to see the chain again")
            # Another API process may answer the read, and with a 1 s freshness window on a loaded machine the
            # index can lapse again for a moment: reads resume, and until then they fail closed (503), never serve.
            reads = []

            def served() -> bool:
                reads.append(consumer.get(f"/v1/twins/{twin}/snapshots/latest", params={"purpose": "research"}))
                return reads[-1].status_code == 200

            until(served, "reads to resume")
            assert {r.status_code for r in reads[:-1]} <= {503}, [(r.status_code, r.text) for r in reads]
            assert reads[-1].content == b"during outage 2"
            until(lambda: node.metric("twinledger_anchor_queue_depth") == 0, "the queued anchors to be sent")
    finally:
        node.stop()


@pytest.mark.parametrize("removed", ["revocation", "grant"])
def test_reorg_changes_the_decision(stack: Stack, tmp_path, removed: str):
    device, reader = DidKey.generate(), DidKey.generate()
    twin, _ = stack.owner.register("asset", device_did=device.did)
    expiry = stack.owner.client.chain_time() + 3600
    if removed == "revocation":
        stack.owner.grant(GrantRequest.of(twin, reader.did, "research", "read", expiry))
    node = NodeProcess(stack, tmp_path / "node").start()
    try:
        node.register_recovery()
        with node.client(device) as producer, node.client(reader) as consumer:
            assert producer.post(f"/v1/twins/{twin}/snapshots", content=b"data").status_code == 202

            def status() -> int:
                return consumer.get(f"/v1/twins/{twin}/snapshots/latest", params={"purpose": "research"}).status_code

            fork = rpc_call(stack.rpc_url, "evm_snapshot")
            if removed == "revocation":
                stack.owner.revoke(twin, reader.did, "research")
                until(lambda: status() == 403, "the revocation to be enforced")
            else:
                stack.owner.grant(GrantRequest.of(twin, reader.did, "research", "read", expiry))
                until(lambda: status() == 200, "the grant to be honoured")
            rpc_call(stack.rpc_url, "evm_revert", [fork])  # the block with the change is orphaned
            for _ in range(3):
                rpc_call(stack.rpc_url, "evm_mine")  # and the other branch grows past it
            expected = 200 if removed == "revocation" else 403
            until(lambda: status() == expected, f"the index to follow the reorg ({removed} gone)")
    finally:
        node.stop()


def test_disk_write_failing_mid_import_leaves_the_store_consistent(tmp_path, monkeypatch):
    store = FileBlockStore(tmp_path / "store")
    kept = import_file(store, io.BytesIO(b"already here" * 1000), ImportOptions())
    before_blocks = sorted(store.iter_keys())
    before_pins = store.pins()
    real_write = os.write
    calls = {"n": 0}

    def failing_write(fd: int, data) -> int:  # type: ignore[no-untyped-def]
        calls["n"] += 1
        if calls["n"] > 5:
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_write(fd, data)

    monkeypatch.setattr(store_module.os, "write", failing_write)
    with pytest.raises(Unavailable, match="could not write: No space left on device"):
        import_file(store, io.BytesIO(os.urandom(4 * 1024 * 1024)), ImportOptions.profile("unixfs-v0-2015"))
    monkeypatch.undo()
    assert sorted(store.iter_keys()) == before_blocks  # no new block became visible
    assert store.pins() == before_pins
    assert not list(store.tmp_dir.iterdir()), "staged files were left behind"
    assert b"".join(cat(store, kept.cid)) == b"already here" * 1000
