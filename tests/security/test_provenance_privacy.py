"""A twin's provenance tells its auditors about that twin only, and nothing derived from its plaintext.

Attacks performed: (9) the owner of twin A, or an auditor of A, fetches A's provenance CAR and audit trail while
twin B of another owner shares A's anchor batches, and looks for B's manifests, digests, CIDs and DIDs in them;
(10) an AUDIT-only grantee of A looks in A's CAR and audit trail for the plaintext sha256 and size of A's reading,
enough to confirm a guessed low-entropy value.
"""

from __future__ import annotations

import hashlib
import io
import json
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from eth_account.signers.local import LocalAccount

from tests.node.conftest import RunningNode, register_recovery_key, start_node
from twinledger.chain.client import ChainClient
from twinledger.chain.deploy import Deployment
from twinledger.chain.ledger import GrantRequest, TwinLedger
from twinledger.chain.localchain import rpc_call
from twinledger.identity import DidKey, EthereumDid
from twinledger.ipfs import parse_cid
from twinledger.provenance import receipt_digest
from twinledger.verify import VerificationFailed, verify_twin

READING_A = b'{"temperature": 21}'  # low entropy: an auditor could confirm a guess from its sha256
READING_B = b'{"temperature": 34}'


@dataclass
class Twin:
    twin_id: int
    owner: LocalAccount
    owner_did: EthereumDid
    device: DidKey
    ledger: TwinLedger
    manifest_cid: str = ""
    content_cid: str = ""
    manifest_digest: str = ""


@dataclass
class Shared:
    node: RunningNode
    a: Twin
    b: Twin
    auditor: DidKey  # AUDIT only, on twin A
    reader_a: DidKey  # READ + AUDIT on twin A
    reader_b: DidKey  # READ on twin B
    receipt_b: dict  # B's access receipt, cut into the same receipt batch as A's


@pytest.fixture(scope="module")
def shared(
    anvil: str, deployment: Deployment, accounts: list[LocalAccount], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Shared]:
    """Twins A and B of two owners whose snapshots and receipts are anchored in the same two batches."""
    snapshot = rpc_call(anvil, "evm_snapshot")
    # Batches are cut only when forced below, so A's and B's records land in the same ones.
    node = start_node(
        tmp_path_factory.mktemp("node"), anvil, deployment, accounts[9],
        anchor_batch_size=1000, anchor_batch_seconds=3600,
    )  # fmt: skip
    try:
        twins = []
        for account in (accounts[1], accounts[2]):
            ledger = TwinLedger(ChainClient(anvil, account), deployment.twin_ledger)
            register_recovery_key(node.url, account, DidKey.generate(), ledger.client.chain_id)
            device = DidKey.generate()
            twin_id, _ = ledger.register("asset", device_did=device.did)
            twins.append(Twin(twin_id, account, EthereumDid(account, ledger.client.chain_id), device, ledger))
        a, b = twins
        auditor, reader_a, reader_b = DidKey.generate(), DidKey.generate(), DidKey.generate()
        expiry = a.ledger.client.chain_time() + 3600
        a.ledger.grant(GrantRequest.of(a.twin_id, auditor.did, "audit", "audit", expiry))
        a.ledger.grant(GrantRequest.of(a.twin_id, reader_a.did, "research", "read,audit", expiry))
        b.ledger.grant(GrantRequest.of(b.twin_id, reader_b.did, "research", "read", expiry))
        node.wait_indexed()
        for twin, reading in ((a, READING_A), (b, READING_B)):
            with node.client(twin.device) as http:
                pushed = http.post(f"/v1/twins/{twin.twin_id}/snapshots", content=reading)
            assert pushed.status_code == 202, pushed.text
            twin.manifest_cid, twin.content_cid = pushed.json()["manifestCid"], pushed.json()["contentCid"]
            twin.manifest_digest = parse_cid(twin.manifest_cid).digest.hex()
        # B is read first: a global receipt chain would make A's receipt name B's.
        with node.client(reader_b) as http:
            read_b = http.get(f"/v1/twins/{b.twin_id}/snapshots/1", params={"purpose": "research"})
        assert read_b.status_code == 200, read_b.text
        with node.client(reader_a) as http:
            assert http.get(f"/v1/twins/{a.twin_id}/snapshots/1", params={"purpose": "research"}).status_code == 200
        receipt_b = json.loads(
            node.runtime.state.connection().execute("SELECT body FROM receipts WHERE twin_id = ?", (b.twin_id,))
            .fetchone()["body"]
        )  # fmt: skip
        assert node.runtime.anchors.tick(force=True) == 2  # one snapshot batch, one receipt batch
        roots = node.runtime.state.connection().execute(
            "SELECT twin_id, batch_root FROM snapshots WHERE twin_id IN (?, ?)", (a.twin_id, b.twin_id)
        ).fetchall()  # fmt: skip
        assert len({r["batch_root"] for r in roots}) == 1, "A and B must share the snapshot batch"
        yield Shared(node, a, b, auditor, reader_a, reader_b, receipt_b)
    finally:
        node.stop()
        rpc_call(anvil, "evm_revert", [snapshot])


def _fetch(shared: Shared, signer: object, purpose: str | None) -> tuple[bytes, bytes]:
    """Twin A's provenance CAR and its whole audit trail (raw JSON), as `signer` sees them."""
    params = {"purpose": purpose} if purpose else {}
    with shared.node.client(signer) as http:
        car = http.get(f"/v1/twins/{shared.a.twin_id}/provenance.car", params=params)
        audit = http.get(f"/v1/twins/{shared.a.twin_id}/audit", params={**params, "limit": 1000})
    assert car.status_code == 200, car.text
    assert audit.status_code == 200, audit.text
    assert audit.json()["next"] is None
    return car.content, audit.content


def _b_traces(shared: Shared) -> dict[str, bytes]:
    """Everything of twin B that has no business in A's provenance, in every form it could take in a CAR or JSON."""
    b = shared.b
    manifest, content = parse_cid(b.manifest_cid), parse_cid(b.content_cid)
    receipt = receipt_digest(shared.receipt_b)
    traces = {
        "B's manifest CID": b.manifest_cid.encode(),
        "B's manifest CID (binary)": bytes(manifest),
        "B's manifest digest": b.manifest_digest.encode(),
        "B's manifest digest (binary)": bytes.fromhex(b.manifest_digest),
        "B's content CID": b.content_cid.encode(),
        "B's content CID (binary)": bytes(content),
        "B's receipt digest": receipt.hex().encode(),
        "B's receipt digest (binary)": receipt,
        "B's device DID": b.device.did.encode(),
        "B's reader DID": shared.reader_b.did.encode(),
        "B's owner": b.owner.address.lower().removeprefix("0x").encode(),
        "B's owner (binary)": bytes.fromhex(b.owner.address[2:]),
    }
    return traces


@pytest.mark.parametrize("who", ["owner", "auditor", "reader"])
def test_a_twins_provenance_holds_nothing_of_another_twin_in_its_batches(shared: Shared, who: str):
    signer, purpose = {
        "owner": (shared.a.owner_did, None),
        "auditor": (shared.auditor, "audit"),
        "reader": (shared.reader_a, "research"),
    }[who]
    car, audit = _fetch(shared, signer, purpose)
    for name, needle in _b_traces(shared).items():
        assert needle.lower() not in car.lower(), f"{who}'s CAR of twin A holds {name}"
        assert needle.lower() not in audit.lower(), f"{who}'s audit trail of twin A holds {name}"
    # and it still verifies, from A's own leaves and their Merkle proofs alone
    report = verify_twin(shared.a.ledger, shared.a.twin_id, io.BytesIO(car), allow_withheld=who == "auditor")
    assert (report.snapshots, report.receipts, report.batches, report.pending) == (1, 1, 2, [])


def test_receipts_are_chained_per_twin(shared: Shared):
    with shared.node.client(shared.a.owner_did) as http:
        entries = http.get(f"/v1/twins/{shared.a.twin_id}/audit").json()["entries"]
    (read,) = [e for e in entries if e["kind"] == "read"]
    assert read["data"]["receipt"]["previous"] == "0x" + "00" * 32  # A's first receipt, whatever B's reads were


def test_an_audit_only_grantee_learns_nothing_derived_from_the_plaintext(shared: Shared):
    digest = hashlib.sha256(READING_A).digest()
    car, audit = _fetch(shared, shared.auditor, "audit")
    for blob, what in ((car, "CAR"), (audit, "audit trail")):
        assert digest.hex().encode() not in blob, f"the auditor's {what} holds the plaintext sha256"
        assert digest not in blob, f"the auditor's {what} holds the plaintext sha256 (binary)"
        assert b'"plaintext"' not in blob and b"servedBytes" not in blob, f"the auditor's {what} holds the size"
        # the ciphertext's CID leads to the ciphertext, whose length gives the plaintext's away
        assert shared.a.content_cid.encode() not in blob, f"the auditor's {what} names the ciphertext"
    snapshots = [e for e in json.loads(audit)["entries"] if e["kind"] == "snapshot"]
    assert snapshots and all("size" not in e["data"] and "sha256" not in e["data"] for e in snapshots)
    assert snapshots[0]["data"]["manifestCid"] == shared.a.manifest_cid  # which snapshot, with its proof
    assert snapshots[0]["proof"]["status"] == "anchored" and snapshots[0]["proof"]["merkleProof"] is not None
    # The owner, and a grantee who may READ the plaintext anyway, still see it.
    for signer, purpose in ((shared.a.owner_did, None), (shared.reader_a, "research")):
        car, audit = _fetch(shared, signer, purpose)
        assert digest.hex().encode() in car and digest.hex().encode() in audit


def test_an_auditors_car_fails_strict_verification_and_names_the_withheld_manifest(shared: Shared):
    car, _ = _fetch(shared, shared.auditor, "audit")
    with pytest.raises(VerificationFailed, match=r"snapshot #1 .*withholds this manifest"):
        verify_twin(shared.a.ledger, shared.a.twin_id, io.BytesIO(car))
