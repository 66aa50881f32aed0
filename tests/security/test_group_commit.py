"""The group-committed data path, attacked for real (anvil + nodes over HTTP).

- A signed read or push replayed after a restart, or through a second node process on the same data directory,
  is refused: the nonce's durable row is written in the same commit as the receipt (or the snapshot), and the
  body is sent only after it.
- Two nodes sharing one state database chain a twin's receipts as one chain (each head read inside the write), and
  pushes to one twin racing through both make one gapless manifest chain (before: 500s, UNIQUE(twin_id, seq)).
- Past the bounded commit queue the node answers 503 problem+json with Retry-After, and stores nothing of it.
- Pins are rows in the state database: they survive a restart, and `ipfs gc` on the node's store keeps every
  snapshot's DAG.
- A snapshot's key forgotten (crypto-shredding's hook) is gone from the read cache: nothing is served from it.
"""

from __future__ import annotations

import itertools
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest
from eth_account.signers.local import LocalAccount

from tests.node.conftest import Owner, RunningNode, owner_at
from tests.security._http_helpers import holding_the_state_writer_lock, problem, problem_slug, quiet_node
from twinledger.chain.deploy import Deployment
from twinledger.chain.ledger import GrantRequest
from twinledger.errors import IntegrityError
from twinledger.identity import DidKey
from twinledger.identity.http_signatures import sign_request
from twinledger.ipfs import FileBlockStore, parse_cid
from twinledger.provenance import receipt_digest

PURPOSE = "research"


def _twin(node: RunningNode, owner: Owner, reader: DidKey) -> tuple[int, DidKey]:
    device = DidKey.generate()
    twin, _ = owner.ledger.register("asset", device_did=device.did)
    expiry = owner.ledger.client.chain_time() + 3600
    owner.ledger.grant(GrantRequest.of(twin, reader.did, PURPOSE, "read", expiry))
    node.wait_indexed()
    with node.client(device) as http:
        assert http.post(f"/v1/twins/{twin}/snapshots", content=b"reading 1").status_code == 202
    return twin, device


def _signed_get(signer: DidKey, url: str) -> dict[str, str]:
    return sign_request(signer, "GET", url, b"")


@contextmanager
def two_nodes(
    data_dir: Path, anvil: str, deployment: Deployment, accounts: list[LocalAccount]
) -> Iterator[tuple[RunningNode, RunningNode, Owner, DidKey, int, DidKey]]:
    """Two node processes' worth of runtime on one data directory (as `node up --workers 2` runs them), a twin with
    one snapshot, and a reader granted READ: (one, two, owner, reader, twin, device)."""
    reader = DidKey.generate()
    with quiet_node(data_dir, anvil, deployment, accounts[9]) as one, \
            quiet_node(data_dir, anvil, deployment, accounts[9]) as two:  # fmt: skip
        owner = owner_at(one, anvil, deployment, accounts[2])
        twin, device = _twin(one, owner, reader)
        two.wait_indexed()
        yield one, two, owner, reader, twin, device


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    return tmp_path / "node"


def test_a_read_replayed_after_a_restart_is_refused(anvil, deployment, accounts, data_dir):
    reader = DidKey.generate()
    with quiet_node(data_dir, anvil, deployment, accounts[9]) as first:
        owner = owner_at(first, anvil, deployment, accounts[2])
        twin, _ = _twin(first, owner, reader)
        path = f"/v1/twins/{twin}/snapshots/1?purpose={PURPOSE}"
        headers = _signed_get(reader, first.url + path)
        served = httpx.get(first.url + path, headers=headers, timeout=30)
        assert served.status_code == 200 and served.content == b"reading 1"
    with quiet_node(data_dir, anvil, deployment, accounts[9]) as restarted:
        restarted.runtime.auth.settings.public_base_url = first.url  # the restarted node on another port
        replay = httpx.get(restarted.url + path, headers={**headers}, timeout=30)
        assert replay.status_code == 401 and problem_slug(replay) == "replayed-nonce", replay.text
        receipts = (
            restarted.runtime.state.connection()
            .execute("SELECT COUNT(*) FROM receipts WHERE twin_id = ?", (twin,))
            .fetchone()[0]
        )
    assert receipts == 1  # the replay left no receipt


def test_a_replay_through_a_second_node_process_is_refused(anvil, deployment, accounts, data_dir):
    """Two nodes on one data directory (as `node up --workers 2` runs): a request served by one is refused by the
    other, whatever its in-memory cache says; pushes too."""
    with two_nodes(data_dir, anvil, deployment, accounts) as (one, two, _owner, reader, twin, device):
        path = f"/v1/twins/{twin}/snapshots/latest?purpose={PURPOSE}"
        # the URL a client signs is its target; the same request sent to either port differs only in the host
        headers = _signed_get(reader, one.url + path)
        assert httpx.get(one.url + path, headers=headers, timeout=30).status_code == 200
        two.runtime.auth.settings.public_base_url = one.url  # both answer for the same public URL
        replay = httpx.get(two.url + path, headers=headers, timeout=30)
        assert replay.status_code == 401 and problem_slug(replay) == "replayed-nonce", replay.text

        push = f"/v1/twins/{twin}/snapshots"
        signed = sign_request(device, "POST", one.url + push, b"reading 2")
        assert httpx.post(one.url + push, content=b"reading 2", headers=signed, timeout=30).status_code == 202
        again = httpx.post(two.url + push, content=b"reading 2", headers=signed, timeout=30)
        assert again.status_code == 401 and problem_slug(again) == "replayed-nonce", again.text
        seqs = [r[0] for r in one.runtime.state.connection().execute(
            "SELECT seq FROM snapshots WHERE twin_id = ? ORDER BY seq", (twin,))]  # fmt: skip
        assert seqs == [1, 2]  # the replayed push stored nothing


def test_two_node_processes_chain_one_twins_receipts(anvil, deployment, accounts, data_dir):
    with two_nodes(data_dir, anvil, deployment, accounts) as (one, two, owner, reader, twin, device):
        with one.client(device) as http:  # a second process pushes to the same twin: the chain continues
            assert http.post(f"/v1/twins/{twin}/snapshots", content=b"reading 2").status_code == 202
        with two.client(device) as http:
            pushed = http.post(f"/v1/twins/{twin}/snapshots", content=b"reading 3")
            assert pushed.status_code == 202 and pushed.json()["seq"] == 3, pushed.text
        served = []
        with one.client(reader) as a, two.client(reader) as b:

            def read(http: httpx.Client) -> None:
                response = http.get(f"/v1/twins/{twin}/snapshots/1", params={"purpose": PURPOSE})
                served.append(response.status_code)

            threads = [threading.Thread(target=read, args=(http,)) for http in (a, b) * 6]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
        assert served == [200] * 12
        with one.client(owner.pkh) as http:
            audit = http.get(f"/v1/twins/{twin}/audit").json()
    receipts = [e["data"]["receipt"] for e in audit["entries"] if e["kind"] == "read"]
    assert len(receipts) == 12
    for earlier, later in itertools.pairwise(receipts):
        assert later["previous"] == "0x" + receipt_digest(earlier).hex()


def test_a_full_commit_queue_is_answered_503_with_retry_after(anvil, deployment, accounts, data_dir):
    reader = DidKey.generate()
    with quiet_node(data_dir, anvil, deployment, accounts[9], commit_queue=1) as node:
        owner = owner_at(node, anvil, deployment, accounts[2])
        twin, device = _twin(node, owner, reader)
        # Another process holds the state database's write lock: the committer waits, its one slot taken.
        waiting: list[httpx.Response] = []
        first = threading.Thread(target=lambda: waiting.append(
            node.client(reader).get(f"/v1/twins/{twin}/snapshots/1", params={"purpose": PURPOSE})))  # fmt: skip
        try:
            with holding_the_state_writer_lock(node):
                first.start()
                for _ in range(400):
                    if node.runtime.commits.in_flight() == 1:
                        break
                    time.sleep(0.025)
                assert node.runtime.commits.in_flight() == 1
                with node.client(reader) as http:
                    refused = http.get(f"/v1/twins/{twin}/snapshots/1", params={"purpose": PURPOSE})
                with node.client(device) as http:
                    refused_push = http.post(f"/v1/twins/{twin}/snapshots", content=b"reading 2")
        finally:
            first.join(timeout=60)
        for response in (refused, refused_push):
            assert response.status_code == 503 and problem_slug(response) == "overloaded", response.text
            assert int(response.headers["retry-after"]) >= 1
            assert "retry" in problem(response)["hint"]
        assert [r.status_code for r in waiting] == [200]  # the queued read was served once its commit went through
        db = node.runtime.state.connection()
        assert db.execute("SELECT MAX(seq) FROM snapshots WHERE twin_id = ?", (twin,)).fetchone()[0] == 1
        assert db.execute("SELECT COUNT(*) FROM receipts WHERE twin_id = ?", (twin,)).fetchone()[0] == 1


def test_pins_live_in_the_state_database_and_survive_a_restart(anvil, deployment, accounts, data_dir):
    reader = DidKey.generate()
    with quiet_node(data_dir, anvil, deployment, accounts[9]) as node:
        owner = owner_at(node, anvil, deployment, accounts[2])
        twin, _ = _twin(node, owner, reader)
        row = (
            node.runtime.state.connection()
            .execute("SELECT manifest_cid, content_cid FROM snapshots WHERE twin_id = ?", (twin,))
            .fetchone()
        )
    # What `twinledger ipfs gc` does on the node's store, with the node stopped: it finds the node's pins, or, when
    # they are in a PostgreSQL database it cannot open, refuses to touch pins at all (reading blocks needs none)
    if node.runtime.state.url is not None:
        opened = FileBlockStore(data_dir / "ipfs")
        assert opened.has(parse_cid(row["manifest_cid"]))
        for touch_pins in (opened.gc, opened.pins, lambda: opened.pin(parse_cid(row["content_cid"]))):
            with pytest.raises(IntegrityError, match="pins of the block store"):
                touch_pins()
        store = node.runtime.store
        assert isinstance(store, FileBlockStore)
    else:
        store = FileBlockStore(data_dir / "ipfs")
    pinned = {str(c) for c in store.pins()}
    assert {row["manifest_cid"], row["content_cid"]} <= pinned
    store.gc()
    for cid in (row["manifest_cid"], row["content_cid"]):
        assert store.has(parse_cid(cid))
    with quiet_node(data_dir, anvil, deployment, accounts[9]) as restarted:
        with restarted.client(reader) as http:
            read = http.get(f"/v1/twins/{twin}/snapshots/1", params={"purpose": PURPOSE})
        assert read.status_code == 200 and read.content == b"reading 1"


def test_a_forgotten_key_is_gone_from_the_read_cache(anvil, deployment, accounts, data_dir):
    """Crypto-shredding destroys a snapshot's key material; the node must then not decrypt it from its cache."""
    reader = DidKey.generate()
    with quiet_node(data_dir, anvil, deployment, accounts[9]) as node:
        owner = owner_at(node, anvil, deployment, accounts[2])
        twin, _ = _twin(node, owner, reader)
        snapshot = node.runtime.snapshots.get(twin, 1)
        with node.client(reader) as http:
            assert http.get(f"/v1/twins/{twin}/snapshots/1", params={"purpose": PURPOSE}).status_code == 200
            # The envelope's sealed keys are destroyed: here, the manifest block that holds them is deleted.
            manifest = parse_cid(snapshot.manifest_cid)
            store = node.runtime.store
            assert isinstance(store, FileBlockStore)
            store._remove_raw(manifest)
            assert http.get(f"/v1/twins/{twin}/snapshots/1", params={"purpose": PURPOSE}).status_code == 200, (
                "the cache serves the key until told otherwise"
            )
            node.runtime.snapshots.forget_keys(snapshot.manifest_cid)
            after = http.get(f"/v1/twins/{twin}/snapshots/1", params={"purpose": PURPOSE})
        assert after.status_code == 404 and problem_slug(after) == "not-found", after.text


def test_concurrent_pushes_through_two_processes_make_one_chain(anvil, deployment, accounts, data_dir):
    """Pushes to one twin racing through two processes: each is stored once, numbered without a gap, and each
    manifest names the one before it (a push built on a head another process moved is rebuilt, not forked)."""
    with two_nodes(data_dir, anvil, deployment, accounts) as (one, two, _owner, _reader, twin, device):
        answers: list[int] = []

        def push(node: RunningNode, i: int) -> None:
            with node.client(device) as http:
                answers.append(http.post(f"/v1/twins/{twin}/snapshots", content=b"reading %d" % i).status_code)

        threads = [threading.Thread(target=push, args=(node, i)) for i, node in enumerate((one, two) * 3)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert answers == [202] * 6
        rows = (
            one.runtime.state.connection()
            .execute("SELECT seq, manifest_cid FROM snapshots WHERE twin_id = ? ORDER BY seq", (twin,))
            .fetchall()
        )
        assert [r["seq"] for r in rows] == list(range(1, 8))
        manifests = [one.runtime.snapshots.manifest(one.runtime.snapshots.get(twin, r["seq"])) for r in rows]
        for earlier, later in itertools.pairwise(zip(rows, manifests, strict=True)):
            assert later[1]["previous"] == earlier[0]["manifest_cid"]
