"""An expired grant must stop reading when its expiry passes, not when the next block is mined.

The node estimates chain time as the head's timestamp plus the wall-clock time since the head *changed*. Here no
block is mined after the grant: the node mines nothing (no anchoring), and nothing in the test sends a transaction
once the grant is on chain, so the chain's head timestamp stays before the expiry for the whole test.
"""

from __future__ import annotations

import time

from tests.node.conftest import register_recovery_key
from tests.security._http_helpers import problem_slug, quiet_node
from twinledger.chain.client import ChainClient
from twinledger.chain.ledger import GrantRequest, TwinLedger
from twinledger.identity import DidKey

LIFETIME = 5  # seconds the grant lives, from the head before it (the register block, a second or two earlier)


def test_an_expired_grant_is_refused_although_no_block_was_mined(anvil, deployment, accounts, fresh_state, tmp_path):
    owner = accounts[2]
    ledger = TwinLedger(ChainClient(anvil, owner), deployment.twin_ledger)
    device, reader = DidKey.generate(), DidKey.generate()
    with quiet_node(tmp_path / "node", anvil, deployment, accounts[8]) as node:
        register_recovery_key(node.url, owner, DidKey.generate(), ledger.client.chain_id)
        twin, _ = ledger.register("asset", device_did=device.did)
        node.wait_indexed()
        with node.client(device) as http:
            assert http.post(f"/v1/twins/{twin}/snapshots", content=b"reading").status_code == 202
        expiry = ledger.client.chain_time() + LIFETIME
        granted = ledger.grant(GrantRequest.of(twin, reader.did, "research", "read", expiry))  # the last transaction
        node.wait_indexed()
        seen_grant = time.monotonic()  # the node saw the grant's block no later than this
        head = ledger.client.w3.eth.get_block("latest")
        assert int(head["number"]) == granted.block_number and int(head["timestamp"]) < expiry

        with node.client(reader) as http:
            live = http.get(f"/v1/twins/{twin}/snapshots/latest", params={"purpose": "research"})
            assert live.status_code == 200, live.text
            # Chain time passes `expiry` once LIFETIME + 1 s have gone by since the grant's block was seen.
            time.sleep(max(0.0, seen_grant + LIFETIME + 1 - time.monotonic()))
            expired = http.get(f"/v1/twins/{twin}/snapshots/latest", params={"purpose": "research"})
            assert expired.status_code == 403, expired.text
            assert problem_slug(expired) == "consent/grant-expired"
            assert str(expiry) in expired.json()["detail"]
            listed = http.get(f"/v1/twins/{twin}/grants").json()["grants"]
            assert [g["live"] for g in listed] == [False]
        # no block was mined after the grant: the refusal came from the clock, not from a new head
        assert ledger.client.w3.eth.block_number == granted.block_number
