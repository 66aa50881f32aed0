"""Local chain (state across restarts, reuse, no orphans), idempotent deploy, mismatch refused, CLI."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from eth_account import Account

from twinledger.chain.client import ChainClient
from twinledger.chain.deploy import Deployment, deploy, deployment_path
from twinledger.chain.localchain import DEV_KEYS, LocalChain, free_port, rpc_call
from twinledger.errors import IntegrityError

CLI = [sys.executable, "-m", "twinledger.cli"]


def _alive(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"
    except OSError:
        return False


def test_state_survives_restart_and_up_reuses_the_running_chain(tmp_path):
    chain = LocalChain(tmp_path / "chain", port=free_port())
    first = chain.up()
    try:
        assert LocalChain(tmp_path / "chain").up().reused
        for _ in range(3):
            rpc_call(str(first.rpc_url), "evm_mine")
        assert chain.down()
        assert first.pid is not None and not _alive(first.pid)
        second = chain.up()
        assert second.block_number == 3
        assert second.pid != first.pid
    finally:
        chain.down()
    assert not chain.status().running
    assert not chain.down()  # nothing left to stop


def test_deploy_is_a_no_op_the_second_time_and_redeploys_after_a_reset(tmp_path):
    chain = LocalChain(tmp_path / "chain", port=free_port())
    status = chain.up()
    try:
        client = ChainClient(str(status.rpc_url), Account.from_key(DEV_KEYS[0]))
        first, created = deploy(client, tmp_path / "deployments")
        assert created
        again, created_again = deploy(client, tmp_path / "deployments")
        assert not created_again and again == first
        recorded = json.loads(deployment_path(tmp_path / "deployments", 31337).read_text())
        assert recorded["twin_ledger"] == first.twin_ledger and recorded["deploy_block"] == first.deploy_block
        # A chain reset (no code at the recorded addresses) leads to a fresh deployment.
        chain.down()
        chain.state_file.unlink()
        status = chain.up()
        client = ChainClient(str(status.rpc_url), Account.from_key(DEV_KEYS[0]))
        _, created_after_reset = deploy(client, tmp_path / "deployments")
        assert created_after_reset
    finally:
        chain.down()


def test_deploy_refuses_contracts_that_differ_from_the_artifacts(anvil, deployment, tmp_path, accounts):
    client = ChainClient(anvil, accounts[0])
    # Record the wallet contract's address as if it were the ledger: code exists but is not TwinLedger's.
    wallet, _ = client.deploy("ContractWallet", [accounts[0].address])
    forged = Deployment(**{**deployment.__dict__, "twin_ledger": wallet})
    path = deployment_path(tmp_path, client.chain_id)
    path.write_text(forged.to_json())
    with pytest.raises(IntegrityError, match="do not match the artifacts"):
        deploy(client, tmp_path)


def test_cli_chain_and_contracts_commands(tmp_path):
    env = {**os.environ, "TWINLEDGER_DATA_DIR": str(tmp_path / "data")}
    port = str(free_port())

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([*CLI, *args], env=env, capture_output=True, text=True, timeout=120, check=False)

    try:
        up = run("chain", "up", "--port", port, "--json")
        assert up.returncode == 0, up.stderr
        status = json.loads(up.stdout)
        assert status["running"] and status["rpc_url"].endswith(port)
        assert json.loads(run("chain", "up", "--json").stdout)["reused"]
        rpc = ["--rpc-url", status["rpc_url"], "--deployments-dir", str(tmp_path / "dep")]
        deployed = run("contracts", "deploy", *rpc, "--json")
        assert deployed.returncode == 0, deployed.stderr
        assert json.loads(deployed.stdout)["created"]
        assert not json.loads(run("contracts", "deploy", *rpc, "--json").stdout)["created"]
        shown = run("contracts", "show", *rpc, "--json")
        assert shown.returncode == 0 and json.loads(shown.stdout)["problems"] == []
        assert run("chain", "status").returncode == 0
    finally:
        down = run("chain", "down", "--json")
    assert json.loads(down.stdout)["stopped"]
    assert not _alive(status["pid"])
    assert run("chain", "status").returncode == 1
    # --data-dir is the data directory, as for `node up` (the chain in its chain/), and a restart keeps the port
    data = tmp_path / "other"
    first = json.loads(run("chain", "up", "--data-dir", str(data), "--json").stdout)
    try:
        assert (data / "chain" / "anvil.pid").is_file() and first["running"]
        assert json.loads(run("chain", "down", "--data-dir", str(data), "--json").stdout)["stopped"]
        again = json.loads(run("chain", "up", "--data-dir", str(data), "--json").stdout)
        assert again["running"] and again["rpc_url"] == first["rpc_url"] and again["pid"] != first["pid"]
    finally:
        assert json.loads(run("chain", "down", "--data-dir", str(data), "--json").stdout)["stopped"]
    unreachable = run("contracts", "deploy", "--rpc-url", "http://127.0.0.1:9")
    assert unreachable.returncode == 5
    assert "cannot reach the chain" in unreachable.stderr and "twinledger chain up" in unreachable.stderr


def test_a_test_anvil_dies_with_the_process_that_started_it(tmp_path):
    """A test run killed before its teardown (a timeout, a Ctrl-C twice) must not leave its anvil behind."""
    import time

    code = (
        "import sys, time\nfrom twinledger.chain.localchain import LocalChain, free_port\n"
        "status = LocalChain(sys.argv[1], port=free_port(), die_with_parent=True).up()\n"
        "print(status.pid, flush=True)\ntime.sleep(600)\n"
    )
    starter = subprocess.Popen([sys.executable, "-c", code, str(tmp_path)], stdout=subprocess.PIPE, text=True)
    assert starter.stdout is not None
    pid = int(starter.stdout.readline())

    def alive() -> bool:
        try:
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except FileNotFoundError:
            return False
        return state != "Z"  # a zombie is dead, waiting for whoever inherited it to reap it

    assert alive()
    starter.kill()
    starter.wait()
    for _ in range(200):
        if not alive():
            break
        time.sleep(0.05)
    else:
        os.kill(pid, 9)
        raise AssertionError(f"anvil {pid} outlived the process that started it")


def test_anvils_offloaded_states_stay_in_the_chain_directory_and_go_with_it(tmp_path):
    """anvil writes old block states under $HOME/.foundry/anvil/tmp and never deletes them (66 GB of them filled
    this machine's disk): they go to the chain's own directory instead, emptied when the chain stops."""
    shared = Path.home() / ".foundry" / "anvil" / "tmp"
    before = sorted(shared.iterdir()) if shared.is_dir() else []
    chain = LocalChain(tmp_path / "chain", port=free_port())
    status = chain.up()
    try:
        rpc_call(str(status.rpc_url), "anvil_mine", [hex(3000)], timeout=60)  # enough blocks to offload states
        offloaded = list((chain.anvil_home / ".foundry" / "anvil" / "tmp").rglob("*.json"))
        assert offloaded, "anvil offloaded nothing: the test mines too few blocks to show anything"
    finally:
        chain.down()
    assert not chain.anvil_home.exists()
    assert (sorted(shared.iterdir()) if shared.is_dir() else []) == before
