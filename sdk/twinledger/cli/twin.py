"""`twinledger twin register|show|list|transfer|bind-device`."""

from __future__ import annotations

from pathlib import Path

import typer

from twinledger.cli.output import JsonOption, console, print_json, print_mapping, print_rows
from twinledger.cli.wallet import NodeOption, Session, connect, wallet_options

app = typer.Typer(help="Register twins, bind their devices, transfer them.", no_args_is_help=True)


@app.command()
@wallet_options
def register(
    kind: str = typer.Option("asset", "--kind", help="component, asset, system or process"),
    parent: int = typer.Option(0, "--parent", help="parent twin id"),
    device: str | None = typer.Option(None, "--device", help="did:key of the device that signs its data"),
    metadata: Path | None = typer.Option(None, "--metadata", help="file whose sha256 is recorded on chain"),
    *,
    session: Session,
    json_out: bool = JsonOption,
) -> None:
    """Register a twin owned by your wallet."""
    with session.connect() as tl:
        twin = tl.register_twin(
            kind, parent_id=parent, device_did=device, metadata=metadata.read_bytes() if metadata else None
        )
    if json_out:
        print_json(twin.as_dict())
    else:
        console.print(f"registered twin [bold]{twin.twin_id}[/] ({twin.kind}) owned by {twin.owner} in {twin.tx_hash}")


@app.command()
def show(
    twin_id: int = typer.Argument(..., help="twin id"), node: str = NodeOption, json_out: bool = JsonOption
) -> None:
    """Owner, kind, parent, device and anchored sequence of a twin."""
    with connect(node, None, None, None) as tl:
        twin = tl.twin(twin_id)
    if json_out:
        print_json(twin.as_dict())
    else:
        print_mapping(f"twin {twin_id}", {k: v for k, v in twin.as_dict().items() if k != "tx_hash"})


@app.command("list")
@wallet_options
def list_(
    owner: str | None = typer.Option(None, "--owner", help="address (default: your wallet's)"),
    *,
    session: Session,
    json_out: bool = JsonOption,
) -> None:
    """The twins an address owns (read from the chain)."""
    with session.connect(wallet=not owner) as tl:
        twins = tl.twins(owner)
    if json_out:
        print_json([t.as_dict() for t in twins])
    else:
        print_rows(
            "twins",
            ["id", "kind", "parent", "anchored seq", "owner"],
            [(t.twin_id, t.kind, t.parent_id or "-", t.anchored_seq, t.owner) for t in twins],
        )


@app.command()
@wallet_options
def transfer(
    twin_id: int = typer.Argument(...),
    to: str = typer.Argument(..., help="new owner's address"),
    *,
    session: Session,
    json_out: bool = JsonOption,
) -> None:
    """Transfer a twin; every consent you gave for it ends."""
    with session.connect() as tl:
        result = tl.transfer(twin_id, to)
    if json_out:
        print_json(result.as_dict())
    else:
        console.print(f"twin {twin_id} transferred to {result.details['to']} in {result.tx_hash}")


@app.command("bind-device")
@wallet_options
def bind_device(
    twin_id: int = typer.Argument(...),
    device: str = typer.Argument(..., help='device did:key ("" unbinds)'),
    *,
    session: Session,
    json_out: bool = JsonOption,
) -> None:
    """Bind the device whose key signs this twin's data."""
    with session.connect() as tl:
        result = tl.bind_device(twin_id, device)
    if json_out:
        print_json(result.as_dict())
    else:
        console.print(f"twin {twin_id}: device {result.details['deviceDid'] or '(none)'} in {result.tx_hash}")
