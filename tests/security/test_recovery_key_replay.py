"""A recovery-key binding cannot be replayed after the owner rotated away from it, and the node's state files,
where bindings (and everything else only the node knows) are kept, are readable by the node's user alone."""

from __future__ import annotations

import stat
import time

import httpx
from eth_account import Account
from eth_account.messages import encode_defunct

from tests.conftest import node_database_url
from tests.node.conftest import RunningNode
from tests.security._http_helpers import problem, problem_slug, quiet_node
from twinledger.chain.client import ChainClient
from twinledger.chain.ledger import TwinLedger
from twinledger.identity import DidAuth, DidKey
from twinledger.provenance import recovery_key_binding


def _put_binding(node: RunningNode, key: DidKey, body: dict) -> httpx.Response:
    with httpx.Client(base_url=node.url, auth=DidAuth(key), timeout=10) as http:
        return http.put("/v1/owners/recovery-key", json=body)


def _reads_as_owner(node: RunningNode, key: DidKey, twin: int) -> int:
    with node.client(key) as http:
        return http.get(f"/v1/twins/{twin}/snapshots/latest", params={"purpose": "research"}).status_code


def _after_this_second() -> None:
    """Until the wall clock's second has changed: a binding made now is issued after any made before."""
    second = int(time.time())
    while int(time.time()) == second:
        time.sleep(0.05)


def test_an_old_binding_replayed_after_rotation_is_refused(anvil, deployment, accounts, fresh_state, tmp_path):
    owner = accounts[3]
    ledger = TwinLedger(ChainClient(anvil, owner), deployment.twin_ledger)
    chain_id = ledger.client.chain_id
    old, new, device = DidKey.generate(), DidKey.generate(), DidKey.generate()
    with quiet_node(tmp_path / "node", anvil, deployment, accounts[8]) as node:
        old_binding = recovery_key_binding(owner, old.did, chain_id)  # what state.sqlite kept, and the attacker has
        assert _put_binding(node, old, old_binding).status_code == 200
        twin, _ = ledger.register("asset", device_did=device.did)
        node.wait_indexed()
        with node.client(device) as http:
            assert http.post(f"/v1/twins/{twin}/snapshots", content=b"sealed to the owner").status_code == 202
        assert _reads_as_owner(node, old, twin) == 200

        _after_this_second()
        rotated = _put_binding(node, new, recovery_key_binding(owner, new.did, chain_id))
        assert rotated.status_code == 200, rotated.text
        assert _reads_as_owner(node, old, twin) == 403

        # The attack: the old key's holder sends the old binding again, in a request the old key signs.
        replayed = _put_binding(node, old, old_binding)
        assert replayed.status_code == 409, replayed.text
        assert problem_slug(replayed) == "recovery-key/stale-binding"
        assert str(old_binding["issued"]) in problem(replayed)["detail"]
        assert _reads_as_owner(node, old, twin) == 403
        assert _reads_as_owner(node, new, twin) == 200

        # A binding without an order (the format before it had one, as kept in older state files) is refused too.
        unordered = f"twinledger: seal my twins' snapshots on chain {chain_id} to {old.did} (owner {owner.address})"
        signature = "0x" + bytes(Account.sign_message(encode_defunct(text=unordered), owner.key).signature).hex()
        legacy = _put_binding(node, old, {"address": owner.address, "signature": signature})
        assert legacy.status_code == 422 and "issued" in problem(legacy)["detail"]
        assert _reads_as_owner(node, old, twin) == 403


def test_the_same_binding_again_is_idempotent(anvil, deployment, accounts, fresh_state, tmp_path):
    owner, key = accounts[3], DidKey.generate()
    with quiet_node(tmp_path / "node", anvil, deployment, accounts[8]) as node:
        binding = recovery_key_binding(owner, key.did, node.runtime.client.chain_id)
        assert [_put_binding(node, key, binding).status_code for _ in range(2)] == [200, 200]


def test_node_state_files_are_private(anvil, deployment, accounts, tmp_path):
    data = tmp_path / "node"
    (data / "node").mkdir(parents=True)
    on_sqlite = node_database_url(data) is None
    expected = {"node-key.json"}
    if on_sqlite:  # the state and the index are files here (on PostgreSQL, schemas of the server's database)
        legacy = data / "node" / "state.sqlite"
        legacy.touch(mode=0o644)  # a state file an earlier version left readable by everyone
        legacy.chmod(0o644)
        expected |= {"state.sqlite", "state.sqlite-wal", "index.sqlite", "index.sqlite-wal"}
    owner, key = accounts[3], DidKey.generate()
    with quiet_node(data, anvil, deployment, accounts[8]) as node:
        assert _put_binding(node, key, recovery_key_binding(owner, key.did, node.runtime.client.chain_id)).is_success
        node.wait_indexed()
        files = sorted(p for p in (data / "node").iterdir() if p.is_file())
        names = {p.name for p in files}
        assert expected <= names
        modes = {p.name: stat.S_IMODE(p.stat().st_mode) for p in files}
        assert all(mode & 0o077 == 0 for mode in modes.values()), {n: oct(m) for n, m in modes.items()}
        assert stat.S_IMODE((data / "node").stat().st_mode) & 0o077 == 0
