"""`twinledger chain up|down|status`: the local anvil chain."""

from __future__ import annotations

from pathlib import Path

import typer

from twinledger.chain.localchain import DEFAULT_CHAIN_ID, LocalChain
from twinledger.cli.output import JsonOption, console, print_json, print_mapping

app = typer.Typer(help="Run a local EVM chain (anvil) whose state persists in a data directory.", no_args_is_help=True)

DataDirOption = typer.Option(
    None,
    "--data-dir",
    help="the data directory, as for `node up`: the chain's state is in its chain/ (default: $TWINLEDGER_DATA_DIR)",
)


def _chain(data_dir: Path | None, port: int | None = None, chain_id: int = DEFAULT_CHAIN_ID) -> LocalChain:
    """The local chain of `data_dir`, where `node up --data-dir` keeps it too."""
    return LocalChain(data_dir / "chain" if data_dir else None, port=port, chain_id=chain_id)


@app.command()
def up(
    data_dir: Path | None = DataDirOption,
    port: int | None = typer.Option(
        None,
        "--port",
        min=1,
        max=65535,
        help="RPC port on 127.0.0.1 (default: the port it last had, else 8545, else a free one)",
    ),
    chain_id: int = typer.Option(DEFAULT_CHAIN_ID, "--chain-id", min=1, help="chain id of the local chain"),
    json_out: bool = JsonOption,
) -> None:
    """Start the local chain, or reuse the one already running for this data directory."""
    status = _chain(data_dir, port=port, chain_id=chain_id).up()
    if json_out:
        print_json(status.as_dict())
        return
    verb = "already running" if status.reused else "started"
    console.print(
        f"chain {verb} at [bold]{status.rpc_url}[/] (chain id {status.chain_id}, pid {status.pid}, "
        f"block {status.block_number}); state in {status.data_dir}"
    )


@app.command()
def down(data_dir: Path | None = DataDirOption, json_out: bool = JsonOption) -> None:
    """Stop the local chain; its state is written to the data directory first."""
    stopped = _chain(data_dir).down()
    if json_out:
        print_json({"stopped": stopped})
    else:
        console.print("chain stopped" if stopped else "no chain was running for this data directory")


@app.command()
def status(data_dir: Path | None = DataDirOption, json_out: bool = JsonOption) -> None:
    """Show whether the local chain runs, where, and at which block. Exit code 1 when it does not run."""
    current = _chain(data_dir).status()
    if json_out:
        print_json(current.as_dict())
    else:
        print_mapping("local chain", {k: v for k, v in current.as_dict().items() if v is not None})
    if not current.running:
        raise typer.Exit(1)
