"""The owner in control with the chain alone: once a command has seen the node, consent and twin commands work
while it is down (issue 16, points 1 and 2), and the profile says which node and chain every command uses."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from eth_account.signers.local import LocalAccount

from tests.cli.test_cli import _key_file, tl
from tests.node.conftest import RunningNode, start_node
from tests.sdk.conftest import PASSPHRASE
from twinledger.chain.deploy import Deployment
from twinledger.chain.localchain import LocalChain, free_port, rpc_call


@pytest.fixture
def node(anvil: str, deployment: Deployment, accounts: list[LocalAccount], tmp_path: Path) -> Iterator[RunningNode]:
    """A node of its own (this test stops it), publishing the session's anvil as its clients' RPC URL."""
    snapshot = rpc_call(anvil, "evm_snapshot")
    running = start_node(tmp_path / "node", anvil, deployment, accounts[8], public_rpc_url=anvil)
    try:
        yield running
    finally:
        running.stop()
        rpc_call(anvil, "evm_revert", [snapshot])


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    # No TWINLEDGER_NODE_URL or TWINLEDGER_RPC_URL: the profile and the node say where things are.
    base = {k: v for k, v in os.environ.items() if k not in ("TWINLEDGER_NODE_URL", "TWINLEDGER_RPC_URL")}
    return {
        **base, "TWINLEDGER_HOME": str(tmp_path / "home"), "TWINLEDGER_DATA_DIR": str(tmp_path / "data"),
        "TWINLEDGER_PASSPHRASE": PASSPHRASE, "TWINLEDGER_KDF_N": "1024", "COLUMNS": "200",
    }  # fmt: skip


def test_revoke_grant_check_list_and_transfer_with_the_node_stopped(
    node: RunningNode, env: dict[str, str], accounts: list[LocalAccount], tmp_path: Path, anvil: str
):
    configured = tl(env, "config", "set", "--node", node.url, "--json")
    assert configured.returncode == 0, configured.stdout + configured.stderr
    learned = json.loads(configured.stdout)["learned"][node.url]
    assert learned["rpc_url"] == anvil and learned["twin_ledger"] == node.runtime.deployment.twin_ledger
    key = _key_file(tmp_path, "owner.key", "0x" + bytes(accounts[6].key).hex())
    assert tl(env, "wallet", "import", "--name", "owner", "--private-key-file", str(key)).returncode == 0
    assert tl(env, "wallet", "create", "--name", "reader", "--offline").returncode == 0
    assert tl(env, "wallet", "create", "--name", "heir", "--offline").returncode == 0
    reader = tl(env, "wallet", "export-did", "--name", "reader").stdout.strip()
    registered = tl(env, "twin", "register", "--name", "owner", "--json")
    assert registered.returncode == 0, registered.stdout + registered.stderr
    twin = str(json.loads(registered.stdout)["twin_id"])
    grant = ("consent", "grant", twin, reader, "--purpose", "research", "--expires", "30d", "--name", "owner")
    given = tl(env, *grant)
    assert given.returncode == 0 and f"the node at {node.url} applies it" in given.stdout, given.stdout + given.stderr

    node.stop()  # from here on only the chain answers

    check = tl(env, "consent", "check", twin, reader, "--purpose", "research")
    assert check.returncode == 0 and "authorized" in check.stdout, check.stdout + check.stderr
    assert f"via chain {anvil}; node {node.url} not reachable" in check.stdout
    listed = tl(env, "consent", "list", twin, "--json")
    assert listed.returncode == 0, listed.stdout + listed.stderr
    [row] = json.loads(listed.stdout)
    assert row["did"] == reader and row["live"] and row["revoked_tx"] is None

    revoked = tl(env, "consent", "revoke", twin, reader, "--purpose", "research", "--name", "owner", "--json")
    assert revoked.returncode == 0, revoked.stdout + revoked.stderr
    result = json.loads(revoked.stdout)
    assert result["indexed"] is False and result["via"] == {"chain": anvil, "node": None}
    refused = tl(env, "consent", "check", twin, reader, "--purpose", "research", "--json")
    assert refused.returncode == 1 and json.loads(refused.stdout)["authorized"] is False
    [row] = json.loads(tl(env, "consent", "list", twin, "--json").stdout)
    assert not row["live"] and row["revoked_tx"] == result["tx_hash"]
    human = tl(env, "consent", "list", twin)
    assert "revoked" in human.stdout and "not reachable" in human.stdout

    regranted = tl(env, *grant)  # and consent can be given again, node or not
    assert regranted.returncode == 0 and "could not be reached" in regranted.stdout, regranted.stdout
    shown = json.loads(tl(env, "twin", "show", twin, "--json").stdout)
    owner_address = json.loads(tl(env, "wallet", "show", "--name", "owner", "--json").stdout)["address"]
    assert shown["owner"] == owner_address
    mine = json.loads(tl(env, "twin", "list", "--name", "owner", "--json").stdout)
    assert [t["twin_id"] for t in mine] == [int(twin)]

    moved = tl(env, "twin", "transfer", twin, "heir", "--name", "owner", "--yes", "--json")
    assert moved.returncode == 0, moved.stdout + moved.stderr
    heir = json.loads(tl(env, "wallet", "show", "--name", "heir", "--json").stdout)["address"]
    assert json.loads(moved.stdout)["details"]["to"] == heir
    assert json.loads(tl(env, "twin", "list", "--name", "owner", "--json").stdout) == []
    assert [t["twin_id"] for t in json.loads(tl(env, "twin", "list", "--owner", heir, "--json").stdout)] == [int(twin)]
    [row] = json.loads(tl(env, "consent", "list", twin, "--json").stdout)
    assert not row["live"]  # the transfer ended it

    # what needs the node says so
    relayed = tl(env, "consent", "grant", twin, reader, "--purpose", "x", "--name", "heir", "--relay")
    assert relayed.returncode != 0 and "Traceback" not in relayed.stderr


def test_the_profile_refuses_an_rpc_that_is_not_the_nodes_chain(node: RunningNode, env: dict[str, str], tmp_path):
    assert tl(env, "config", "set", "--node", node.url).returncode == 0
    other = LocalChain(tmp_path / "other-chain", port=free_port())  # chain id 31337 too, without the contracts
    status = other.up()
    try:
        refused = tl(env, "config", "set", "--rpc-url", str(status.rpc_url))
        assert refused.returncode == 2, refused.stdout + refused.stderr
        assert str(status.rpc_url) in refused.stderr and node.runtime.deployment.twin_ledger in refused.stderr
        shown = json.loads(tl(env, "config", "show", "--json").stdout)
        assert shown["node"] == node.url and shown["rpcFrom"] == "the node, when last seen"  # nothing written
        # the same check on every command, also with the node down
        node.stop()
        wrong = tl(env, "consent", "check", "1", "did:key:z6MkhaXgBZDvotDkL5257faiztiGiC2QtKLGpbnnEGta2doK",
                   "--purpose", "research", "--rpc-url", str(status.rpc_url))  # fmt: skip
        assert wrong.returncode == 2 and "another chain with the same id" in wrong.stderr, wrong.stderr
    finally:
        other.down()


def test_without_a_profile_or_node_commands_say_where_to_point(env: dict[str, str]):
    port = free_port()
    missing = tl(env, "consent", "check", "1", "did:key:z6MkhaXgBZDvotDkL5257faiztiGiC2QtKLGpbnnEGta2doK",
                 "--purpose", "research", "--node", f"http://127.0.0.1:{port}")  # fmt: skip
    assert missing.returncode == 5 and "cannot reach the node" in missing.stderr, missing.stderr
    shown = tl(env, "config", "show")
    assert shown.returncode == 0 and "has not been seen yet" in shown.stdout
    assert tl(env, "config", "unset", "colour").returncode == 2
