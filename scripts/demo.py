"""`make demo`: a local stack and a twin's lifecycle, told step by step.

Runs on embedded defaults: anvil on 127.0.0.1 with its state in .demo/ (kept running afterwards so you can go on
with the CLI; `make chain-down` stops it). Safe to run again: the chain and contracts are reused.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from eth_account import Account
from rich.console import Console
from rich.table import Table

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "sdk"))

from twinledger.chain.client import ChainClient, TxResult  # noqa: E402
from twinledger.chain.deploy import deploy  # noqa: E402
from twinledger.chain.ledger import GrantRequest  # noqa: E402
from twinledger.chain.localchain import DEV_KEYS, LocalChain  # noqa: E402

console = Console(emoji=False)
DATA_DIR = Path(os.environ.get("TWINLEDGER_DATA_DIR") or ROOT / ".demo")
RESEARCHER_DID = "did:key:z6MkhaXgBZDvotDkL5257faiztiGiC2QtKLGpbnnEGta2doK"
DEVICE_DIDS = (
    "did:key:z6MkfXXpsrRGDxsSxf473MVmg9dtsDJuJKzMZztAA2jwWhws",
    "did:key:z6MkjchhfUsD6mmvni8mCdXHw216Xrm9bQe2mBH1P5RDjVJG",
)


def step(number: int, text: str) -> None:
    console.rule(f"[bold]{number}. {text}", align="left")


def tx_line(label: str, result: TxResult) -> None:
    console.print(
        f"   {label}: tx [cyan]{result.tx_hash[:18]}…[/] block {result.block_number}, gas {result.gas_used:,}"
    )


def main() -> int:
    step(1, "Start the local chain")
    chain = LocalChain(DATA_DIR / "chain")
    status = chain.up()
    verb = "reusing the running" if status.reused else "started a new"
    console.print(f"   {verb} anvil at {status.rpc_url} (chain {status.chain_id}, pid {status.pid})")

    step(2, "Deploy the ledger contracts")
    rpc = str(status.rpc_url)
    deployment, created = deploy(ChainClient(rpc, Account.from_key(DEV_KEYS[0])), DATA_DIR / "deployments")
    console.print(
        f"   {'deployed' if created else 'already deployed'}: TwinLedger {deployment.twin_ledger}, "
        f"FederatedLedger {deployment.federated_ledger}"
    )

    owner_account, relayer_account = Account.from_key(DEV_KEYS[1]), Account.from_key(DEV_KEYS[2])
    ledger, _ = deployment.bind(ChainClient(rpc, owner_account))
    relayer, _ = deployment.bind(ChainClient(rpc, relayer_account))

    step(3, "The owner registers a system twin made of two component twins with device DIDs")
    system, result = ledger.register("system")
    tx_line(f"system twin #{system}", result)
    components = []
    for device in DEVICE_DIDS:
        component, result = ledger.register("component", parent_id=system, device_did=device)
        components.append(component)
        tx_line(f"component twin #{component} (device {device[:24]}…)", result)

    now = ledger.client.chain_time()
    step(4, "The owner grants a researcher READ on the whole system, for research, for 30 days")
    grant = GrantRequest.of(system, RESEARCHER_DID, "research", "read,inherit", now + 30 * 86_400)
    tx_line("grant", ledger.grant(grant))

    step(5, "The owner signs a TRAIN grant off-chain (EIP-712); a relayer submits it and pays the gas")
    signed = ledger.sign_grant(
        owner_account,
        GrantRequest.of(components[0], RESEARCHER_DID, "research", "train", now + 7 * 86_400),
        deadline=now + 3600,
    )
    tx_line(f"grantBySig relayed by {relayer_account.address[:10]}…", relayer.submit_signed(signed))
    show_authorizations(ledger, system, components)

    step(6, "The owner revokes the READ grant")
    tx_line("revoke", ledger.revoke(system, RESEARCHER_DID, "research"))
    show_authorizations(ledger, system, components)

    console.rule("[bold green]done", align="left")
    console.print(
        f"   The chain keeps running with its state in {DATA_DIR / 'chain'}; stop it with "
        f"`TWINLEDGER_DATA_DIR={DATA_DIR} .venv/bin/twinledger chain down`."
    )
    console.print("   Next: docs/gas.md for what each operation costs; `.venv/bin/twinledger --help` for the CLI.")
    return 0


def show_authorizations(ledger, system: int, components: list[int]) -> None:  # type: ignore[no-untyped-def]
    console.print(f"   what {RESEARCHER_DID} may do now for purpose research (isAuthorized on chain):")
    table = Table()
    table.add_column("twin")
    for scope in ("read", "train"):
        table.add_column(scope)
    for twin in (system, *components):
        cells = [
            "[green]yes[/]" if ledger.is_authorized(twin, RESEARCHER_DID, "research", s) else "[red]no[/]"
            for s in ("read", "train")
        ]
        table.add_row(f"#{twin}", *cells)
    console.print(table)


if __name__ == "__main__":
    sys.exit(main())
