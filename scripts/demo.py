"""`make demo`: the whole lifecycle of a digital twin on a local stack, told step by step.

Everything runs on embedded defaults under .demo/: anvil (state kept), the contracts (deployed once), and a node
(`twinledger node up`) with its embedded block store. Safe to run again: chain, contracts and wallets are reused.
On this local chain the demo funds the new wallets with anvil's `anvil_setBalance`.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import numpy as np
from rich.console import Console
from rich.table import Table

ROOT = Path(__file__).resolve().parents[1]
DEMO = Path(os.environ.get("TWINLEDGER_DEMO_DIR") or ROOT / ".demo")
os.environ.setdefault("TWINLEDGER_HOME", str(DEMO / "home"))

from twinledger.chain.client import ChainClient  # noqa: E402
from twinledger.chain.ledger import FederatedLedger, TwinLedger  # noqa: E402
from twinledger.chain.localchain import LocalChain, free_port, rpc_call  # noqa: E402
from twinledger.client import Client, ConsentDenied, parse_expiry  # noqa: E402
from twinledger.federated import Aggregator, DirectoryCatalog, Participant, Verifier  # noqa: E402
from twinledger.identity import DidKey  # noqa: E402
from twinledger.ipfs import FileBlockStore  # noqa: E402
from twinledger.wallet import WalletStore  # noqa: E402

console = Console(emoji=False, highlight=False)
PASSPHRASE = "correct horse battery staple"
started = time.monotonic()


def step(number: int, text: str) -> None:
    console.rule(f"[bold]{number}. {text}", align="left")


def say(text: str) -> None:
    console.print("   " + text)


def wallet(store: WalletStore, name: str, rpc: str):  # type: ignore[no-untyped-def]
    if name not in {w.name for w in store.list()}:
        store.create(name, PASSPHRASE)
    unlocked = store.unlock(name, PASSPHRASE)
    rpc_call(rpc, "anvil_setBalance", [unlocked.address, hex(10**20)])  # local chain only: fund the wallet
    return unlocked


def start_node(port: int) -> subprocess.Popen[bytes]:
    env = {**os.environ, "TWINLEDGER_DATA_DIR": str(DEMO), "TWINLEDGER_PORT": str(port),
           "TWINLEDGER_ANCHOR_BATCH_SECONDS": "1", "TWINLEDGER_POLL_INTERVAL": "0.2"}  # fmt: skip
    log = (DEMO / "node.log").open("ab")
    node = subprocess.Popen([sys.executable, "-m", "twinledger.cli", "node", "up", "--log-level", "warning"],
                            env=env, stdout=log, stderr=subprocess.STDOUT)  # fmt: skip
    for _ in range(600):
        try:
            if httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=1).status_code == 200:
                return node
        except httpx.HTTPError:
            pass
        if node.poll() is not None:
            raise SystemExit(f"the node exited; see {DEMO / 'node.log'}")
        time.sleep(0.1)
    raise SystemExit(f"the node did not become ready; see {DEMO / 'node.log'}")


def wait_anchor_queue_empty(node_url: str) -> None:
    """Until the node has anchored every snapshot and access receipt (its anchor queue gauge reads zero)."""
    for _ in range(600):
        metrics = httpx.get(f"{node_url}/metrics", timeout=5).text
        if "twinledger_anchor_queue_depth 0.0" in metrics:
            return
        time.sleep(0.1)
    raise SystemExit("the node did not anchor everything within a minute; see .demo/node.log")


def main() -> int:
    DEMO.mkdir(parents=True, exist_ok=True)
    port = free_port()
    node_url = f"http://127.0.0.1:{port}"

    step(1, "Start the local stack: chain, contracts, node")
    node = start_node(port)
    try:
        rpc = str(LocalChain(DEMO / "chain").status().rpc_url)
        info = httpx.get(f"{node_url}/v1/node").json()
        say(f"anvil at {rpc} (chain {info['chainId']}); TwinLedger {info['twinLedger']}")
        say(f"node at {node_url}, its DID {info['did'][:32]}…, store and index in {DEMO}")
        return lifecycle(node_url, rpc, info)
    finally:
        node.send_signal(signal.SIGTERM)
        node.wait(timeout=60)


def lifecycle(node_url: str, rpc: str, info: dict) -> int:  # type: ignore[type-arg]
    step(2, "An owner and a researcher create wallets (keystore v3 + did:key, mode 0600)")
    store = WalletStore()
    owner_wallet, researcher_wallet = wallet(store, "owner", rpc), wallet(store, "researcher", rpc)
    say(f"owner      {owner_wallet.address}  {owner_wallet.did_key.did}")
    say(f"researcher {researcher_wallet.address}  {researcher_wallet.did_key.did}")
    owner, researcher = Client(node_url, rpc, owner_wallet), Client(node_url, rpc, researcher_wallet)

    step(3, "The owner registers a system twin made of two component twins, each bound to its device's DID")
    devices = [DidKey.generate(), DidKey.generate()]
    system = owner.register_twin("system")
    components = [owner.register_twin("component", parent_id=system.twin_id, device_did=d.did) for d in devices]
    say(f"system twin #{system.twin_id}; components #{components[0].twin_id}, #{components[1].twin_id}")

    step(4, "The devices push snapshots; the node seals them to itself and the owner and stores only ciphertext")
    for device, component in zip(devices, components, strict=True):
        pushed = owner.push_snapshot(component.twin_id, b'{"temperature": 71.5, "rpm": 1480}', as_device=device)
        say(f"twin #{component.twin_id} snapshot #{pushed.seq}: manifest {pushed.manifest_cid[:24]}…")
    owner.push_snapshot(system.twin_id, b'{"line": "A", "state": "running"}')

    step(5, "The owner grants the researcher READ and TRAIN on the system (and what it is made of) for research,")
    console.print("      by signing EIP-712 consent that the node's relayer submits: the owner pays no gas")
    grant = owner.grant(system.twin_id, researcher_wallet.did_key.did, purpose="research",
                        scopes="read,train,inherit", expiry=parse_expiry("30d"), relay=True)  # fmt: skip
    say(f"consent on chain in {grant.tx_hash[:20]}… (relayed: {grant.relayed})")

    step(6, "The researcher reads a component's latest snapshot; the SDK verifies it end to end")
    fetched = researcher.fetch_snapshot(components[0].twin_id, purpose="research")
    say(f"{fetched.data.decode()}  (producer signature, manifest and hash checked)")

    step(7, "A federated round over the three twins: updates committed under TRAIN consent, aggregated, verified")
    chain_id = info["chainId"]
    fl_store, catalog = (
        FileBlockStore(DEMO / "fl-store"),
        DirectoryCatalog(DEMO / "fl-catalog", chain_id, info["federatedLedger"]),
    )
    owner_chain = ChainClient(rpc, owner_wallet.account)
    researcher_chain = ChainClient(rpc, researcher_wallet.account)
    aggregator = Aggregator(FederatedLedger(researcher_chain, info["federatedLedger"]),
                            TwinLedger(researcher_chain, info["twinLedger"]), fl_store, catalog)  # fmt: skip
    aggregator.key = researcher_wallet.did_key  # signs the task record, binding the DID to the researcher's account
    participant = Participant(FederatedLedger(owner_chain, info["federatedLedger"]),
                              TwinLedger(owner_chain, info["twinLedger"]), fl_store, catalog)  # fmt: skip
    model = [np.zeros((4, 2)), np.zeros(2)]
    task = aggregator.open_task(researcher_wallet.did_key.did, "research", model)
    rng = np.random.default_rng(7)
    for twin in (system, *components):
        participant.submit(task.task_id, 1, twin.twin_id, [rng.normal(size=(4, 2)), rng.normal(size=2)], 100)
    result = aggregator.aggregate_round(task.task_id)
    verified = Verifier(aggregator.federated, aggregator.ledger, fl_store, catalog).verify_round(task.task_id, 1)
    say(f"task {task.task_id} round 1: {len(result.record.included)} updates included, checkpoint {result.tx.tx_hash[:20]}…;"
        f" fl verify: {'passed' if verified.ok else 'FAILED'} ({len(verified.checks)} checks)")  # fmt: skip

    step(8, "The owner revokes; the researcher's next read is refused from the next indexed block")
    owner.revoke(system.twin_id, researcher_wallet.did_key.did, purpose="research")
    try:
        researcher.fetch_snapshot(components[0].twin_id, purpose="research")
        say("[red]the read was served after the revocation[/]")
        return 1
    except ConsentDenied as denied:
        say(f"refused: {denied.message}")

    step(9, "The owner's audit timeline of the component")
    wait_anchor_queue_empty(node_url)
    table = Table(show_lines=False)
    for column in ("when (UTC)", "what", "proof"):
        table.add_column(column)
    for entry in owner.audit(components[0].twin_id):
        proof = entry.proof.get("txHash") or "pending"
        table.add_row(time.strftime("%H:%M:%S", time.gmtime(entry.time)), f"{entry.kind} {entry.event or ''}".strip(),
                      f"{proof[:20]}…" if proof != "pending" else proof)  # fmt: skip
    console.print(table)

    step(10, "twinledger verify: the whole provenance of the component, checked against the chain alone")
    report = owner.verify(components[0].twin_id, on_check=lambda line: say(line))
    say(
        f"verified: {report.snapshots} snapshots, {report.receipts} access receipts, {report.denials} denial records "
        f"(refused reads), {report.batches} anchored batches"
    )

    console.rule("[bold green]done", align="left")
    say(f"in {time.monotonic() - started:.0f}s. The chain keeps its state in {DEMO / 'chain'}; next:")
    say(f"  TWINLEDGER_DATA_DIR={DEMO} TWINLEDGER_HOME={DEMO / 'home'} .venv/bin/twinledger node up   # the node again")
    say("  .venv/bin/twinledger --help, README.md (from `wallet create` to `audit`), docs/architecture.md")
    say(f"  stop the chain: TWINLEDGER_DATA_DIR={DEMO} .venv/bin/twinledger chain down")
    return 0


if __name__ == "__main__":
    sys.exit(main())
