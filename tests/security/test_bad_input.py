"""Malformed input gets a problem+json 4xx naming the value, never a 500, and leaves nothing behind."""

from __future__ import annotations

import time

from tests.node.conftest import Owner, RunningNode
from tests.security._http_helpers import problem, problem_slug
from twinledger.identity import DidKey

NOT_HEX = "0x" + "z" * 64  # looks like a 32-byte purpose code, is not hex


def test_a_purpose_code_that_is_not_hex_is_a_bad_request(node: RunningNode, owner: Owner):
    device, stranger = DidKey.generate(), DidKey.generate()
    twin, _ = owner.ledger.register("asset", device_did=device.did)
    node.wait_indexed()
    with node.client(device) as http:
        assert http.post(f"/v1/twins/{twin}/snapshots", content=b"reading").status_code == 202
    for _ in range(400):  # the snapshot's batch anchored (and its block pinned) before the pins are counted
        if node.runtime.anchors.queue_depth() == 0:
            break
        time.sleep(0.025)
    assert node.runtime.anchors.queue_depth() == 0
    pins = set(node.runtime.store.pins())
    with node.client(stranger) as http:
        for path in (f"/v1/twins/{twin}/snapshots/latest", f"/v1/twins/{twin}/snapshots/1", f"/v1/twins/{twin}/audit"):
            read = http.get(path, params={"purpose": NOT_HEX})
            assert read.status_code == 400, (path, read.text)
            assert problem_slug(read) == "bad-purpose" and NOT_HEX in problem(read)["detail"]
        pushed = http.post(f"/v1/twins/{twin}/snapshots", params={"purpose": NOT_HEX}, content=b"not stored")
        assert pushed.status_code == 400 and problem_slug(pushed) == "bad-purpose", pushed.text
    # nothing half-written: no snapshot, no receipt, no pin
    db = node.runtime.state.connection()
    assert db.execute("SELECT COUNT(*) FROM snapshots WHERE twin_id = ?", (twin,)).fetchone()[0] == 1
    assert db.execute("SELECT COUNT(*) FROM receipts WHERE twin_id = ?", (twin,)).fetchone()[0] == 0
    assert set(node.runtime.store.pins()) == pins


def test_a_one_character_cid_is_a_bad_request(node: RunningNode, owner: Owner):
    twin, _ = owner.ledger.register("asset")
    node.wait_indexed()
    with node.client(owner.recovery) as http:
        for cid in ("0", "z", "b"):  # a multibase prefix and nothing after it (found by schemathesis)
            read = http.get(f"/v1/twins/{twin}/snapshots/by-cid/{cid}")
            assert read.status_code == 400, (cid, read.text)
            assert problem_slug(read) == "invalid-input" and f"'{cid}' is not a CID" in problem(read)["detail"]
