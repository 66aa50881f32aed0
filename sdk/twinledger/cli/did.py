"""`twinledger did new|show`: did:key files for devices, without a wallet."""

from __future__ import annotations

from pathlib import Path

import typer

from twinledger.cli.output import JsonOption, console, print_json

app = typer.Typer(help="did:key files for devices: make one, show its DID.", no_args_is_help=True)


def _report(did: str, path: Path, json_out: bool, verb: str) -> None:
    if json_out:
        print_json({"did": did, "keyFile": str(path)})
        return
    console.print(f"{verb} {path}: [bold]{did}[/]", highlight=False)


@app.command()
def new(
    out: Path = typer.Option(..., "--out", "-o", help="where to write the private JWK (created with mode 0600)"),
    force: bool = typer.Option(False, "--force", help="replace an existing file (the key in it is lost)"),
    json_out: bool = JsonOption,
) -> None:
    """Make a did:key for a device: its private JWK goes to --out, its DID is printed (bind it to a twin with
    `twinledger twin register KIND --device DID` or `twin bind-device`)."""
    from twinledger.identity import DidKey
    from twinledger.identity.keyfile import write_key_file

    key = DidKey.generate()
    write_key_file(out, key, replace=force)
    _report(key.did, out, json_out, "wrote")


@app.command()
def show(
    file: Path = typer.Argument(..., help="a private JWK file (from `did new`)"),
    json_out: bool = JsonOption,
) -> None:
    """The DID of the did:key in FILE (refused if others can read the file)."""
    from twinledger.identity.keyfile import read_key_file

    _report(read_key_file(file).did, file, json_out, "key")
