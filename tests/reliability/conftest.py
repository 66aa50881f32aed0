"""A node as a real process (so it can be SIGKILLed) on its own anvil, and the helpers the suite shares."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest
from eth_account import Account

from tests.conftest import node_database_env
from twinledger.chain.client import ChainClient
from twinledger.chain.deploy import Deployment, deploy, deployment_path
from twinledger.chain.ledger import TwinLedger
from twinledger.chain.localchain import DEV_KEYS, LocalChain, free_port
from twinledger.identity import DidAuth, DidKey
from twinledger.provenance import recovery_key_binding


def until(predicate: Callable[[], bool], what: str, seconds: float = 60) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.05)
    raise AssertionError(f"gave up after {seconds:.0f}s waiting for {what}")


@dataclass
class Stack:
    chain: LocalChain
    rpc_url: str
    deployment: Deployment
    deployments_dir: Path
    owner: TwinLedger
    recovery: DidKey = field(default_factory=DidKey.generate)


@pytest.fixture
def stack(tmp_path: Path) -> Iterator[Stack]:
    chain = LocalChain(tmp_path / "chain", port=free_port())
    rpc = str(chain.up().rpc_url)
    try:
        deployment, _ = deploy(ChainClient(rpc, Account.from_key(DEV_KEYS[0])), tmp_path / "deployments")
        owner = TwinLedger(ChainClient(rpc, Account.from_key(DEV_KEYS[1])), deployment.twin_ledger)
        yield Stack(chain, rpc, deployment, tmp_path / "deployments", owner)
    finally:
        chain.down()


class NodeProcess:
    """`twinledger node up` as a child process, restartable on the same data directory."""

    def __init__(self, stack: Stack, data_dir: Path, **settings: object) -> None:
        self.stack, self.data_dir, self.port = stack, data_dir, free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.env = {
            **os.environ,
            "TWINLEDGER_DATA_DIR": str(data_dir), "TWINLEDGER_PORT": str(self.port),
            "TWINLEDGER_RPC_URL": stack.rpc_url,
            "TWINLEDGER_DEPLOYMENTS_FILE": str(deployment_path(stack.deployments_dir, stack.deployment.chain_id)),
            "TWINLEDGER_PRIVATE_KEY": DEV_KEYS[9], "TWINLEDGER_POLL_INTERVAL": "0.1",
            **node_database_env(data_dir),
            **{f"TWINLEDGER_{k.upper()}": str(v) for k, v in settings.items()},
        }  # fmt: skip
        self.process: subprocess.Popen[bytes] | None = None
        self.log = data_dir / "node.log"

    def start(self) -> NodeProcess:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        with self.log.open("ab") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "twinledger.cli", "node", "up", "--log-level", "warning"],
                env=self.env, stdout=log, stderr=subprocess.STDOUT,
            )  # fmt: skip
        until(self.ready, "the node to become ready")
        return self

    def ready(self) -> bool:
        assert self.process is not None
        if self.process.poll() is not None:
            raise AssertionError(f"node exited with {self.process.returncode}: {self.log.read_text()[-2000:]}")
        try:
            return httpx.get(f"{self.url}/readyz", timeout=2).status_code == 200
        except httpx.HTTPError:
            return False

    def kill(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(timeout=30)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.kill()

    def client(self, signer: object | None = None, timeout: float = 60) -> httpx.Client:
        return httpx.Client(base_url=self.url, auth=DidAuth(signer) if signer else None, timeout=timeout)  # type: ignore[arg-type]

    def metric(self, name: str) -> float:
        for line in httpx.get(f"{self.url}/metrics", timeout=5).text.splitlines():
            if line.startswith(name + " "):
                return float(line.split()[1])
        raise AssertionError(f"no metric {name}")

    def register_recovery(self) -> None:
        account = self.stack.owner.client.account
        assert account is not None
        body = recovery_key_binding(account, self.stack.recovery.did, self.stack.deployment.chain_id)
        with self.client(self.stack.recovery) as http:
            http.put("/v1/owners/recovery-key", json=body).raise_for_status()


def anchored_snapshot_leaves(stack: Stack) -> int:
    """How many snapshot leaves the chain holds in BatchAnchored events (kind Snapshots)."""
    event = stack.owner.contract.events.BatchAnchored()
    logs = event.get_logs(from_block=stack.deployment.deploy_block)
    roots = [bytes(log["args"]["root"]) for log in logs]
    assert len(roots) == len(set(roots)), "a batch root was anchored twice"
    return sum(int(log["args"]["count"]) for log in logs if int(log["args"]["kind"]) == 0)


def json_lines(path: Path) -> list[dict[str, object]]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.startswith("{")]
