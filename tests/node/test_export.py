"""The owner's export CAR over HTTP: who may take it, what it holds, how it is recorded, and that it streams."""

from __future__ import annotations

import io
import json
import time
import tracemalloc

import dag_cbor
import pytest

from tests.node.conftest import Owner, RunningNode, owner_at
from twinledger.chain.ledger import GrantRequest
from twinledger.identity import DidKey
from twinledger.ipfs.car import read_car_into
from twinledger.ipfs.dag import walk_dag
from twinledger.verify import read_bundle, verify_twin
from twinledger.verify.bundle import VERSION, FileBlocks
from twinledger.verify.checks import RECEIPT_TYPE
from twinledger.verify.export import ExportCar
from twinledger_node.services import bundles

PURPOSE = "research"


def _problem(response) -> str:
    assert response.headers["content-type"].startswith("application/problem+json"), response.text
    return response.json()["type"].rsplit(":", 1)[-1].rsplit("/", 1)[-1]


def _anchored(node: RunningNode) -> None:
    deadline = time.monotonic() + 30
    while node.runtime.anchors.queue_depth() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert node.runtime.anchors.queue_depth() == 0, "not all anchored"


def _root_block(car: bytes) -> bytes:
    with io.BytesIO(car) as file:
        blocks = FileBlocks(file)
        roots = read_car_into(blocks, file, require_complete=True)  # and the whole DAG is in it
        return blocks.get(roots[0])


def _receipts(node: RunningNode, twin: int) -> list[dict]:
    """The twin's access receipts (its denial records, refused reads and exports, share the table: left out)."""
    rows = node.runtime.state.connection().execute("SELECT body FROM receipts WHERE twin_id = ? ORDER BY id", (twin,))
    return [body for row in rows.fetchall() if (body := json.loads(row["body"]))["type"] == RECEIPT_TYPE]


def test_the_owner_exports_every_snapshot_with_its_content_in_pages_recorded_once(
    node: RunningNode, owner: Owner, monkeypatch: pytest.MonkeyPatch
):
    twin, _ = owner.ledger.register("asset")
    node.wait_indexed()
    readings = [b"reading %d" % i for i in range(5)] + [bytes(range(256)) * 10_000]  # the last: 3 UnixFS chunks
    with node.client(owner.pkh) as http:
        for reading in readings:
            assert http.post(f"/v1/twins/{twin}/snapshots", content=reading).status_code == 202
        assert http.get(f"/v1/twins/{twin}/snapshots/2").status_code == 200  # one read, receipted before the export
    _anchored(node)
    monkeypatch.setattr(bundles, "PAGE", 2)  # several pages of snapshots and of receipts
    with node.client(owner.recovery) as http:  # the owner's recovery key speaks for the owner too
        exported = http.get(f"/v1/twins/{twin}/export.car")
    assert exported.status_code == 200, exported.text
    assert exported.headers["content-type"] == "application/vnd.ipld.car"
    assert "content-length" not in exported.headers  # streamed
    export = ExportCar(io.BytesIO(exported.content))
    assert export.twin_id == twin and export.latest == len(readings)
    for seq, reading in enumerate(readings, start=1):
        out = io.BytesIO()
        opened = export.open(seq, owner.recovery, out)
        assert out.getvalue() == reading and opened.size == len(reading)
    big = export.index.snapshots[-1].content
    assert big is not None and len(list(walk_dag(big, export.blocks.get))) == 4  # a dag-pb root, three raw leaves
    # `verify --car` reads the export as any provenance CAR (index version 3)
    report = verify_twin(owner.ledger, twin, io.BytesIO(exported.content))
    assert report.snapshots == len(readings) and report.receipts == 1
    assert read_bundle(io.BytesIO(exported.content))[0] == export.index
    root = dag_cbor.decode(_root_block(exported.content))
    assert len(root["snapshots"]) == 3 and len(root["receipts"]) == 1  # pages of 2 entries, linked from the root
    # one receipt for the whole export, naming the newest snapshot (which hash-links all before it)
    receipts = _receipts(node, twin)
    assert len(receipts) == 2
    recorded = receipts[-1]
    assert recorded["seq"] == len(readings) and recorded["reader"] == owner.recovery.did
    assert recorded["request"]["target"].endswith(f"/v1/twins/{twin}/export.car")
    assert recorded["manifestCid"] == str(export.index.snapshots[-1].cid)
    # the receipt of the export is in the next one, hash-linked after the read's
    _anchored(node)
    with node.client(owner.pkh) as http:
        again = http.get(f"/v1/twins/{twin}/export.car")
    assert len(ExportCar(io.BytesIO(again.content)).index.receipts) == 2
    assert verify_twin(owner.ledger, twin, io.BytesIO(again.content)).receipts == 2
    assert read_bundle(io.BytesIO(again.content))[1].get(export.index.snapshots[0].cid)  # manifests are in it
    assert VERSION == 3


def test_only_the_owner_exports_not_a_grantee_nor_the_owner_before_a_transfer(
    node: RunningNode, owner: Owner, anvil, deployment, accounts
):
    twin, _ = owner.ledger.register("asset")
    grantee = DidKey.generate()
    owner.ledger.grant(
        GrantRequest.of(twin, grantee.did, PURPOSE, "read,audit", owner.ledger.client.chain_time() + 3600)
    )
    node.wait_indexed()
    with node.client(owner.pkh) as http:
        assert http.post(f"/v1/twins/{twin}/snapshots", content=b"mine").status_code == 202
    before = len(_receipts(node, twin))
    with node.client(grantee) as http:
        assert http.get(f"/v1/twins/{twin}/snapshots/1", params={"purpose": PURPOSE}).status_code == 200
        refused = http.get(f"/v1/twins/{twin}/export.car", params={"purpose": PURPOSE})
        plain = http.get(f"/v1/twins/{twin}/export.car")
    for response in (refused, plain):
        assert response.status_code == 403 and _problem(response) == "not-owner", response.text
        assert "only its owner may export it" in response.json()["detail"]
    assert len(_receipts(node, twin)) == before + 1  # the grantee's read, no export
    with node.client(DidKey.generate()) as http:
        assert _problem(http.get(f"/v1/twins/{twin}/export.car")) == "not-owner"
    with node.client() as http:  # unsigned
        assert http.get(f"/v1/twins/{twin}/export.car").status_code == 401
    with node.client(owner.pkh) as http:
        assert http.get(f"/v1/twins/{twin + 1000}/export.car").status_code == 404
        empty, _ = owner.ledger.register("asset")
        node.wait_indexed()
        nothing = http.get(f"/v1/twins/{empty}/export.car")
    assert nothing.status_code == 404 and "no snapshots" in nothing.json()["detail"]

    buyer = owner_at(node, anvil, deployment, accounts[2])
    owner.ledger.transfer(twin, buyer.account.address)
    node.wait_indexed()
    for previous in (owner.pkh, owner.recovery):
        with node.client(previous) as http:
            gone = http.get(f"/v1/twins/{twin}/export.car")
        assert gone.status_code == 403 and _problem(gone) == "not-owner", gone.text
        assert buyer.account.address in gone.json()["detail"]
    with node.client(buyer.pkh) as http:
        bought = http.get(f"/v1/twins/{twin}/export.car")
    assert bought.status_code == 200
    # what the seller pushed is sealed to the seller's key: the buyer's export holds it, the buyer cannot open it
    with pytest.raises(Exception, match="sealed to"):
        ExportCar(io.BytesIO(bought.content)).open(1, buyer.recovery, io.BytesIO())


def test_an_export_streams_holding_a_page_of_rows_and_a_block_at_a_time(node: RunningNode, owner: Owner):
    twin, _ = owner.ledger.register("asset")
    node.wait_indexed()
    big = bytes(range(256)) * 12_288  # 3 MiB each (three 1 MiB blocks), 24 MiB in all
    with node.client(owner.pkh) as http:
        for i in range(8):
            assert http.post(f"/v1/twins/{twin}/snapshots", content=bytes([i]) + big).status_code == 202
        tracemalloc.start()
        try:
            size = 0
            with http.stream("GET", f"/v1/twins/{twin}/export.car") as response:
                assert response.status_code == 200
                for chunk in response.iter_bytes(64 * 1024):
                    size += len(chunk)
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
    assert size > 8 * len(big)
    # the node (in this process) and the client together hold a few 1 MiB blocks at a time (the store's read, the
    # server's and the client's buffers), not the export: an export built in memory peaks above its 24 MiB
    assert peak < 6 * 1024 * 1024, f"peak {peak} bytes while exporting {size}"
