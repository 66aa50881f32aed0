"""`twinledger fl verify|history`: check federated rounds against the chain and the block store."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import typer

from twinledger import config
from twinledger.cli.output import JsonOption, console, print_json, print_rows

if TYPE_CHECKING:
    from twinledger.federated import Verifier

app = typer.Typer(help="Federated learning with provenance: verify rounds, task history.", no_args_is_help=True)

RpcOption = typer.Option(
    None, "--rpc-url", envvar="TWINLEDGER_RPC_URL", help="JSON-RPC URL (default: http://127.0.0.1:8545)"
)
DeploymentsOption = typer.Option(
    Path("deployments"), "--deployments-dir", envvar="TWINLEDGER_DEPLOYMENTS_DIR", help="Where <chainId>.json lives"
)
StoreOption = typer.Option(
    None, "--store", envvar="TWINLEDGER_IPFS_PATH", help="Block store directory (default: $TWINLEDGER_DATA_DIR/ipfs)"
)
CatalogOption = typer.Option(
    None, "--catalog", envvar="TWINLEDGER_FL_CATALOG", help="Federated catalog (default: $TWINLEDGER_DATA_DIR/fl)"
)
KeyOption = typer.Option(
    None, "--key", help="JWK file of the aggregator's did:key, to open updates that were encrypted to it"
)


def open_verifier(
    rpc_url: str | None, deployments_dir: Path, store: Path | None, catalog: Path | None, key: Path | None = None
) -> Verifier:
    """A read-only Verifier on the deployed contracts, the block store and the catalog."""
    from twinledger.chain.client import ChainClient
    from twinledger.chain.deploy import Deployment, deployment_path
    from twinledger.federated import DirectoryCatalog, Verifier
    from twinledger.ipfs import FileBlockStore

    client = ChainClient(rpc_url or "http://127.0.0.1:8545")
    ledger, federated = Deployment.load(deployment_path(deployments_dir, client.chain_id)).bind(client)
    verifier = Verifier(
        federated,
        ledger,
        FileBlockStore(store or config.data_dir() / "ipfs"),
        DirectoryCatalog(catalog or config.data_dir() / "fl", client.chain_id, federated.address),
    )
    if key is not None:
        from twinledger.identity.keyfile import read_key_file

        verifier.key = read_key_file(key)
    return verifier


@app.command()
def verify(
    task: int = typer.Argument(..., help="Task id"),
    round_: int = typer.Argument(..., metavar="ROUND", help="Round number"),
    rpc_url: str | None = RpcOption,
    deployments_dir: Path = DeploymentsOption,
    store: Path | None = StoreOption,
    catalog: Path | None = CatalogOption,
    key: Path | None = KeyOption,
    json_out: bool = JsonOption,
) -> None:
    """Recompute ROUND of TASK from the pinned updates; check model digest, Merkle root and counts. Exit 4 if not."""
    report = open_verifier(rpc_url, deployments_dir, store, catalog, key).verify_round(task, round_)
    if json_out:
        print_json(report.as_dict())
    else:
        for line in report.checks:
            console.print(f"[green]✓[/] {line}", highlight=False)
        for line in report.problems:
            console.print(f"[red]✗[/] {line}", highlight=False)
        verdict = "[green]verified[/]" if report.ok else "[red]FAILED[/]"
        console.print(f"task {task} round {round_}: {verdict}")
    if not report.ok:
        raise typer.Exit(4)


@app.command()
def history(
    task: int = typer.Argument(..., help="Task id"),
    rpc_url: str | None = RpcOption,
    deployments_dir: Path = DeploymentsOption,
    store: Path | None = StoreOption,
    catalog: Path | None = CatalogOption,
    json_out: bool = JsonOption,
) -> None:
    """Show TASK's checkpointed rounds: participants (twin ids), exclusions and model digests."""
    rounds = open_verifier(rpc_url, deployments_dir, store, catalog).history(task)
    if json_out:
        print_json(
            [
                {
                    "round": r.round,
                    "modelDigest": r.model_digest,
                    "participants": r.participants,
                    "excluded": {str(k): v for k, v in r.excluded.items()},
                    "count": r.count,
                    "totalSamples": r.total_samples,
                    "block": r.block_number,
                }
                for r in rounds
            ]
        )
        return
    rows = [
        (
            r.round,
            ", ".join(map(str, r.participants)),
            "; ".join(f"{t}: {why}" for t, why in r.excluded.items()) or "-",
            r.total_samples,
            "0x" + r.model_digest.hex(),
        )
        for r in rounds
    ]
    print_rows(f"task {task}", ["round", "twins", "excluded", "samples", "model digest"], rows)
