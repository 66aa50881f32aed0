"""A whole federated round through the CLI alone, as subprocesses against a node over HTTP and the session's anvil:
`fl task create`, TRAIN grants with `consent grant`, `fl submit` of .npy updates by two owners, `fl status`,
`fl checkpoint`, `fl verify`, `fl history`; and bad input refused with its exit code, nothing sent to the chain."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from eth_account.signers.local import LocalAccount

from tests.node.conftest import RunningNode, start_node
from twinledger.chain.deploy import Deployment
from twinledger.chain.localchain import rpc_call
from twinledger.federated import tensors
from twinledger.ipfs import cat

pytestmark = pytest.mark.chain

PASSPHRASE = "correct horse battery staple"
OWNERS = {"alice": 5, "bob": 6, "carol": 7}  # anvil dev accounts; carol never grants TRAIN


def tl(env: dict[str, str], *args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    """`twinledger ARGS` as a real process."""
    command = [sys.executable, "-m", "twinledger.cli", *args]
    return subprocess.run(command, env=env, cwd=cwd, capture_output=True, text=True, timeout=300, check=False)


def ok(env: dict[str, str], *args: str, cwd: Path | None = None) -> Any:
    """The --json output of a command that must succeed."""
    done = tl(env, *args, "--json", cwd=cwd)
    assert done.returncode == 0, done.stdout + done.stderr
    return json.loads(done.stdout)


@dataclass
class CliNode:
    node: RunningNode
    env: dict[str, str]
    rpc_url: str
    twins: dict[str, int]

    def tl(self, *args: str) -> subprocess.CompletedProcess[str]:
        return tl(self.env, *args)

    def ok(self, *args: str, cwd: Path | None = None) -> Any:
        return ok(self.env, *args, cwd=cwd)

    def chain_height(self) -> int:
        return int(rpc_call(self.rpc_url, "eth_blockNumber"), 16)


@pytest.fixture(scope="module")
def cli_node(
    anvil: str, deployment: Deployment, accounts: list[LocalAccount], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[CliNode]:
    home = tmp_path_factory.mktemp("fl-cli-home")
    data_dir = tmp_path_factory.mktemp("fl-cli-node")
    env = {
        **os.environ,
        "TWINLEDGER_HOME": str(home),
        "TWINLEDGER_RPC_URL": anvil,
        "TWINLEDGER_PASSPHRASE": PASSPHRASE,
        "TWINLEDGER_KDF_N": "1024",  # test-only scrypt work factor
        "TWINLEDGER_DATA_DIR": str(data_dir),  # fl verify's default store and catalog: the node's
        "COLUMNS": "200",
    }
    env.pop("TWINLEDGER_DEPLOYMENTS_DIR", None)
    # the aggregator's wallet exists before the node, whose operator lists its did:key as a task creator
    aggregator = ok(env, "wallet", "create", "--name", "aggregator", "--offline")
    snapshot = rpc_call(anvil, "evm_snapshot")  # other modules expect the freshly deployed chain
    node = start_node(data_dir, anvil, deployment, accounts[8], fl_task_creators=[aggregator["did"]])
    run = CliNode(node, {**env, "TWINLEDGER_NODE_URL": node.url}, anvil, {})
    try:
        for name, index in OWNERS.items():
            key = home / f"{name}.key"
            key.write_text("0x" + bytes(accounts[index].key).hex())
            key.chmod(0o600)
            run.ok("wallet", "import", "--name", name, "--private-key-file", str(key))
            run.twins[name] = int(run.ok("twin", "register", "--name", name, "--kind", "asset")["twin_id"])
        yield run
    finally:
        node.stop()
        rpc_call(anvil, "evm_revert", [snapshot])


def _npy(path: Path, array: np.ndarray) -> Path:
    np.save(path, array, allow_pickle=array.dtype == object)
    return path


def _open_task(run: CliNode, tmp_path: Path, shape: tuple[int, ...] = (4, 3)) -> tuple[str, str]:
    """`fl task create` with a zero model of `shape` for research: (task id, aggregator DID)."""
    model = _npy(tmp_path / "model.npy", np.zeros(shape))
    task = run.ok("fl", "task", "create", "--name", "aggregator", "--model", str(model), "--purpose", "research")
    return str(task["task_id"]), task["aggregator_did"]


def test_a_round_through_the_cli(cli_node: CliNode, tmp_path: Path) -> None:
    run, twins = cli_node, cli_node.twins
    task_id, aggregator_did = _open_task(run, tmp_path)
    assert aggregator_did == run.node.runtime.node_key.did  # the node aggregates

    for name in ("alice", "bob"):
        run.ok("consent", "grant", str(twins[name]), aggregator_did, "--scope", "train", "--purpose", "research",
               "--name", name)  # fmt: skip
    waiting = run.ok("fl", "status", task_id, "--name", "aggregator")  # the open round by default
    assert waiting["state"] == "open" and waiting["round"] == 1 and waiting["updates"] == []
    assert [m["twin_id"] for m in waiting["missing"]] == [twins["alice"], twins["bob"]]
    assert all(m["consent"]["train"] for m in waiting["missing"])

    rng = np.random.default_rng(7)
    updates = {name: rng.normal(size=(4, 3)) for name in ("alice", "bob")}
    for samples, (name, update) in enumerate(updates.items(), start=10):
        path = _npy(tmp_path / f"{name}.npy", update)
        sent = run.ok("fl", "submit", task_id, "1", "--twin", str(twins[name]), "--update", str(path),
                      "--samples", str(samples), "--name", name)  # fmt: skip
        assert sent["twin_id"] == twins[name] and sent["tx_hash"].startswith("0x")

    status = run.ok("fl", "status", task_id, "1", "--name", "aggregator")
    assert [(u["twin_id"], u["num_samples"]) for u in status["updates"]] == [(twins["alice"], 10), (twins["bob"], 11)]
    assert all(u["consent"]["train"] for u in status["updates"]) and status["missing"] == []
    assert status["checkpoint"] is None
    table = run.tl("fl", "status", task_id, "1", "--name", "aggregator")
    assert table.returncode == 0 and "TRAIN in force" in table.stdout and "none yet" in table.stdout
    # a participant reads its round too (signed by its did:key, the recovery key `twin register` registered)
    assert run.ok("fl", "status", task_id, "1", "--name", "bob")["round"] == 1

    done = run.ok("fl", "checkpoint", task_id, "1", "--name", "aggregator")
    assert done["included"] == [twins["alice"], twins["bob"]] and done["total_samples"] == 21 and done["verified"]
    after = run.ok("fl", "status", task_id, "1", "--name", "aggregator")
    assert after["state"] == "checkpointed" and after["checkpoint"]["count"] == 2

    verified = run.tl("fl", "verify", task_id, "1")  # contracts from the node, store and catalog the node's
    assert verified.returncode == 0, verified.stdout + verified.stderr
    assert "verified" in verified.stdout and "recomputed FedAvg model has the checkpoint's digest" in verified.stdout
    history = run.ok("fl", "history", task_id)
    assert [(r["round"], r["participants"], r["totalSamples"]) for r in history] == [
        (1, [twins["alice"], twins["bob"]], 21)
    ]
    assert history[0]["modelDigest"] == done["model_digest"]
    # the checkpointed model is the FedAvg of the two updates weighted by their samples
    pinned = b"".join(cat(run.node.runtime.store, done["model_cid"]))
    assert np.allclose(tensors.deserialize(pinned)[0], (updates["alice"] * 10 + updates["bob"] * 11) / 21)
    # run where an unrelated ./deployments lies: the node's contracts are the ones used, not that directory's
    (tmp_path / "deployments").mkdir()
    (tmp_path / "deployments" / "31337.json").write_text("{}")
    assert ok(run.env, "fl", "history", task_id, cwd=tmp_path) == history


def _refused(run: CliNode, code: int, *args: str) -> dict:
    """Run a command that must fail with `code`, print a problem under --json, and leave the chain untouched."""
    height = run.chain_height()
    failed = run.tl(*args, "--json")
    assert failed.returncode == code, failed.stdout + failed.stderr
    assert "Traceback" not in failed.stderr
    problem = json.loads(failed.stdout)
    assert problem["exitCode"] == code and problem["hint"]
    assert run.chain_height() == height, "a refused command sent a transaction"
    return problem


def test_bad_input_is_refused_before_the_chain(cli_node: CliNode, tmp_path: Path) -> None:
    run, twins = cli_node, cli_node.twins
    task_id, aggregator_did = _open_task(run, tmp_path)
    run.ok("consent", "grant", str(twins["alice"]), aggregator_did, "--scope", "train", "--purpose", "research",
           "--name", "alice")  # fmt: skip

    def submit(name: str, update: Path, task: str = task_id, round_: str = "1", twin: str | None = None) -> list[str]:
        twin = twin or str(twins[name])
        return ["fl", "submit", task, round_, "--twin", twin, "--update", str(update), "--samples", "5", "--name", name]

    good = _npy(tmp_path / "good.npy", np.ones((4, 3)))
    shape = _refused(run, 2, *submit("alice", _npy(tmp_path / "shape.npy", np.ones((3, 4)))))
    assert "does not fit the global model" in shape["detail"] and "(3, 4)" in shape["detail"]
    dtype = _refused(run, 2, *submit("alice", _npy(tmp_path / "complex.npy", np.ones((4, 3)) * 1j)))
    assert "complex128" in dtype["detail"]
    pickled = _refused(run, 2, *submit("alice", _npy(tmp_path / "objects.npy", np.array([{"a": 1}], dtype=object))))
    assert "not a readable numpy file" in pickled["detail"]
    text = tmp_path / "notes.npy"
    text.write_text("not a tensor")
    not_tensor = _refused(run, 2, *submit("alice", text))
    assert "is not a tensor file" in not_tensor["detail"] and ".npz" in not_tensor["hint"]
    unknown = _refused(run, 3, *submit("alice", good, task="999"))
    assert "999" in unknown["detail"]
    assert "999" in _refused(run, 3, "fl", "status", "999", "--name", "aggregator")["detail"]
    no_consent = _refused(run, 7, *submit("carol", good))
    assert "has not granted TRAIN" in no_consent["detail"]
    assert f"consent grant {twins['carol']} {aggregator_did} --scope train --purpose research" in no_consent["hint"]
    foreign = _refused(run, 6, *submit("bob", good, twin=str(twins["alice"])))
    assert "does not own twin" in foreign["detail"]
    # the human form: message and hint, no traceback
    plain = run.tl(*submit("carol", good))
    assert plain.returncode == 7 and "hint:" in plain.stderr and "Traceback" not in plain.stderr

    run.ok(*submit("alice", good))
    run.ok("fl", "checkpoint", task_id, "1", "--name", "aggregator")
    late = _refused(run, 2, *submit("alice", good))
    assert "round 1 of task" in late["detail"] and "is not open" in late["detail"]
    again = _refused(run, 2, "fl", "checkpoint", task_id, "1", "--name", "aggregator")
    assert "is not open" in again["detail"]
    stranger = _refused(run, 6, "fl", "checkpoint", task_id, "2", "--name", "bob")
    assert "did not open task" in stranger["detail"]
    # a revocation after the checkpoint shows in the status's consent column
    run.ok("consent", "revoke", str(twins["alice"]), aggregator_did, "--purpose", "research", "--name", "alice")
    (update,) = run.ok("fl", "status", task_id, "1", "--name", "aggregator")["updates"]
    assert update["consent"]["train"] is False and update["consent"]["outcome"] == "grant-revoked"


def test_where_verify_finds_the_contracts(cli_node: CliNode, deployment: Deployment, tmp_path: Path) -> None:
    run = cli_node
    task, _ = _open_task(run, tmp_path, (2,))
    unreachable = run.tl("fl", "history", task, "--node", "http://127.0.0.1:9", "--json")
    assert unreachable.returncode == 5, unreachable.stdout + unreachable.stderr
    problem = json.loads(unreachable.stdout)
    assert "--deployments-dir" in problem["hint"] and "contracts deploy" not in problem["hint"]
    without_node = {k: v for k, v in run.env.items() if k != "TWINLEDGER_NODE_URL"}
    missing = tl(without_node, "fl", "history", task, "--deployments-dir", str(tmp_path), "--json")
    assert missing.returncode == 3
    hint = json.loads(missing.stdout)["hint"]
    assert "--node" in hint and "contracts deploy" not in hint
    # given explicitly, the deployment file names the contracts without a node, or when the node is unreachable
    (tmp_path / f"{deployment.chain_id}.json").write_text(deployment.to_json())
    assert ok(without_node, "fl", "history", task, "--deployments-dir", str(tmp_path)) == []
    fallback = ("fl", "history", task, "--node", "http://127.0.0.1:9", "--deployments-dir", str(tmp_path))
    assert ok(run.env, *fallback) == []
