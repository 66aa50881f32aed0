"""`twinledger audit TWIN`: a readable timeline of everything that happened to a twin, with its proofs."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import typer
from rich.table import Table

from twinledger.cli.output import JsonOption, TwinArgument, console, print_json
from twinledger.cli.wallet import Session, wallet_options

if TYPE_CHECKING:
    from twinledger.client import AuditEntry

app = typer.Typer(help="A twin's audit trail as a timeline.", context_settings={"allow_interspersed_args": True})


def _purpose(value: Any) -> str:
    from twinledger.chain.types import purpose_label

    text = str(value)
    return purpose_label(bytes.fromhex(text[2:])) if text.startswith("0x") and len(text) == 66 else text


def describe(entry: AuditEntry) -> str:
    """One line a person can read, for each kind of entry."""
    from twinledger.chain.types import Scope, TwinKind

    d = entry.data
    match entry.kind:
        case "registered":
            return f"registered as {TwinKind(int(d.get('kind', 0))).name.lower()} by {d.get('owner')}"
        case "ownership":
            return f"owner {d.get('from')} → {d.get('to')}"
        case "device":
            return f"device bound: {d.get('deviceDid') or '(none)'}"
        case "grant":
            return (
                f"grant to {d.get('did')} for {_purpose(d.get('purpose'))}: "
                f"{','.join(Scope(int(d.get('scopes', 0))).names())} until "
                f"{datetime.fromtimestamp(int(d.get('expiry', 0)), UTC):%Y-%m-%d}"
            )
        case "revocation":
            return f"revoked grant of {d.get('didHash', '')!s:.18}… for {_purpose(d.get('purpose'))}"
        case "snapshot":
            size = f" ({d['size']} bytes)" if "size" in d else ""  # not shown to an AUDIT-only grantee
            return f"snapshot #{d['seq']}{size} by {d['producer']}"
        case "read":
            return f"read of snapshot #{d['seq']} by {d['reader']} for {_purpose(d['purpose'])}"
    return f"{entry.event or entry.kind}: {d}"


def proof_text(entry: AuditEntry) -> str:
    p = entry.proof
    if p.get("chain") == "event":
        return f"tx {str(p['txHash'])[:14]}… block {p['blockNumber']}"
    if p.get("status") == "anchored":
        return f"Merkle batch {str(p['batchRoot'])[:12]}… tx {str(p['txHash'])[:12]}…"
    return str(p.get("status", ""))


@app.callback(invoke_without_command=True)
@wallet_options
def audit(
    twin_id: int = TwinArgument,
    purpose: str | None = typer.Option(None, "--purpose", help="your AUDIT grant's purpose (not needed as owner)"),
    *,
    session: Session,
    json_out: bool = JsonOption,
) -> None:
    """Everything that happened to TWIN_ID: ownership, devices, grants, revocations, snapshots, reads."""
    with session.connect() as tl:
        entries = tl.audit(twin_id, purpose=purpose)
    if json_out:
        print_json([e.as_dict() for e in entries])
        return
    table = Table(title=f"audit trail of twin {twin_id}", title_justify="left")
    for column in ("time (UTC)", "what", "", "proof"):
        table.add_column(column)
    for entry in entries:
        when = datetime.fromtimestamp(entry.time, UTC).strftime("%Y-%m-%d %H:%M:%S")
        table.add_row(when, entry.kind, describe(entry), proof_text(entry))
    console.print(table)
