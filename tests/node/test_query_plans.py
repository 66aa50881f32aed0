"""Cost per operation does not grow with what is stored: no statement the node runs for a push, a read or an
anchored batch scans a table that grows with use (SQLite's own query plans, for every statement actually run)."""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Callable

from eth_account.signers.local import LocalAccount

from tests.node.conftest import RunningNode, owner_at, start_node
from twinledger.chain.deploy import Deployment
from twinledger.chain.ledger import GrantRequest
from twinledger.identity import DidKey

PURPOSE = "research"
# Tables whose size follows what the node has stored and served.
GROWING = ("snapshots", "receipts", "pins", "nonces", "blocks", "batches")


def push_read_and_anchor(
    node: RunningNode, anvil: str, deployment: Deployment, account: LocalAccount, steady: Callable[[], object]
) -> None:
    """A twin with a device and a reader; once set up (`steady()` marks it), 4 pushes, 4 reads, all anchored."""
    owner = owner_at(node, anvil, deployment, account)
    device, reader = DidKey.generate(), DidKey.generate()
    twin, _ = owner.ledger.register("asset", device_did=device.did)
    owner.ledger.grant(GrantRequest.of(twin, reader.did, PURPOSE, "read", owner.ledger.client.chain_time() + 3600))
    node.wait_indexed()
    steady()  # from here: the steady state, not start-up and schema creation
    with node.client(device) as http:
        for i in range(4):
            assert http.post(f"/v1/twins/{twin}/snapshots", content=b"reading %d" % i).status_code == 202
    with node.client(reader) as http:
        for seq in (1, 2, 3, 4):
            assert http.get(f"/v1/twins/{twin}/snapshots/{seq}", params={"purpose": PURPOSE}).status_code == 200
    deadline = time.monotonic() + 30
    while node.runtime.anchors.queue_depth() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert node.runtime.anchors.queue_depth() == 0, "the pushes and reads were not all anchored"


def test_pushes_reads_and_anchoring_never_scan_a_growing_table(anvil, deployment, accounts, tmp_path, monkeypatch):
    statements: list[str] = []
    real_connect = sqlite3.connect

    def traced(*args, **kwargs):  # type: ignore[no-untyped-def]
        conn = real_connect(*args, **kwargs)
        conn.set_trace_callback(statements.append)
        return conn

    monkeypatch.setattr(sqlite3, "connect", traced)
    node = start_node(tmp_path / "node", anvil, deployment, accounts[9], anchor_batch_size=2)
    try:
        push_read_and_anchor(node, anvil, deployment, accounts[3], statements.clear)
    finally:
        node.stop()
        monkeypatch.undo()

    explain = sqlite3.connect(tmp_path / "node" / "node" / "state.sqlite")
    explain.execute(f"ATTACH DATABASE '{tmp_path / 'node' / 'ipfs' / 'blocks.sqlite'}' AS store")
    scans: dict[str, list[str]] = {}
    seen = 0
    for statement in set(statements):
        head = statement.lstrip().split(None, 1)[0].upper()
        if head not in ("SELECT", "INSERT", "UPDATE", "DELETE"):
            continue
        try:
            plan = [row[3] for row in explain.execute("EXPLAIN QUERY PLAN " + statement)]
        except sqlite3.OperationalError:
            continue  # a statement of the chain index (another file): not one of these tables
        seen += 1
        for step in plan:
            if any(step == f"SCAN {table}" or step.startswith(f"SCAN {table} ") for table in GROWING):
                scans.setdefault(step, []).append(statement)
    assert seen > 10, "the trace caught too few statements to mean anything"
    assert scans == {}, f"statements scanning a growing table: {scans}"
