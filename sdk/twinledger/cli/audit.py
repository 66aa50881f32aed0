"""`twinledger audit TWIN`: a readable timeline of everything that happened to a twin, with its proofs."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import typer
from rich.table import Table

from twinledger.cli.output import JsonOption, TwinArgument, console, print_json
from twinledger.cli.wallet import Session, wallet_options
from twinledger.errors import TwinledgerError

if TYPE_CHECKING:
    from twinledger.client import AuditEntry

app = typer.Typer(help="A twin's audit trail as a timeline.", context_settings={"allow_interspersed_args": True})


OWNER_PURPOSE = "0x" + "00" * 32  # what an owner's read records: the owner needs no purpose
PROBLEM_TYPE_BASE = "urn:twinledger:problem:"  # a refusal's reason is its problem type; shown without this prefix


def local_time(seconds: int, timespec: str = "seconds") -> str:
    """ISO 8601 in the reader's own time zone, its offset shown."""
    return datetime.fromtimestamp(seconds, UTC).astimezone().isoformat(sep=" ", timespec=timespec)


def denial_text(d: dict[str, Any]) -> str:
    """A refused read: on its own (who, for what, why), or a count of one DID's, or of many DIDs past the twin's
    cap, in one minute (the node counts rather than records each past its bounds)."""
    from twinledger.chain.types import purpose_text

    purposes = ", ".join("no purpose" if str(p).lower() == OWNER_PURPOSE else purpose_text(p) for p in d["purposes"])
    reasons = {str(r).removeprefix(PROBLEM_TYPE_BASE): n for r, n in d["reasons"].items()}
    if d.get("window") is None:
        return f"refused read by {d['requester']} for {purposes}: {', '.join(reasons)}"
    why = ", ".join(f"{reason} ×{n}" for reason, n in reasons.items())
    who = d["requester"] or "DIDs past the twin's cap"
    minute = local_time(int(d["window"]["start"]), "minutes")
    return f"{d['count']} more refused reads by {who} in the minute from {minute} for {purposes}: {why}"


def known_dids(entries: list[AuditEntry]) -> dict[str, str]:
    """DID hash → DID for every DID the trail names in full (its grants), so that a revocation, which the chain
    records by hash only, can name whom it ended."""
    from twinledger.identity import did_hash

    found: dict[str, str] = {}
    for entry in entries:
        did = entry.data.get("did") if entry.kind == "grant" else None
        if isinstance(did, str):
            try:
                found["0x" + did_hash(did).hex()] = did
            except TwinledgerError:  # a DID this SDK cannot canonicalise: shown by hash, as the chain has it
                continue
    return found


def describe(entry: AuditEntry, dids: dict[str, str] | None = None) -> str:
    """One line a person can read, for each kind of entry (`dids`: from `known_dids`)."""
    from twinledger.chain.types import Scope, TwinKind, purpose_text

    d = entry.data
    match entry.kind:
        case "registered":
            return f"registered as {TwinKind(int(d.get('kind', 0))).name.lower()} by {d.get('owner')}"
        case "ownership":
            if int(str(d.get("from") or "0x0"), 16) == 0:  # ERC-721's mint: the twin's first owner
                return f"first owner {d.get('to')}"
            return f"owner {d.get('from')} → {d.get('to')}"
        case "device":
            return f"device bound: {d.get('deviceDid') or '(none)'}"
        case "grant":
            return (
                f"grant to {d.get('did')} for {purpose_text(d.get('purpose'))}: "
                f"{','.join(Scope(int(d.get('scopes', 0))).names())} until "
                f"{datetime.fromtimestamp(int(d.get('expiry', 0)), UTC):%Y-%m-%d}"
            )
        case "revocation":
            hashed = str(d.get("didHash", ""))
            whom = (dids or {}).get(hashed.lower()) or f"DID hash {hashed:.18}…"
            return f"revoked grant of {whom} for {purpose_text(d.get('purpose'))}"
        case "snapshot":
            size = f" ({d['size']} bytes)" if "size" in d else ""  # not shown to an AUDIT-only grantee
            return f"snapshot #{d['seq']}{size} by {d['producer']}"
        case "read":
            target = str(((d.get("receipt") or {}).get("request") or {}).get("target", ""))
            if target.split("?")[0].endswith("/export.car"):  # the owner's export: one receipt names the head
                return f"export of snapshots #1-#{d['seq']} by the owner ({d['reader']})"
            if str(d["purpose"]).lower() == OWNER_PURPOSE:
                return f"read of snapshot #{d['seq']} by the owner ({d['reader']})"
            return f"read of snapshot #{d['seq']} by {d['reader']} for {purpose_text(d['purpose'])}"
        case "denial":
            return denial_text(d)
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
    """Everything that happened to TWIN_ID: ownership, devices, grants, revocations, snapshots, reads, and the reads
    the node refused (who tried, for what, why)."""
    with session.connect() as tl:
        entries = tl.audit(twin_id, purpose=purpose)
    if json_out:
        print_json([e.as_dict() for e in entries])
        return
    table = Table(title=f"audit trail of twin {twin_id}", title_justify="left")
    for column in ("time", "what", "", "proof"):
        table.add_column(column)
    dids = known_dids(entries)
    for entry in entries:
        table.add_row(local_time(entry.time), entry.kind, describe(entry, dids), proof_text(entry))
    console.print(table)
