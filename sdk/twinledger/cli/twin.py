"""`twinledger twin register|show|list|transfer|bind-device`."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import typer

from twinledger.cli.output import JsonOption, TwinArgument, console, print_json, print_mapping, print_rows
from twinledger.cli.wallet import NodeOption, PassFileOption, RpcOption, Session, connect, say_via, wallet_options
from twinledger.errors import InvalidInput, NotFound

if TYPE_CHECKING:
    from twinledger.client.results import Grant

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
    twin_id: int = TwinArgument,
    name: str | None = typer.Option(
        None,
        "--name",
        "-n",
        help="sign as this wallet (the owner, or a READ/AUDIT grantee with --purpose) to be told "
        "the last anchored and stored snapshot, which are not public",
    ),
    purpose: str | None = typer.Option(None, "--purpose", help="your grant's purpose (not needed as the owner)"),
    passphrase_file: Path | None = PassFileOption,
    node: str | None = NodeOption,
    rpc_url: str | None = RpcOption,
    json_out: bool = JsonOption,
) -> None:
    """Owner, kind, parent and device of a twin (from the chain while the node is down); with --name, also how far
    its snapshots are stored and anchored."""
    with connect(node, rpc_url, name, passphrase_file) as tl:
        twin = tl.twin(twin_id, purpose=purpose, signed=name is not None)
    if json_out:
        print_json(twin.as_dict())
        return
    shown = {k: v for k, v in twin.as_dict().items() if k != "tx_hash"}
    if twin.anchored_seq is None:
        told = "the node's to say" if tl.via()["node"] is None else "sign with --name to be told"
        shown |= {"anchored_seq": f"- ({told})", "latest_seq": "-"}
    print_mapping(f"twin {twin_id}", shown)
    say_via(tl)


@app.command("list")
@wallet_options
def list_(
    owner: str | None = typer.Option(None, "--owner", help="address (default: your wallet's)"),
    *,
    session: Session,
    json_out: bool = JsonOption,
) -> None:
    """The twins an address owns (read from the chain; a wallet's address needs no passphrase)."""
    from twinledger.wallet.store import WalletStore

    with session.connect(wallet=False) as tl:
        twins = tl.twins(owner or WalletStore().info(session.name).address)
    if json_out:
        print_json([t.as_dict() for t in twins])
    else:
        print_rows(
            "twins",
            ["id", "kind", "parent", "owner"],
            [(t.twin_id, t.kind, t.parent_id or "-", t.owner) for t in twins],
        )
        say_via(tl)


def _recipient(to: str) -> str:
    """`to` as given when it is an address, else the address of the wallet so named (its public file: no
    passphrase)."""
    if to[:2].lower() == "0x":
        return to
    from twinledger.wallet.store import WalletStore

    try:
        return WalletStore().info(to).address
    except NotFound:
        raise InvalidInput(
            f"{to!r} is neither an address nor one of your wallets",
            hint="give the new owner's 0x address, or a wallet name from `twinledger wallet list`",
        ) from None


def _ask_to_transfer(twin_id: int, new_owner: str, ending: list[Grant]) -> bool:
    from twinledger.chain.types import purpose_text

    if ending:
        rows = [(g.did, purpose_text(g.purpose), ",".join(g.scopes)) for g in ending]
        print_rows(f"consents of twin {twin_id} that end with the transfer", ["did", "purpose", "scopes"], rows)
    what = ("1 consent ends" if len(ending) == 1 else f"{len(ending)} consents end") if ending else "no consent is live"
    return typer.confirm(f"transfer twin {twin_id} to {new_owner} ({what}; only the new owner can undo it)?")


@app.command()
@wallet_options
def transfer(
    twin_id: int = TwinArgument,
    to: str = typer.Argument(..., help="the new owner: an address, or the name of one of your wallets"),
    yes: bool = typer.Option(False, "--yes", help="do not ask (the consents that end are not shown)"),
    *,
    session: Session,
    json_out: bool = JsonOption,
) -> None:
    """Transfer a twin; every consent you gave for it ends (asked first, with those consents listed)."""
    address = _recipient(to)
    with session.connect() as tl:
        confirm = None if yes else lambda new_owner, ending: _ask_to_transfer(twin_id, new_owner, ending)
        result = tl.transfer(twin_id, address, confirm=confirm)
    if json_out:
        print_json({**result.as_dict(), "via": tl.via()})
    else:
        console.print(f"twin {twin_id} transferred to {result.details['to']} in {result.tx_hash}")
        say_via(tl)


@app.command("bind-device")
@wallet_options
def bind_device(
    twin_id: int = TwinArgument,
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
