"""`twinledger contracts deploy|show`: the ledger contracts on a chain."""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

import typer

from twinledger.cli.output import JsonOption, console, print_json, print_mapping
from twinledger.errors import InvalidInput

if TYPE_CHECKING:
    from twinledger.chain.client import ChainClient

app = typer.Typer(help="Deploy and inspect the twinledger contracts.", no_args_is_help=True)

RpcOption = typer.Option(
    None, "--rpc-url", envvar="TWINLEDGER_RPC_URL",
    help="JSON-RPC URL (default: the profile's, else the local chain of `twinledger chain up`)",
)  # fmt: skip
DeploymentsOption = typer.Option(
    None,
    "--deployments-dir",
    envvar="TWINLEDGER_DEPLOYMENTS_DIR",
    help="where <chainId>.json lives (default: $TWINLEDGER_DATA_DIR/deployments, where `node up` keeps them)",
)


def deployments(directory: Path | None) -> Path:
    """The deployments directory: the option, else the data directory's (never the current directory)."""
    from twinledger import config

    return directory if directory is not None else config.data_dir() / "deployments"


def _client(rpc_url: str | None, keystore: Path | None = None) -> ChainClient:
    from twinledger.chain.client import ChainClient
    from twinledger.chain.keys import load_keystore, signer_from_env
    from twinledger.profile import chain_url

    client = ChainClient(chain_url(None, rpc_url))
    if keystore is not None:
        passphrase = os.environ.get("TWINLEDGER_PASSPHRASE") or typer.prompt("keystore passphrase", hide_input=True)
        client.account = load_keystore(keystore, passphrase)
    else:
        client.account = signer_from_env(client.chain_id)
    return client


@app.command("deploy")
def deploy_command(
    rpc_url: str | None = RpcOption,
    deployments_dir: Path | None = DeploymentsOption,
    keystore: Path | None = typer.Option(None, "--keystore", help="keystore v3 file of the deployer"),
    force: bool = typer.Option(False, "--force", help="deploy new contracts even if this chain has them"),
    json_out: bool = JsonOption,
) -> None:
    """Deploy and wire TwinLedger and FederatedLedger; a no-op when this chain has them already."""
    from twinledger.chain.deploy import deploy, deployment_path

    client = _client(rpc_url, keystore)
    if client.account is None:
        raise InvalidInput(
            f"no deployer key for chain {client.chain_id}",
            hint="set TWINLEDGER_PRIVATE_KEY, or pass --keystore FILE",
        )
    directory = deployments(deployments_dir)
    deployment, created = deploy(client, directory, force=force)
    path = deployment_path(directory, client.chain_id)
    if json_out:
        print_json({"created": created, "file": str(path), **deployment.__dict__})
        return
    verb = "deployed" if created else "already deployed (no-op)"
    console.print(
        f"contracts {verb} on chain {client.chain_id}: TwinLedger [bold]{deployment.twin_ledger}[/], "
        f"FederatedLedger [bold]{deployment.federated_ledger}[/] → {path}"
    )


@app.command()
def show(
    rpc_url: str | None = RpcOption, deployments_dir: Path | None = DeploymentsOption, json_out: bool = JsonOption
) -> None:
    """Show the deployment of this chain and whether its code matches the artifacts."""
    from twinledger.chain.client import ChainClient
    from twinledger.chain.deploy import Deployment, deployment_path, verify
    from twinledger.profile import chain_url

    client = ChainClient(chain_url(None, rpc_url))
    deployment = Deployment.load(deployment_path(deployments(deployments_dir), client.chain_id))
    problems = verify(client, deployment)
    if json_out:
        print_json({**deployment.__dict__, "problems": problems})
    else:
        print_mapping(f"deployment on chain {client.chain_id}", {**deployment.__dict__, "verified": not problems})
        for problem in problems:
            console.print(f"[red]✗[/] {problem}")
    if problems:
        raise typer.Exit(1)
