"""The SDK against a live node and chain: every Client method, its main failures, and the async variant."""

from __future__ import annotations

import asyncio
import io
import json

import httpx
import pytest

from tests.sdk.conftest import PASSPHRASE, Stack, client_for
from twinledger.client import AsyncClient, Client, ConsentDenied, NodeUnavailable, NotOwner, parse_expiry
from twinledger.errors import InvalidInput, NotFound
from twinledger.identity import DidKey
from twinledger.verify import VerificationFailed


def test_register_push_fetch_history_as_device_and_owner(stack: Stack):
    device = DidKey.generate()
    with client_for(stack, "owner") as tl:
        twin = tl.register_twin("asset", device_did=device.did)
        stack.node.wait_indexed()
        assert tl.twin(twin.twin_id).device_did == device.did
        first = tl.push_snapshot(twin.twin_id, b'{"t": 1}', as_device=device)
        seen: list[tuple[int, int | None]] = []
        second = tl.push_snapshot(
            twin.twin_id, io.BytesIO(b'{"t": 2}' * 20000), progress=lambda n, t: seen.append((n, t))
        )
        assert (first.seq, second.seq) == (1, 2)
        assert seen[-1] == (160000, 160000) and len(seen) > 1  # upload progress in chunks
        fetched = tl.fetch_snapshot(twin.twin_id, 1)
        assert fetched.data == b'{"t": 1}'
        assert fetched.verification.producer == device.did
        assert fetched.verification.node == tl.node.did
        anchored = tl.wait_anchored(twin.twin_id, 2)
        latest = tl.fetch_snapshot(twin.twin_id, require_anchor=True)
        assert (
            latest.seq == 2
            and latest.verification.anchored
            and latest.verification.batch_root == anchored.anchor.batch_root
        )
        assert latest.verification.producer == tl.wallet.pkh(tl.node.chain_id)  # pushed as the owner
        assert [s.seq for s in tl.history(twin.twin_id)] == [1, 2]
        assert twin.twin_id in [t.twin_id for t in tl.twins()]


def test_grant_read_revoke_direct_and_relayed(stack: Stack):
    researcher_wallet = stack.store.unlock("researcher", PASSPHRASE)
    with client_for(stack, "owner") as tl, client_for(stack, "researcher") as reader:
        twin = tl.register_twin("asset")
        tl.push_snapshot(twin.twin_id, b"data")
        stack.node.wait_indexed()
        with pytest.raises(ConsentDenied) as denied:
            reader.fetch_snapshot(twin.twin_id, purpose="research")
        assert "twinledger consent grant" in (denied.value.hint or "")
        did = researcher_wallet.did_key.did
        granted = tl.grant(twin.twin_id, did, purpose="research", scopes="read,audit", expiry=parse_expiry("1d"))
        stack.node.wait_indexed()
        assert tl.check(twin.twin_id, did, purpose="research", scope="read")
        assert reader.fetch_snapshot(twin.twin_id, purpose="research").data == b"data"
        assert [g.did for g in tl.grants(twin.twin_id) if g.live] == [did]
        receipt = tl.issue_consent_receipt(twin.twin_id, did, purpose="research", tx_hash=granted.tx_hash)
        assert receipt["issuer"] == tl.wallet.did_key.did and "ConsentReceipt" in receipt["type"]
        tl.revoke(twin.twin_id, did, purpose="research", relay=True)
        stack.node.wait_indexed()
        assert not tl.check(twin.twin_id, did, purpose="research", scope="read")
        with pytest.raises(ConsentDenied):
            reader.fetch_snapshot(twin.twin_id, purpose="research")
        relayed = tl.grant(
            twin.twin_id, did, purpose="maintenance", scopes="read", expiry=parse_expiry("2h"), relay=True
        )
        assert relayed.relayed and tl.check(twin.twin_id, did, purpose="maintenance", scope="read")
        with pytest.raises(NotFound, match="no grant"):
            tl.revoke(twin.twin_id, did, purpose="research")


def test_refusals_send_nothing(stack: Stack):
    with client_for(stack, "owner") as tl, client_for(stack, "other") as other:
        twin = tl.register_twin("asset")
        nonce = tl.ledger.client.w3.eth.get_transaction_count(other.wallet.address)
        with pytest.raises(NotOwner, match="does not own"):
            other.grant(
                twin.twin_id, DidKey.generate().did, purpose="research", scopes="read", expiry=parse_expiry("1d")
            )
        with pytest.raises(NotOwner):
            other.transfer(twin.twin_id, other.wallet.address)
        with pytest.raises(NotOwner):
            other.bind_device(twin.twin_id, DidKey.generate().did)
        assert tl.ledger.client.w3.eth.get_transaction_count(other.wallet.address) == nonce
        with pytest.raises(InvalidInput, match="did:key"):
            tl.grant(
                twin.twin_id, DidKey.generate().did[:-1], purpose="research", scopes="read", expiry=parse_expiry("1d")
            )
        with pytest.raises(InvalidInput, match="not in the future"):
            tl.grant(twin.twin_id, DidKey.generate().did, purpose="research", scopes="read", expiry=1)
        with pytest.raises(InvalidInput, match="not an Ethereum address"):
            tl.transfer(twin.twin_id, "0x1234")
        with pytest.raises(NotFound, match="does not exist"):
            tl.bind_device(999_999, DidKey.generate().did)
        with pytest.raises(NotFound, match="does not exist"):  # not "not authorized": the twin id is the typo
            tl.check(999_999, DidKey.generate().did, purpose="research")
        result = tl.transfer(twin.twin_id, other.wallet.address)
        assert result.tx_hash.startswith("0x") and tl.ledger.owner_of(twin.twin_id) == other.wallet.address


def test_fetch_detects_a_tampered_plaintext(stack: Stack, monkeypatch: pytest.MonkeyPatch):
    with client_for(stack, "owner") as tl:
        twin = tl.register_twin("asset")
        tl.push_snapshot(twin.twin_id, b"genuine")
        original = httpx.Response.iter_bytes

        def tampered(self, chunk_size=None):
            for chunk in original(self, chunk_size):
                yield chunk.replace(b"genuine", b"forgery")

        monkeypatch.setattr(httpx.Response, "iter_bytes", tampered)
        with pytest.raises(VerificationFailed, match="plaintext served"):
            tl.fetch_snapshot(twin.twin_id)


def test_node_down_is_a_clear_error():
    """Without what the node said earlier (`known`), even a chain call needs it: it names the contracts."""
    with Client("http://127.0.0.1:9") as tl, pytest.raises(NodeUnavailable, match="cannot reach the node"):
        tl.check(1, DidKey.generate().did, purpose="research")


def test_an_rpc_of_another_chain_with_the_same_id_is_refused(stack: Stack, tmp_path):
    """A second local anvil (chain id 31337 too) on the URL the wallet was given: refused, with both named, before
    any read could answer "no twins" or "not authorized" from the wrong chain."""
    from twinledger.chain.localchain import LocalChain, free_port

    other = LocalChain(tmp_path / "other-chain", port=free_port())
    status = other.up()
    try:
        with Client(stack.node.url, status.rpc_url) as tl, pytest.raises(InvalidInput, match="another chain") as error:
            tl.check(1, DidKey.generate().did, purpose="research")
        assert status.rpc_url in error.value.message and stack.node.url in error.value.message
    finally:
        other.down()


def test_async_client_shares_the_calls(stack: Stack):
    wallet = stack.store.unlock("owner", PASSPHRASE)

    async def scenario() -> tuple[int, bytes, list[str]]:
        async with await AsyncClient.connect(stack.node.url, stack.rpc_url, wallet) as tl:
            twin = await tl.register_twin("process")
            await tl.push_snapshot(twin.twin_id, b"async")
            fetched = await tl.fetch_snapshot(twin.twin_id)
            audit = await tl.audit(twin.twin_id)
            return twin.twin_id, fetched.data, [e.kind for e in audit]

    twin_id, data, kinds = asyncio.run(scenario())
    assert twin_id > 0 and data == b"async" and "registered" in kinds and "snapshot" in kinds and "read" in kinds


def test_expiry_parsing():
    assert parse_expiry("30d", now=100) == 100 + 30 * 86400
    assert parse_expiry("12h", now=0) == 43200 and parse_expiry("90m", now=0) == 5400
    assert parse_expiry("2030-01-01T00:00:00+00:00") == parse_expiry("2030-01-01") == 1893456000
    assert parse_expiry("1893456000") == 1893456000
    with pytest.raises(InvalidInput, match="30d"):
        parse_expiry("next tuesday")


def test_audit_entries_are_typed(stack: Stack):
    with client_for(stack, "owner") as tl:
        twin = tl.register_twin("asset")
        stack.node.wait_indexed()
        entries = tl.audit(twin.twin_id)
        assert {e.kind for e in entries} >= {"registered", "ownership"}
        assert all(e.proof["txHash"].startswith("0x") for e in entries)
        assert json.dumps([e.as_dict() for e in entries])
