"""`twinledger verify TWIN [--car FILE]`: check a twin's provenance against the chain, trusting no node."""

from __future__ import annotations

import io
from pathlib import Path

import typer

from twinledger.cli.output import JsonOption, TwinArgument, console, print_json
from twinledger.cli.wallet import Session, wallet_options
from twinledger.errors import InvalidInput, NotFound

app = typer.Typer(help="Verify a twin's provenance offline.", context_settings={"allow_interspersed_args": True})


@app.callback(invoke_without_command=True)
@wallet_options
def verify(
    twin_id: int = TwinArgument,
    car: Path | None = typer.Option(None, "--car", help="a provenance CAR (else fetched from the node)"),
    save_car: Path | None = typer.Option(None, "--save-car", help="keep the CAR fetched from the node here"),
    ledger_address: str | None = typer.Option(
        None, "--ledger", envvar="TWINLEDGER_LEDGER_ADDRESS", help="TwinLedger address (with --car: default the CAR's)"
    ),
    allow_pending: bool = typer.Option(False, "--allow-pending", help="accept records not anchored yet"),
    allow_withheld: bool = typer.Option(
        False, "--allow-withheld", help="accept an AUDIT-only CAR: manifests checked by digest and anchor, unread"
    ),
    purpose: str | None = typer.Option(None, "--purpose", help="your AUDIT grant's purpose (not needed as owner)"),
    *,
    session: Session,
    json_out: bool = JsonOption,
) -> None:
    """Check the whole snapshot chain (hash links, producer and node signatures, Merkle proofs to on-chain batch
    roots), the access receipts and the denial records of refused reads, from the chain plus the node's or a
    file's provenance CAR. Exit code 4 at the first mismatch."""
    from twinledger.chain.client import ChainClient
    from twinledger.chain.ledger import TwinLedger
    from twinledger.profile import ChainFacts, chain_url, check_chain
    from twinledger.verify import read_bundle, verify_twin

    if car is not None:
        try:
            data = car.read_bytes()
        except FileNotFoundError:
            raise NotFound(
                f"no CAR file {car}", hint="fetch one with `twinledger verify TWIN --save-car FILE`"
            ) from None
        # The CAR's registry is only a default: the chain decides whether anything in it is anchored.
        index = read_bundle(io.BytesIO(data))[0]
        address = ledger_address or index.registry
        ledger = TwinLedger(ChainClient(chain_url(session.node, session.rpc_url)), address)
        # the CAR's chain, and code at the ledger: else every anchor would fail one by one, for the wrong reason
        check_chain(ledger.client, ChainFacts(index.chain_id, address), f"the CAR (registry {address})")
    else:
        with session.connect() as tl:
            data = tl.provenance_car(twin_id, purpose=purpose)
            if ledger_address and ledger_address.lower() != tl.node.twin_ledger.lower():
                raise InvalidInput(f"the node serves ledger {tl.node.twin_ledger}, not {ledger_address}")
            ledger = tl.ledger  # the node's contracts, on a chain checked to be the node's
        if save_car:
            save_car.write_bytes(data)
    echo = None if json_out else (lambda line: console.print(f"[green]✓[/] {line}", highlight=False))
    report = verify_twin(
        ledger, twin_id, io.BytesIO(data), allow_pending=allow_pending, allow_withheld=allow_withheld, on_check=echo
    )
    if json_out:
        print_json(report.as_dict())
        return
    console.print(
        f"[bold green]verified[/] twin {twin_id}: {report.snapshots} snapshots, {report.receipts} access "
        f"receipts, {report.batches} anchored batches"
        + (f"; {report.denials} denial records (refused reads)" if report.denials else "")
        + (f"; {len(report.pending)} not anchored yet" if report.pending else "")
        + (f"; {len(report.withheld)} manifests withheld (audit view)" if report.withheld else ""),
        highlight=False,
    )
