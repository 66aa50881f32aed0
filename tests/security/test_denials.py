"""Refused reads are part of a twin's audit (node/twinledger_node/services/denials.py), tried for real: a node over
HTTP on the session's anvil, the CLI as a subprocess. A DID without a grant and a revoked grantee are refused and
appear in the owner's (and an AUDIT grantee's) audit with reason and purpose, anchored after the next batch, and
verify offline from the provenance CAR; a CAR with a tampered or misattributed denial fails. Bounds: 50 refusals of
one DID make at most threshold + 1 records a minute with the right total, many fresh DIDs on one twin at most the
twin's cap + 1, and the counts survive a clean stop. Unsigned, forged and replayed requests leave nothing in the log
and are counted in /metrics only.

The node records a denial in the background (the 403 never waits for it); the tests wait for it with a read by the
owner, whose receipt is committed by the same single committer after everything queued before it.
"""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from eth_account.signers.local import LocalAccount

from tests.node.conftest import RunningNode, start_node
from twinledger.chain.deploy import Deployment
from twinledger.chain.localchain import rpc_call
from twinledger.chain.types import purpose_code, purpose_text
from twinledger.client import Client
from twinledger.identity import DidKey, sign_record
from twinledger.identity.http_signatures import sign_request
from twinledger.provenance import json_block
from twinledger.verify import Entry, index_blocks, read_bundle, write_bundle
from twinledger.wallet import WalletStore

PASSPHRASE = "correct horse battery staple"
PURPOSE = "research"
PER_DID, PER_TWIN = 3, 6  # small bounds, so that a test crosses them with few requests
PROBLEM = "urn:twinledger:problem:"


@dataclass
class Site:
    """A node with small denial bounds, its data directory (restarted on it), and wallets in a TWINLEDGER_HOME."""

    node: RunningNode
    data_dir: Path
    home: Path
    store: WalletStore
    rpc_url: str
    deployment: Deployment
    account: LocalAccount

    def env(self) -> dict[str, str]:
        return {
            **os.environ, "TWINLEDGER_HOME": str(self.home), "TWINLEDGER_NODE_URL": self.node.url,
            "TWINLEDGER_RPC_URL": self.rpc_url, "TWINLEDGER_PASSPHRASE": PASSPHRASE, "TWINLEDGER_KDF_N": "1024",
            "COLUMNS": "400",
        }  # fmt: skip

    def client(self, name: str) -> Client:
        return Client(self.node.url, self.rpc_url, self.store.unlock(name, PASSPHRASE))

    def did(self, name: str) -> str:
        return self.store.unlock(name, PASSPHRASE).did_key.did

    def start(self) -> None:
        self.node = start_node(
            self.data_dir, self.rpc_url, self.deployment, self.account,
            denials_per_did_per_minute=PER_DID, denials_per_twin_per_minute=PER_TWIN,
        )  # fmt: skip

    def restart(self) -> None:
        """A clean stop (what is counted in memory is written) and a start on the same data and database."""
        self.node.stop()
        self.start()


@pytest.fixture(scope="module")
def site(
    anvil: str, deployment: Deployment, accounts: list[LocalAccount], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Site]:
    monkey = pytest.MonkeyPatch()
    monkey.setenv("TWINLEDGER_KDF_N", "1024")
    home = tmp_path_factory.mktemp("home")
    store = WalletStore(home)
    store.create("owner", PASSPHRASE, private_key=bytes(accounts[6].key))
    store.create("researcher", PASSPHRASE)
    store.create("auditor", PASSPHRASE)
    snapshot = rpc_call(anvil, "evm_snapshot")  # other modules expect the freshly deployed chain
    site = Site(None, tmp_path_factory.mktemp("node"), home, store, anvil, deployment, accounts[7])  # type: ignore[arg-type]
    site.start()
    try:
        yield site
    finally:
        site.node.stop()
        rpc_call(anvil, "evm_revert", [snapshot])
        monkey.undo()


def tl(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "twinledger.cli", *args], env=env, capture_output=True, text=True, timeout=300
    )


def new_twin(site: Site) -> int:
    """A twin of `owner` with one snapshot."""
    with site.client("owner") as owner:
        twin = owner.register_twin("asset").twin_id
        owner.push_snapshot(twin, b'{"temperature": 21}')
    return twin


def read_latest(site: Site, key: DidKey, twin: int) -> httpx.Response:
    with site.node.client(key) as http:
        return http.get(f"/v1/twins/{twin}/snapshots/latest", params={"purpose": PURPOSE})


def settle(site: Site, twin: int) -> None:
    """Until every denial record queued so far is committed: the owner's read waits for its own receipt's commit,
    which the one committer makes after everything queued before it."""
    with site.client("owner") as owner:
        owner.fetch_snapshot(twin)


def audit(site: Site, twin: int, *args: str) -> list[dict[str, Any]]:
    result = tl(site.env(), "audit", str(twin), *args, "--json")
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def denials(site: Site, twin: int, *args: str) -> list[dict[str, Any]]:
    return [e for e in audit(site, twin, "--name", "owner", *args) if e["kind"] == "denial"]


def metric(site: Site, name: str) -> float:
    """A counter's value summed over its labels, from the node's /metrics."""
    text = httpx.get(f"{site.node.url}/metrics", timeout=10).text
    return sum(
        float(line.rsplit(" ", 1)[1]) for line in text.splitlines() if line.startswith(name) and line[len(name)] in "{ "
    )


@pytest.fixture(scope="module")
def refused(site: Site, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """A twin read by a DID without a grant and by a revoked grantee (through the CLI), with an AUDIT grant to
    `auditor`; its provenance CAR saved once the denials are anchored."""
    twin = new_twin(site)
    researcher, auditor = site.did("researcher"), site.did("auditor")
    with site.client("owner") as owner:
        expiry = owner.ledger.client.chain_time() + 3600
        owner.grant(twin, researcher, purpose=PURPOSE, scopes="read", expiry=expiry)
        owner.grant(twin, auditor, purpose="oversight", scopes="audit", expiry=expiry)
    site.node.wait_indexed()
    stranger = DidKey.generate()
    refusal = read_latest(site, stranger, twin)
    assert refusal.status_code == 403 and refusal.json()["type"] == PROBLEM + "consent/no-grant"
    env, out = site.env(), tmp_path_factory.mktemp("read") / "got.json"
    got = tl(env, "snapshot", "get", str(twin), "--name", "researcher", "--purpose", PURPOSE, "-o", str(out))
    assert got.returncode == 0, got.stderr  # served while the grant is live
    with site.client("owner") as owner:
        owner.revoke(twin, researcher, purpose=PURPOSE)
    site.node.wait_indexed()
    again = tl(env, "snapshot", "get", str(twin), "--name", "researcher", "--purpose", PURPOSE, "-o", f"{out}.2")
    assert again.returncode != 0 and "revoked" in again.stderr.lower() and "Traceback" not in again.stderr
    settle(site, twin)
    site.node.runtime.anchors.tick(force=True)
    car = tmp_path_factory.mktemp("car") / "twin.car"
    saved = tl(env, "verify", str(twin), "--name", "owner", "--save-car", str(car))
    assert saved.returncode == 0, saved.stderr
    assert "2 denial records" in saved.stdout, saved.stdout
    return {"twin": twin, "stranger": stranger.did, "researcher": researcher, "car": car}


def test_refused_reads_are_in_the_owners_audit_with_reason_and_purpose(site: Site, refused: dict[str, Any]):
    twin, research = refused["twin"], "0x" + purpose_code(PURPOSE).hex()
    found = {d["data"]["requester"]: d for d in denials(site, twin)}
    assert set(found) == {refused["stranger"], refused["researcher"]}
    stranger, revoked = found[refused["stranger"]]["data"], found[refused["researcher"]]["data"]
    assert stranger["reasons"] == {PROBLEM + "consent/no-grant": 1} and stranger["count"] == 1
    assert revoked["reasons"] == {PROBLEM + "consent/grant-revoked": 1}
    assert stranger["purposes"] == revoked["purposes"] == [research]
    # the signed request itself, for anyone to re-verify that this DID asked
    request = revoked["record"]["request"]
    assert request["method"] == "GET" and f"/v1/twins/{twin}/snapshots/latest" in request["target"]
    assert request["signature"] and request["signatureInput"]
    assert all(d["proof"]["status"] == "anchored" for d in found.values())  # by the batch cut after them
    table = tl(site.env(), "audit", str(twin), "--name", "owner")
    assert table.returncode == 0, table.stderr
    text = " ".join(table.stdout.split())
    named = purpose_text(research)  # "research (dpv:ScientificResearch)": by name, as the rest of the audit
    assert f"refused read by {refused['stranger']} for {named}: consent/no-grant" in text, table.stdout
    assert f"refused read by {refused['researcher']} for {named}: consent/grant-revoked" in text
    # an AUDIT grantee sees them as it sees receipts
    as_auditor = [e for e in audit(site, twin, "--name", "auditor", "--purpose", "oversight") if e["kind"] == "denial"]
    assert {d["data"]["requester"] for d in as_auditor} == set(found)


def test_denial_records_verify_offline_from_the_car(site: Site, refused: dict[str, Any]):
    result = tl(site.env(), "verify", str(refused["twin"]), "--car", str(refused["car"]), "--json")
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["verified"] is True and report["denials"] == 2 and report["receipts"] >= 2
    checks = [c for c in report["checks"] if c["check"] == "denial"]
    assert {c["requester"] for c in checks} == {refused["stranger"], refused["researcher"]}
    assert all(c["passed"] and c["anchored"] for c in checks)


def _rewritten(car: Path, out: Path, change) -> Path:
    """The CAR with its first denial record replaced by `change(record)`, under its new CID (the index and the
    blocks rewritten consistently: only signatures, hash links and anchors can tell)."""
    index, blocks = read_bundle(io.BytesIO(car.read_bytes()))
    receipts, replaced = [], False
    records = []
    for entry in index.receipts:
        record = json.loads(blocks.get(entry.cid))
        if not replaced and record["type"] == "twinledger/access-denial":
            record, replaced = change(record), True
            block = json_block(record)
            entry = Entry(block.cid, entry.anchor)
        records.append(json_block(record))
        receipts.append(entry)
    assert replaced
    kept = [(e.cid, blocks.get(e.cid)) for e in index.snapshots if blocks.has(e.cid)]
    root = index_blocks(index.twin_id, index.chain_id, index.registry, index.snapshots, receipts)
    with out.open("wb") as stream:
        write_bundle(stream, root, kept + [(b.cid, b.data) for b in records])
    return out


def test_a_tampered_denial_record_fails_verification(site: Site, refused: dict[str, Any], tmp_path: Path):
    def other_reason(record: dict[str, Any]) -> dict[str, Any]:
        return {**record, "reason": PROBLEM + "consent/grant-expired"}

    edited = _rewritten(refused["car"], tmp_path / "edited.car", other_reason)
    result = tl(site.env(), "verify", str(refused["twin"]), "--car", str(edited))
    assert result.returncode == 4 and "signature does not verify" in result.stderr, result.stderr

    # A dishonest node pinning a refusal on a DID that never sent that request: its own signature is fine, the
    # requester's is not (the request is another DID's, signed for another target).
    node_key = site.node.runtime.node_key
    someone_else = sign_request(DidKey.generate(), "GET", "http://elsewhere/v1/twins/1/snapshots/latest", b"")

    def misattributed(record: dict[str, Any]) -> dict[str, Any]:
        unsigned = {k: v for k, v in record.items() if k != "proof"}
        request = {**unsigned["request"], "signature": someone_else["Signature"],
                   "signatureInput": someone_else["Signature-Input"]}  # fmt: skip
        return sign_record({**unsigned, "request": request}, node_key, created=record["time"])

    forged = _rewritten(refused["car"], tmp_path / "forged.car", misattributed)
    result = tl(site.env(), "verify", str(refused["twin"]), "--car", str(forged))
    assert result.returncode == 4 and "requester" in result.stderr, result.stderr


def _by_minute(entries: list[dict[str, Any]]) -> dict[int, list[dict[str, Any]]]:
    """Denial entries by the minute they count in (a count's window, a single record's time)."""
    minutes: dict[int, list[dict[str, Any]]] = defaultdict(list)
    for entry in entries:
        window = entry["data"]["window"]
        minutes[window["start"] if window else entry["data"]["record"]["time"] // 60 * 60].append(entry)
    return minutes


def test_denials_are_bounded_per_did_and_per_twin_and_survive_a_clean_stop(site: Site):
    one_did, many_dids = new_twin(site), new_twin(site)
    single, aggregated = 'twinledger_denials_recorded_total{kind="single"}', "twinledger_denials_aggregated_total"
    before = {name: metric(site, name) for name in (single, aggregated)}
    prober = DidKey.generate()
    for _ in range(50):
        assert read_latest(site, prober, one_did).status_code == 403
    for _ in range(20):  # a fresh did:key per request costs the attacker nothing
        assert read_latest(site, DidKey.generate(), many_dids).status_code == 403
    settle(site, one_did)
    # recorded one by one so far (the counts are in memory until their minute is over)
    singles = [d for twin in (one_did, many_dids) for d in denials(site, twin) if d["data"]["window"] is None]
    assert metric(site, single) - before[single] == len(singles)
    assert metric(site, aggregated) - before[aggregated] == 70 - len(singles)

    site.restart()  # a clean stop writes what was counted
    probed = denials(site, one_did)
    assert {d["data"]["requester"] for d in probed} == {prober.did}
    assert sum(d["data"]["count"] for d in probed) == 50
    for minute, entries in _by_minute(probed).items():
        singles = [d for d in entries if d["data"]["window"] is None]
        assert len(singles) <= PER_DID and len(entries) - len(singles) <= 1, (minute, entries)
    counted = [d["data"] for d in probed if d["data"]["window"] is not None]
    assert counted and all(c["reasons"] == {PROBLEM + "consent/no-grant": c["count"]} for c in counted)

    sprayed = denials(site, many_dids)
    assert sum(d["data"]["count"] for d in sprayed) == 20
    assert all(len(entries) <= PER_TWIN + 1 for entries in _by_minute(sprayed).values())
    assert any(d["data"]["requester"] is None for d in sprayed)  # the twin-wide count past the cap
    for twin, who in ((one_did, prober.did), (many_dids, "DIDs past the twin's cap")):
        table = tl(site.env(), "audit", str(twin), "--name", "owner")
        assert table.returncode == 0, table.stderr
        assert f"more refused reads by {who} in the minute from" in " ".join(table.stdout.split()), table.stdout

    site.node.runtime.anchors.tick(force=True)
    for twin, records in ((one_did, probed), (many_dids, sprayed)):
        result = tl(site.env(), "verify", str(twin), "--name", "owner", "--json")
        assert result.returncode == 0, result.stderr
        assert json.loads(result.stdout)["denials"] == len(records)


def test_unsigned_forged_and_replayed_requests_leave_nothing_in_the_log(site: Site):
    twin = new_twin(site)
    before = metric(site, "twinledger_denials_unattributed_total")
    path = f"/v1/twins/{twin}/snapshots/latest?purpose={PURPOSE}"
    with httpx.Client(base_url=site.node.url, timeout=30) as http:
        assert http.get(path).status_code == 401  # unsigned
        forged = sign_request(DidKey.generate(), "GET", f"{site.node.url}/v1/twins/{twin}/snapshots/1", b"")
        assert http.get(path, headers=forged).status_code == 401  # signed for another request
        genuine = sign_request(DidKey.generate(), "GET", site.node.url + path, b"")
        assert http.get(path, headers=genuine).status_code == 403  # refused, and recorded
        assert http.get(path, headers=genuine).status_code == 401  # its replay: not the DID's own attempt
    settle(site, twin)
    assert len(denials(site, twin)) == 1
    assert metric(site, "twinledger_denials_unattributed_total") - before == 3
