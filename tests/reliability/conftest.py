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

from tests.conftest import node_database_env, node_database_url
from twinledger.chain.client import ChainClient
from twinledger.chain.deploy import Deployment, deploy, deployment_path
from twinledger.chain.ledger import GrantRequest, TwinLedger
from twinledger.chain.localchain import DEV_KEYS, LocalChain, free_port
from twinledger.identity import DidAuth, DidKey
from twinledger.provenance import recovery_key_binding
from twinledger_node.state import NodeState


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


def twin_with_reader(stack: Stack) -> tuple[DidKey, DidKey, int]:
    """A twin of the stack's owner bound to a fresh device key, and a reader granted READ for "research"."""
    device, reader = DidKey.generate(), DidKey.generate()
    twin = stack.owner.register("asset", device_did=device.did)[0]
    expiry = stack.owner.client.chain_time() + 86_400
    stack.owner.grant_batch([GrantRequest.of(twin, reader.did, "research", "read", expiry)])
    return device, reader, twin


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
        self.log = data_dir / f"node-{self.port}.log"

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

    def state(self) -> NodeState:
        """The node's state database, as the node opens it (its own SQLite file, or the replicas' PostgreSQL)."""
        return NodeState(self.env.get("TWINLEDGER_DATABASE_URL") or self.data_dir / "node" / "state.sqlite")

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


def start_replicas(stack: Stack, tmp_path: Path, count: int = 2, **settings: object) -> list[NodeProcess]:
    """`count` replicas of one node (`node up` processes, one API worker each) on one database, one block store and
    one chain, started one after the other, so the first leads. On SQLite they share one data directory (replicas of
    a SQLite node share a machine); on PostgreSQL each has its own, as replicas on several machines would, sharing
    the database, the node's identity key and account (NodeProcess gives every node the same one) and the block
    store directory."""
    settings = {"workers": 1, "anchor_batch_seconds": 0.3, **settings}
    url = node_database_url(tmp_path / "replica-0")
    if url is None:
        replicas = [NodeProcess(stack, tmp_path / "node", **settings) for _ in range(count)]
    else:
        shared = {"database_url": url, "node_key": DidKey.generate().to_jwk(), "ipfs_path": tmp_path / "blocks"}
        replicas = [NodeProcess(stack, tmp_path / f"replica-{i}", **shared, **settings) for i in range(count)]
    started: list[NodeProcess] = []
    try:
        for replica in replicas:
            started.append(replica.start())
    except BaseException:
        for replica in started:
            replica.stop()
        raise
    return replicas


def anchored_snapshot_leaves(stack: Stack) -> int:
    """How many snapshot leaves the chain holds in BatchAnchored events (kind Snapshots)."""
    event = stack.owner.contract.events.BatchAnchored()
    logs = event.get_logs(from_block=stack.deployment.deploy_block)
    roots = [bytes(log["args"]["root"]) for log in logs]
    assert len(roots) == len(set(roots)), "a batch root was anchored twice"
    return sum(int(log["args"]["count"]) for log in logs if int(log["args"]["kind"]) == 0)


def json_lines(path: Path) -> list[dict[str, object]]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.startswith("{")]
