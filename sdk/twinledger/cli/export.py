"""`twinledger export TWIN -o FILE`: take a twin's data home (open it later with `twinledger snapshot open --car`)."""

from __future__ import annotations

from pathlib import Path

import typer

from twinledger.cli.output import JsonOption, TwinArgument, console, print_json
from twinledger.cli.snapshot import progress_bar
from twinledger.cli.wallet import Session, wallet_options
from twinledger.errors import InvalidInput, NotFound

app = typer.Typer(help="Export a twin you own as one CAR file.", context_settings={"allow_interspersed_args": True})


def new_path(out: Path, what: str) -> None:
    """Refuse an output path before anything is sent or read: it exists, or its directory does not."""
    if out.exists() or out.is_symlink():
        raise InvalidInput(f"{out} exists", hint=f"choose a new path for the {what} with -o")
    if not out.parent.is_dir():
        raise NotFound(f"no directory {out.parent} to write {out.name} into", hint="create it, or choose another -o")


@app.callback(invoke_without_command=True)
@wallet_options
def export(
    twin_id: int = TwinArgument,
    out: Path = typer.Option(..., "-o", "--out", help="the CAR file to write (a new file)"),
    *,
    session: Session,
    json_out: bool = JsonOption,
) -> None:
    """Download everything the node holds of a twin you own: every snapshot's content (encrypted, sealed to your
    wallet's did:key), the signed manifests, the access receipts and their Merkle proofs, as one CARv1 file that
    `twinledger snapshot open --car` opens without the node and any IPFS node imports (`ipfs dag import`). The
    export is recorded as one access receipt."""
    from twinledger.verify.export import ExportCar

    new_path(out, "export")
    with session.connect() as tl, progress_bar(f"export twin {twin_id}", not json_out) as progress:
        size = tl.export(twin_id, out, progress=progress)
    with out.open("rb") as file:  # every block re-hashed: what was written is what the node sent
        index = ExportCar(file).index
    # `receipts`: the twin's receipt chain, access receipts and denial records alike (`verify` tells them apart)
    facts = {"twinId": twin_id, "file": str(out), "bytes": size, "snapshots": len(index.snapshots),
             "receipts": len(index.receipts)}  # fmt: skip
    if json_out:
        print_json(facts)
        return
    console.print(
        f"exported twin {twin_id} → {out}: {facts['snapshots']} snapshots, {facts['receipts']} records of reads and "
        "refused reads, "
        f"{size} bytes; open it with `twinledger snapshot open --car {out}`",
        highlight=False,
    )
