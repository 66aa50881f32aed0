"""Fail-closed reads when the chain goes away, restart without loss, two nodes on one chain, audit rights,
relayer rate limits, and `twinledger node up` on embedded defaults."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import httpx
from eth_account import Account

from tests.node.conftest import Owner, RunningNode, register_recovery_key, start_node
from twinledger.chain.client import ChainClient
from twinledger.chain.deploy import deploy
from twinledger.chain.ledger import GrantRequest, TwinLedger
from twinledger.chain.localchain import DEV_KEYS, LocalChain, free_port
from twinledger.chain.types import BatchKind
from twinledger.identity import DidAuth, DidKey


def _until(predicate, what: str, attempts: int = 600) -> None:
    for _ in range(attempts):
        if predicate():
            return
        time.sleep(0.025)
    raise AssertionError(f"gave up waiting for {what}")


def test_reads_fail_closed_while_the_chain_is_unreachable_and_recover(tmp_path):
    chain = LocalChain(tmp_path / "chain", port=free_port())
    status = chain.up()
    owner = Account.from_key(DEV_KEYS[1])
    try:
        deployment, _ = deploy(ChainClient(str(status.rpc_url), Account.from_key(DEV_KEYS[0])), tmp_path / "dep")
        ledger = TwinLedger(ChainClient(str(status.rpc_url), owner), deployment.twin_ledger)
        reader = DidKey.generate()
        twin, _ = ledger.register("asset")
        ledger.grant(GrantRequest.of(twin, reader.did, "research", "read", ledger.client.chain_time() + 3600))
        node = start_node(tmp_path / "node", str(status.rpc_url), deployment, Account.from_key(DEV_KEYS[9]),
                          freshness_window=1)  # fmt: skip
        try:
            node.wait_indexed()
            with node.client(reader) as http:
                assert http.get(f"/v1/twins/{twin}/snapshots/latest", params={"purpose": "research"}).status_code == 404
                chain.down()
                _until(lambda: http.get("/readyz").status_code == 503, "the node to notice the chain is gone")
                stale = http.get(f"/v1/twins/{twin}/snapshots/latest", params={"purpose": "research"})
                assert stale.status_code == 503 and stale.json()["type"].endswith("index-stale")
                assert "Retry-After" in stale.headers
                chain.up()  # same port, same state
                _until(lambda: http.get("/readyz").status_code == 200, "the node to recover")
                assert http.get(f"/v1/twins/{twin}/snapshots/latest", params={"purpose": "research"}).status_code == 404
        finally:
            node.stop()
    finally:
        chain.down()


def test_restart_keeps_snapshots_and_anchors_what_was_pending(tmp_path, anvil, deployment, accounts):
    owner_account = accounts[1]
    ledger = TwinLedger(ChainClient(anvil, owner_account), deployment.twin_ledger)
    device = DidKey.generate()
    data = tmp_path / "node"
    # huge batch size and wait: nothing gets anchored before the restart
    first = start_node(data, anvil, deployment, accounts[8], anchor_batch_size=1000, anchor_batch_seconds=3600)
    try:
        recovery = DidKey.generate()
        register_recovery_key(first.url, owner_account, recovery, first.runtime.client.chain_id)
        twin, _ = ledger.register("asset", device_did=device.did)
        first.wait_indexed()
        with first.client(device) as http:
            acknowledged = [http.post(f"/v1/twins/{twin}/snapshots", content=b"v%d" % i).json() for i in range(3)]
        assert first.runtime.anchors.queue_depth() == 3
        node_did = first.runtime.node_key.did
    finally:
        first.stop()
    key_file = data / "node" / "node-key.json"
    assert key_file.stat().st_mode & 0o777 == 0o600
    second = start_node(data, anvil, deployment, accounts[8], anchor_batch_size=1000, anchor_batch_seconds=0.1)
    try:
        assert second.runtime.node_key.did == node_did  # the node keeps its identity
        _until(lambda: second.runtime.anchors.queue_depth() == 0, "pending snapshots to be anchored after restart")
        with second.client(recovery) as http:
            for i, snap in enumerate(acknowledged, start=1):
                read = http.get(f"/v1/twins/{twin}/snapshots/{i}")
                assert read.status_code == 200 and read.content == b"v%d" % (i - 1)
                assert read.headers["twinledger-manifest-cid"] == snap["manifestCid"]
        # snapshot batches only: the reads above leave receipts, which are batched on their own
        batches = (
            second.runtime.state.connection()
            .execute("SELECT status, count FROM batches WHERE kind = ?", (int(BatchKind.SNAPSHOTS),))
            .fetchall()
        )
        assert [(b["status"], b["count"]) for b in batches] == [("anchored", 3)]
    finally:
        second.stop()


def test_a_revocation_through_node_a_is_enforced_by_node_b(
    node: RunningNode, owner: Owner, anvil, deployment, accounts, tmp_path
):
    node_b = start_node(tmp_path / "node-b", anvil, deployment, accounts[7])
    try:
        device, reader = DidKey.generate(), DidKey.generate()
        register_recovery_key(node_b.url, owner.account, owner.recovery, node_b.runtime.client.chain_id)
        twin, _ = owner.ledger.register("asset", device_did=device.did)
        owner.ledger.grant(
            GrantRequest.of(twin, reader.did, "research", "read", owner.ledger.client.chain_time() + 3600)
        )
        node_b.wait_indexed()
        with node_b.client(device) as http:
            assert http.post(f"/v1/twins/{twin}/snapshots", content=b"on b").status_code == 202
        with node_b.client(reader) as http:
            assert http.get(f"/v1/twins/{twin}/snapshots/latest", params={"purpose": "research"}).status_code == 200
        now = owner.ledger.client.chain_time()
        revoke = owner.ledger.sign_revoke(owner.account, twin, reader.did, "research", deadline=now + 600)
        with node.client() as http:  # relayed through node A
            relayed = http.post("/v1/consents", json=revoke.as_json())
            assert relayed.status_code == 202, relayed.text
        node_b.wait_indexed()  # node B sees the next block
        with node_b.client(reader) as http:
            denied = http.get(f"/v1/twins/{twin}/snapshots/latest", params={"purpose": "research"})
            assert denied.status_code == 403 and denied.json()["type"].endswith("grant-revoked")
    finally:
        node_b.stop()


def test_audit_needs_the_owner_or_an_audit_grant(node: RunningNode, owner: Owner):
    auditor, stranger = DidKey.generate(), DidKey.generate()
    twin, _ = owner.ledger.register("asset")
    node.wait_indexed()
    with node.client(stranger) as http:
        assert http.get(f"/v1/twins/{twin}/audit", params={"purpose": "audit"}).status_code == 403
    owner.ledger.grant(GrantRequest.of(twin, auditor.did, "audit", "audit", owner.ledger.client.chain_time() + 3600))
    node.wait_indexed()
    with node.client(auditor) as http:
        trail = http.get(f"/v1/twins/{twin}/audit", params={"purpose": "audit", "limit": 1})
        assert trail.status_code == 200 and len(trail.json()["entries"]) == 1 and trail.json()["next"] == 1
        rest = http.get(f"/v1/twins/{twin}/audit", params={"purpose": "audit", "after": 1}).json()
        kinds = [e["kind"] for e in rest["entries"]]
        assert "grant" in kinds and rest["next"] is None
        # the stranger's refused try is in the trail too (services/denials.py)
        assert [e["data"]["requester"] for e in rest["entries"] if e["kind"] == "denial"] == [stranger.did]


def test_relayer_rate_limits_per_signer(node: RunningNode, owner: Owner):
    twin, _ = owner.ledger.register("asset")
    node.wait_indexed()
    limiter = node.runtime.relayer.limiter
    limit, limiter.limit = limiter.limit, 0
    try:
        now = owner.ledger.client.chain_time()
        signed = owner.ledger.sign_grant(
            owner.account,
            GrantRequest.of(twin, DidKey.generate().did, "research", "read", now + 3600),
            deadline=now + 600,
        )
        with node.client() as http:
            limited = http.post("/v1/consents", json=signed.as_json())
        assert limited.status_code == 429 and limited.json()["type"].endswith("rate-limited")
    finally:
        limiter.limit = limit


def test_node_up_serves_grant_read_revoke_denied_on_embedded_defaults(tmp_path):
    """`twinledger node up` with no settings: local anvil, contracts deployed, embedded store, then the whole cycle."""
    port = free_port()
    env = {**os.environ, "TWINLEDGER_DATA_DIR": str(tmp_path), "TWINLEDGER_PORT": str(port)}
    process = subprocess.Popen(
        [sys.executable, "-m", "twinledger.cli", "node", "up"], env=env, stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    try:
        _until(lambda: _ready(port), "the node to come up", attempts=2400)
        info = httpx.get(f"{url}/v1/node", timeout=5).json()
        assert info["chainId"] == 31337
        assert json.loads((tmp_path / "deployments" / "31337.json").read_text())["twin_ledger"] == info["twinLedger"]
        rpc = LocalChain(tmp_path / "chain").status().rpc_url
        owner = Account.from_key(DEV_KEYS[1])
        ledger = TwinLedger(ChainClient(str(rpc), owner), info["twinLedger"])
        device, reader, recovery = DidKey.generate(), DidKey.generate(), DidKey.generate()
        register_recovery_key(url, owner, recovery, ledger.client.chain_id)
        twin, _ = ledger.register("asset", device_did=device.did)
        latest = f"{url}/v1/twins/{twin}/snapshots/latest"

        def read() -> httpx.Response:
            with httpx.Client(auth=DidAuth(reader), timeout=10) as http:
                return http.get(latest, params={"purpose": "research"})

        with httpx.Client(auth=DidAuth(device), timeout=10) as http:
            _until(lambda: http.post(f"{url}/v1/twins/{twin}/snapshots", content=b"v1").status_code == 202, "push")
        ledger.grant(GrantRequest.of(twin, reader.did, "research", "read", ledger.client.chain_time() + 3600))
        _until(lambda: read().status_code == 200, "the grant to reach the node")
        assert read().content == b"v1"
        ledger.revoke(twin, reader.did, "research")
        _until(lambda: read().status_code == 403, "the revocation to reach the node")
        assert read().json()["type"].endswith("grant-revoked")
    finally:
        process.send_signal(signal.SIGTERM)  # graceful shutdown
        output, _ = process.communicate(timeout=60)
    try:
        # uvicorn re-raises SIGTERM after a graceful shutdown, so the exit status is the signal's
        assert process.returncode in (0, -signal.SIGTERM), output
        assert "Application shutdown complete." in output
        assert any(
            json.loads(line).get("logger") == "twinledger.node" for line in output.splitlines() if line.startswith("{")
        )
        reindexed = subprocess.run(
            [sys.executable, "-m", "twinledger.cli", "node", "reindex", "--json"], env=env, capture_output=True,
            text=True, timeout=120, check=True,
        )  # fmt: skip
        assert json.loads(reindexed.stdout)["events"] >= 4  # registration, transfer (mint), grant, revocation
    finally:
        LocalChain(tmp_path / "chain").down()


def _ready(port: int) -> bool:
    try:
        return httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=1).status_code == 200
    except httpx.HTTPError:
        return False
