"""Two replicas of one node (`node up` processes on one database, block store and chain) serve the same twins: what
is pushed through one is read through the other, a revocation is refused by both, a twin's receipts stay one chain
under concurrent reads through both, and only one of them indexes and anchors."""

from __future__ import annotations

import itertools
import json
import subprocess
import sys
import threading

import httpx
import pytest
from eth_account import Account

from tests.node.test_node_workers import anchored_batches, receipt_counts
from tests.reliability import conftest as reliability
from tests.reliability.conftest import NodeProcess, Stack, start_replicas, twin_with_reader, until
from tests.security._http_helpers import problem_slug
from twinledger.chain.types import BatchKind
from twinledger.identity import DidKey
from twinledger.identity.keys import EthereumDid

stack = reliability.stack  # the fixture: a node's own anvil with the contracts deployed


def receipt_chain(replica: NodeProcess, twin: int) -> list[dict[str, object]]:
    """The twin's receipts as the replicas' shared database holds them, in order."""
    state = replica.state()
    try:
        rows = state.connection().execute("SELECT digest, body FROM receipts WHERE twin_id = ? ORDER BY id", (twin,))
        return [{"digest": row["digest"], **json.loads(row["body"])} for row in rows.fetchall()]
    finally:
        state.close()


def read_status(replica: NodeProcess, reader: DidKey, twin: int) -> int:
    with replica.client(reader) as http:
        return http.get(f"/v1/twins/{twin}/snapshots/latest", params={"purpose": "research"}).status_code


def test_replicas_serve_the_same_twins_as_one_node(stack: Stack, tmp_path):
    device, reader, twin = twin_with_reader(stack)
    first, second = start_replicas(stack, tmp_path)
    try:
        first.register_recovery()
        with first.client(device) as http:
            assert http.post(f"/v1/twins/{twin}/snapshots", content=b"pushed through the first").status_code == 202
        with second.client(reader) as http:  # read through the other replica
            read = http.get(f"/v1/twins/{twin}/snapshots/latest", params={"purpose": "research"})
        assert read.status_code == 200, read.text
        assert read.content == b"pushed through the first"

        # Concurrent reads through both replicas extend one receipt chain: no receipt has a sibling.
        def read_through(replica: NodeProcess) -> None:
            with replica.client(reader) as http:
                for _ in range(25):
                    response = http.get(f"/v1/twins/{twin}/snapshots/latest", params={"purpose": "research"})
                    assert response.status_code == 200, response.text

        threads = [threading.Thread(target=read_through, args=(r,)) for r in (first, second, first, second)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=120)
        chain = receipt_chain(first, twin)
        assert len(chain) == 1 + 100
        for previous, receipt in itertools.pairwise(chain):
            assert receipt["previous"] == previous["digest"], "the receipt chain forked"

        # Only the leader anchors, and every receipt ends in exactly one anchored batch.
        until(lambda: receipt_counts(first)[1] == 0, "every receipt to be anchored")
        assert sum(anchored_batches(stack, BatchKind.ACCESS_RECEIPTS)) == receipt_counts(first)[0] == 101

        # A revocation on chain is refused by both replicas from the next indexed block.
        stack.owner.revoke(twin, reader.did, "research")
        for replica in (first, second):
            until(lambda: read_status(replica, reader, twin) == 403, f"the replica on {replica.port} to refuse")  # noqa: B023
        # The owner's audit, through either replica, is the same trail.
        account = stack.owner.client.account
        assert account is not None
        owner_key = EthereumDid(account, stack.deployment.chain_id)
        trails = []
        for replica in (first, second):
            with replica.client(owner_key) as http:
                audit = http.get(f"/v1/twins/{twin}/audit")
            assert audit.status_code == 200, audit.text
            trails.append(audit.json())
        assert trails[0] == trails[1]
    finally:
        second.stop()
        first.stop()


def commits_by_path(replica: NodeProcess) -> dict[str, float]:
    paths = ("one-trip", "careful")
    lines = httpx.get(f"{replica.url}/metrics", timeout=5).text.splitlines()
    found = {p: 0.0 for p in paths}
    for line in lines:
        for path in paths:
            if line.startswith(f'twinledger_group_commits_total{{path="{path}"}} '):
                found[path] = float(line.split()[1])
    return found


def test_a_replica_whose_view_of_a_receipt_chain_is_stale_chains_to_the_real_head(stack: Stack, tmp_path):
    """On PostgreSQL a group is committed in one round trip when it is what its process expects, the receipt head it
    chains to among it. Another replica appending to the same twin makes that head stale: the commit's own head
    guard must refuse it, and the receipt be chained to the real head by the careful transaction."""
    device, reader, twin = twin_with_reader(stack)
    first, second = start_replicas(stack, tmp_path)
    try:
        first.register_recovery()
        with first.client(device) as http:
            assert http.post(f"/v1/twins/{twin}/snapshots", content=b"one").status_code == 202
        before = {replica.port: commits_by_path(replica) for replica in (first, second)}
        # one group each: first learns the head, commits as expected, second appends, first's view is stale
        for replica in (first, first, second, first):
            assert read_status(replica, reader, twin) == 200
        after = {replica.port: commits_by_path(replica) for replica in (first, second)}
        chain = receipt_chain(first, twin)
        assert len(chain) == 4
        for previous, receipt in itertools.pairwise(chain):
            assert receipt["previous"] == previous["digest"], "the receipt chain forked"
        made = {port: {path: after[port][path] - before[port][path] for path in after[port]} for port in after}
        if first.env.get("TWINLEDGER_DATABASE_URL"):
            assert made[first.port] == {"one-trip": 1, "careful": 2}, made  # the stale head took the careful way
            assert made[second.port] == {"one-trip": 0, "careful": 1}, made
        else:  # SQLite is in-process: every group the careful way
            assert made[first.port] == {"one-trip": 0, "careful": 3}, made
    finally:
        for replica in (first, second):
            replica.stop()


def test_a_replica_with_another_identity_is_refused(stack: Stack, tmp_path):
    """A replica whose node key differs from the one the database was made with would sign records the others
    cannot verify and could not unseal the stored data keys: it refuses to start and names both identities."""
    (first,) = start_replicas(stack, tmp_path, count=1)
    stranger = NodeProcess(stack, first.data_dir)
    stranger.env = {
        **first.env,
        "TWINLEDGER_PORT": str(stranger.port),
        "TWINLEDGER_NODE_KEY": DidKey.generate().to_jwk(),
    }
    try:
        with pytest.raises(AssertionError, match="this node's database belongs to node did:key:"):
            stranger.start()
        assert "TWINLEDGER_NODE_KEY" in stranger.log.read_text()
    finally:
        stranger.stop()
        first.stop()


def test_the_relay_limits_are_one_budget_across_replicas(stack: Stack, tmp_path):
    """An attacker spreading forged consents over the replicas (or the API processes of one node) gets the one
    budget of refused consents per client, not one per process: the limits are counted in the shared database."""
    limit = 3
    first, second = start_replicas(stack, tmp_path, relay_unverified_per_client_per_minute=limit)
    try:
        twin, _ = stack.owner.register("asset")
        until(lambda: all(_indexed(r, twin) for r in (first, second)), "both replicas to see the twin")
        attacker, reader = Account.create(), DidKey.generate()
        now, nonce = stack.owner.client.chain_time(), stack.owner.nonce_of(stack.owner.client.account.address)  # type: ignore[union-attr]
        slugs = []
        for i in range(2 * limit + 2):
            forged = stack.owner.sign_revoke(
                attacker, twin, reader.did, "research", deadline=now + 600 + i, nonce=nonce
            )
            body = {**forged.as_json(), "chainId": stack.deployment.chain_id, "verifyingContract": stack.owner.address}
            with (first, second)[i % 2].client() as http:
                slugs.append(problem_slug(http.post("/v1/consents", json=body)))
        assert slugs[:limit] == ["not-owner-signature"] * limit, slugs
        assert set(slugs[limit:]) == {"relay/client-rate-limited"}, slugs
    finally:
        second.stop()
        first.stop()


def _indexed(replica: NodeProcess, twin: int) -> bool:
    with replica.client() as http:
        return http.get(f"/v1/twins/{twin}").status_code == 200


def test_reindex_is_refused_while_a_replica_leads(stack: Stack, tmp_path):
    """`node reindex` wipes and rebuilds the index: under running replicas it would pull the index from under their
    consent decisions, so it refuses while any of them leads, and the index is left as it was."""
    device, reader, twin = twin_with_reader(stack)
    (first,) = start_replicas(stack, tmp_path, count=1)
    try:
        first.register_recovery()
        with first.client(device) as http:
            assert http.post(f"/v1/twins/{twin}/snapshots", content=b"kept").status_code == 202
        reindex = subprocess.run([sys.executable, "-m", "twinledger.cli", "node", "reindex"], env=first.env,
                                 capture_output=True, text=True, timeout=120)  # fmt: skip
        assert reindex.returncode != 0 and "Traceback" not in reindex.stderr
        assert "a node is running on this database" in reindex.stdout + reindex.stderr
        assert read_status(first, reader, twin) == 200
    finally:
        first.stop()
