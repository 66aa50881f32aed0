"""The node end to end over HTTP: push, consent-checked reads, receipts, anchoring, relayer, audit."""

from __future__ import annotations

import hashlib
import itertools
import socket
import time
from http.client import HTTPResponse

from tests.node.conftest import Owner, RunningNode
from twinledger.chain.ledger import GrantRequest
from twinledger.identity import DidKey
from twinledger.provenance import receipt_digest

PLAINTEXT = b'{"temperature": 71.5, "vibration": [0.1, 0.4, 0.2]}'


def _problem(response) -> str:
    assert response.headers["content-type"].startswith("application/problem+json"), response.text
    return response.json()["type"].rsplit(":", 1)[-1].rsplit("/", 1)[-1]


def test_grant_read_revoke_denied_cycle(node: RunningNode, owner: Owner):
    device, researcher = DidKey.generate(), DidKey.generate()
    twin, _ = owner.ledger.register("asset", device_did=device.did)
    node.wait_indexed()
    with node.client(device) as http:
        pushed = http.post(f"/v1/twins/{twin}/snapshots", content=PLAINTEXT)
    assert pushed.status_code == 202, pushed.text
    info = pushed.json()
    assert info["seq"] == 1 and info["sha256"] == hashlib.sha256(PLAINTEXT).hexdigest()
    # the ciphertext, not the plaintext, is what the store holds
    content = b"".join(node.runtime.store.get(c) for c in node.runtime.store.pins() if str(c) == info["contentCid"])
    assert PLAINTEXT not in content

    reader = node.client(researcher)
    denied = reader.get(f"/v1/twins/{twin}/snapshots/latest", params={"purpose": "research"})
    assert denied.status_code == 403 and _problem(denied) == "no-grant"
    assert "twinledger consent grant" in denied.json()["hint"]

    owner.ledger.grant(
        GrantRequest.of(twin, researcher.did, "research", "read", owner.ledger.client.chain_time() + 3600)
    )
    node.wait_indexed()
    read = reader.get(f"/v1/twins/{twin}/snapshots/latest", params={"purpose": "research"})
    assert read.status_code == 200, read.text
    assert read.content == PLAINTEXT
    assert read.headers["twinledger-manifest-cid"] == info["manifestCid"]
    wrong_purpose = reader.get(f"/v1/twins/{twin}/snapshots/1", params={"purpose": "maintenance"})
    assert wrong_purpose.status_code == 403 and _problem(wrong_purpose) == "wrong-purpose"

    owner.ledger.revoke(twin, researcher.did, "research")
    node.wait_indexed()
    revoked = reader.get(f"/v1/twins/{twin}/snapshots/latest", params={"purpose": "research"})
    assert revoked.status_code == 403 and _problem(revoked) == "grant-revoked"
    reader.close()


def test_reads_leave_receipts_and_everything_gets_anchored(node: RunningNode, owner: Owner):
    device, researcher = DidKey.generate(), DidKey.generate()
    twin, _ = owner.ledger.register("asset", device_did=device.did)
    owner.ledger.grant(
        GrantRequest.of(twin, researcher.did, "research", "read", owner.ledger.client.chain_time() + 3600)
    )
    node.wait_indexed()
    with node.client(device) as http:
        for i in range(3):
            assert http.post(f"/v1/twins/{twin}/snapshots", content=b"reading %d" % i).status_code == 202
    with node.client(researcher) as http:
        for seq in (1, 2, 3):
            assert http.get(
                f"/v1/twins/{twin}/snapshots/{seq}", params={"purpose": "research"}
            ).content == b"reading %d" % (seq - 1)
    for _ in range(400):
        if node.runtime.anchors.queue_depth() == 0:
            break
        time.sleep(0.025)
    assert node.runtime.anchors.queue_depth() == 0
    with node.client(owner.pkh) as http:
        audit = http.get(f"/v1/twins/{twin}/audit").json()
        history = http.get(f"/v1/twins/{twin}/snapshots").json()
    kinds = [e["kind"] for e in audit["entries"]]
    assert kinds.count("snapshot") == 3 and kinds.count("read") == 3 and "grant" in kinds and "registered" in kinds
    reads = [e for e in audit["entries"] if e["kind"] == "read"]
    assert all(e["proof"]["status"] == "anchored" and e["proof"]["merkleProof"] is not None for e in reads)
    assert reads[0]["data"]["receipt"]["request"]["signature"]  # the reader's own signed request is kept
    chained = [e["data"]["receipt"] for e in reads]
    for earlier, later in itertools.pairwise(chained):  # each receipt names the hash of the one before it
        assert later["previous"] == "0x" + receipt_digest(earlier).hex()
    assert [s["anchor"]["tx"] is not None for s in history["snapshots"]] == [True] * 3
    root = bytes.fromhex(history["snapshots"][0]["anchor"]["batchRoot"][2:])
    anchored_at, _, count = owner.ledger.batch_of(node.runtime.client.account.address, root)
    assert anchored_at > 0 and count >= 1


def test_producer_must_be_bound_and_bad_requests_are_problems(node: RunningNode, owner: Owner):
    device, stranger = DidKey.generate(), DidKey.generate()
    twin, _ = owner.ledger.register("asset", device_did=device.did)
    node.wait_indexed()
    pins_before = len(node.runtime.store.pins())
    with node.client(stranger) as http:
        refused = http.post(f"/v1/twins/{twin}/snapshots", content=b"x")
        assert refused.status_code == 403 and _problem(refused) == "producer-not-bound"
        assert len(node.runtime.store.pins()) == pins_before  # nothing half-written
        bad_cid = http.get(f"/v1/twins/{twin}/snapshots/by-cid/not-a-cid", params={"purpose": "research"})
        assert bad_cid.status_code in (400, 403)
        unknown = http.post("/v1/twins/999999/snapshots", content=b"x")
        assert unknown.status_code == 404 and _problem(unknown) == "unknown-twin"
        no_purpose = http.get(f"/v1/twins/{twin}/snapshots/latest")
        assert no_purpose.status_code == 400 and _problem(no_purpose) == "purpose-required"
    unsigned = httpx_get(node, f"/v1/twins/{twin}/snapshots/latest?purpose=research")
    assert unsigned.status_code in (400, 401)
    with node.client(owner.pkh) as http:  # the owner reads their own twin without a grant
        assert http.post(f"/v1/twins/{twin}/snapshots", content=b"by owner").status_code == 202
        assert http.get(f"/v1/twins/{twin}/snapshots/latest").content == b"by owner"
    assert (
        node.runtime.state.connection()
        .execute("SELECT COUNT(*) FROM snapshots WHERE twin_id = ?", (twin,))
        .fetchone()[0]
        == 1
    )


def httpx_get(node: RunningNode, path: str):
    with node.client() as http:
        return http.get(path)


def test_relayer_submits_signed_consent_and_refuses_bad_ones(node: RunningNode, owner: Owner):
    researcher = DidKey.generate()
    twin, _ = owner.ledger.register("asset")
    node.wait_indexed()
    now = owner.ledger.client.chain_time()
    request = GrantRequest.of(twin, researcher.did, "research", "read", now + 3600)
    signed = owner.ledger.sign_grant(owner.account, request, deadline=now + 600)
    body = {**signed.as_json(), "chainId": owner.ledger.client.chain_id, "verifyingContract": owner.ledger.address}
    with node.client() as http:
        wrong_chain = http.post("/v1/consents", json={**body, "chainId": 1})
        assert wrong_chain.status_code == 400 and _problem(wrong_chain) == "wrong-chain"
        relayed = http.post("/v1/consents", json=body)
        assert relayed.status_code == 202, relayed.text
        assert owner.ledger.is_authorized(twin, researcher.did, "research", "read")
        replayed = http.post("/v1/consents", json=body)
        assert replayed.status_code == 409 and _problem(replayed) == "wrong-nonce"
        forged = owner.ledger.sign_grant(
            node.runtime.client.account, GrantRequest.of(twin, researcher.did, "research", "read", now + 3600),
            deadline=now + 600, nonce=owner.ledger.nonce_of(owner.account.address),
        )  # fmt: skip
        not_owner = http.post("/v1/consents", json=forged.as_json())
        assert not_owner.status_code == 401 and _problem(not_owner) == "not-owner-signature"
        malformed = http.post("/v1/consents", json={**body, "nonce": -1})
        assert malformed.status_code == 422 and _problem(malformed) == "validation"


def test_ops_endpoints(node: RunningNode):
    with node.client() as http:
        assert http.get("/healthz").json()["status"] == "ok"
        assert http.get("/readyz").status_code == 200
        metrics = http.get("/metrics").text
        assert "twinledger_consent_decisions_total" in metrics and "twinledger_anchor_queue_depth" in metrics
        assert http.get("/openapi.json").json()["info"]["title"] == "twinledger node"
        info = http.get("/v1/node").json()
        assert info["did"].startswith("did:key:") and info["chainId"] == 31337
    # a client announcing a body over the limit is answered 413 before anything is read
    host, port = node.url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=10) as raw:
        raw.sendall(f"POST /v1/twins/1/snapshots HTTP/1.1\r\nHost: {host}\r\nContent-Length: {2**40}\r\n\r\n".encode())
        answer = HTTPResponse(raw)
        answer.begin()
        assert answer.status == 413 and answer.getheader("content-type") == "application/problem+json"
        assert answer.read().decode().find("body-too-large") > 0


def test_the_owner_before_a_transfer_is_told_they_no_longer_own_it(node: RunningNode, owner: Owner, accounts):
    """A read without a purpose by someone acting as an owner (an account's did:pkh, or an account's recovery key)
    who does not own the twin is a 403 saying who does, not a 400 asking for a purpose."""
    twin, _ = owner.ledger.register("asset")
    node.wait_indexed()
    with node.client(owner.pkh) as http:
        assert http.post(f"/v1/twins/{twin}/snapshots", content=b"before the sale").status_code == 202
    owner.ledger.transfer(twin, accounts[2].address)
    node.wait_indexed()
    for previous in (owner.pkh, owner.recovery):
        with node.client(previous) as http:
            read = http.get(f"/v1/twins/{twin}/snapshots/latest")
        assert read.status_code == 403 and _problem(read) == "not-owner", read.text
        assert "does not own twin" in read.json()["detail"] and accounts[2].address in read.json()["detail"]
    with node.client(DidKey.generate()) as http:  # anyone else still learns that a read needs a purpose
        stranger = http.get(f"/v1/twins/{twin}/snapshots/latest")
    assert stranger.status_code == 400 and _problem(stranger) == "purpose-required"


def test_how_far_a_twin_is_anchored_is_told_to_its_owner_and_readers_only(node: RunningNode, owner: Owner):
    device, reader, stranger = DidKey.generate(), DidKey.generate(), DidKey.generate()
    twin, _ = owner.ledger.register("asset", device_did=device.did)
    owner.ledger.grant(GrantRequest.of(twin, reader.did, "research", "audit", owner.ledger.client.chain_time() + 3600))
    node.wait_indexed()
    with node.client(device) as http:
        for i in range(2):
            assert http.post(f"/v1/twins/{twin}/snapshots", content=b"reading %d" % i).status_code == 202
    for _ in range(400):  # both anchored in a batch: the chain's own per-twin head stays 0
        if node.runtime.anchors.queue_depth() == 0:
            break
        time.sleep(0.025)
    with node.client(device) as http:
        assert http.post(f"/v1/twins/{twin}/snapshots", content=b"pending").status_code == 202
    public = node.client().get(f"/v1/twins/{twin}").json()
    assert public["anchoredSeq"] is None and public["latestSeq"] is None and public["chainHeadSeq"] == 0
    with node.client(owner.pkh) as http:
        mine = http.get(f"/v1/twins/{twin}").json()
    assert mine["anchoredSeq"] >= 2 and mine["latestSeq"] == 3  # the third may still wait for its batch
    with node.client(reader) as http:
        audited = http.get(f"/v1/twins/{twin}", params={"purpose": "research"}).json()
        unsaid = http.get(f"/v1/twins/{twin}", params={"purpose": "maintenance"}).json()
    assert audited["latestSeq"] == 3 and unsaid["latestSeq"] is None
    receipts = "SELECT COUNT(*) FROM receipts WHERE twin_id = ?"
    before = node.runtime.state.connection().execute(receipts, (twin,)).fetchone()[0]
    with node.client(stranger) as http:
        theirs = http.get(f"/v1/twins/{twin}", params={"purpose": "research"})
    assert theirs.status_code == 200 and theirs.json()["latestSeq"] is None  # the public record, not a refusal
    assert node.runtime.state.connection().execute(receipts, (twin,)).fetchone()[0] == before  # nor a denial
    forged = node.client().get(f"/v1/twins/{twin}", headers={"Signature-Input": "sig1=()", "Signature": "sig1=:AA==:"})
    assert forged.status_code in (400, 401) and _problem(forged)  # a bad signature is refused, not taken for anonymous
