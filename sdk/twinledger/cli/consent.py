"""`twinledger consent grant|revoke|list|check|receipt [verify]`."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer
from typer.core import TyperGroup

from twinledger.cli.output import JsonOption, TwinArgument, console, print_json, print_rows
from twinledger.cli.wallet import NodeOption, RpcOption, Session, connect, say_via, wallet_options

if TYPE_CHECKING:
    from twinledger.client import Client

app = typer.Typer(help="Give, end and inspect consent for a twin's data.", no_args_is_help=True)
PurposeOption = typer.Option(..., "--purpose", help="research, maintenance, ... or a DPV IRI")
RelayOption = typer.Option(False, "--relay", help="sign (EIP-712) and let the node's relayer pay the gas")


def _when(ts: int) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%d %H:%M UTC")


@app.command()
@wallet_options
def grant(
    twin_id: int = TwinArgument,
    did: str = typer.Argument(..., help="the grantee's DID"),
    scope: str = typer.Option("read", "--scope", help="read,write,train,audit[,inherit]"),
    purpose: str = PurposeOption,
    expires: str = typer.Option("30d", "--expires", help="30d, 12h, 90m, an ISO date, or unix seconds"),
    relay: bool = RelayOption,
    *,
    session: Session,
    json_out: bool = JsonOption,
) -> None:
    """Consent for DID to use twin TWIN_ID for a purpose, with scopes, until an expiry."""
    from twinledger.client import parse_expiry

    expiry = parse_expiry(expires)
    with session.connect() as tl:
        result = tl.grant(twin_id, did, purpose=purpose, scopes=scope, expiry=expiry, relay=relay)
        used = tl.via()
    if json_out:
        print_json({**result.as_dict(), "via": used})
    else:
        relayed = " (relayed by the node)" if relay else ""
        console.print(
            f"granted {','.join(result.scopes)} on twin {twin_id} to {result.did} for {purpose} until "
            f"{_when(result.expiry)} in {result.tx_hash}{relayed}",
            highlight=False,
        )
        _say_applied(tl, result.indexed, result.block_number)


@app.command()
@wallet_options
def revoke(
    twin_id: int = TwinArgument,
    did: str = typer.Argument(...),
    purpose: str = PurposeOption,
    relay: bool = RelayOption,
    *,
    session: Session,
    json_out: bool = JsonOption,
) -> None:
    """End a grant."""
    with session.connect() as tl:
        result = tl.revoke(twin_id, did, purpose=purpose, relay=relay)
        used = tl.via()
    if json_out:
        print_json({**result.as_dict(), "via": used})
    else:
        console.print(
            f"revoked {result.did}'s grant for {purpose} on twin {twin_id} in {result.tx_hash}", highlight=False
        )
        _say_applied(tl, result.indexed, result.block_number)


@app.command("list")
def list_(
    twin_id: int = TwinArgument, node: str | None = NodeOption, rpc_url: str | None = RpcOption,
    json_out: bool = JsonOption,
) -> None:  # fmt: skip
    """Every grant recorded for a twin, live or not: from the node's index, or from the chain while the node is
    down."""
    from twinledger.chain.types import purpose_text

    with connect(node, rpc_url, None, None) as tl:
        grants = tl.grants(twin_id)
    if json_out:
        print_json([g.as_dict() for g in grants])
        return
    now = int(time.time())
    rows = [
        (
            g.did,
            purpose_text(g.purpose),
            ",".join(g.scopes),
            _when(g.expiry),
            "live" if g.live else ("revoked" if g.revoked_tx else ("expired" if g.expiry <= now else "ended")),
        )
        for g in grants
    ]
    print_rows(f"grants of twin {twin_id}", ["did", "purpose", "scopes", "expires", "status"], rows)
    say_via(tl)


def _say_applied(tl: Client, indexed: bool, block: int) -> None:
    if indexed:
        console.print(f"the node at {tl.node_url} applies it from now on", highlight=False)
    else:
        console.print(
            f"on chain in block {block}; the node at {tl.node_url} could not be reached: it applies this once it "
            "indexes that block (nodes refuse reads while their index is behind the chain)",
            highlight=False,
        )


@app.command()
def check(
    twin_id: int = TwinArgument,
    did: str = typer.Argument(...),
    purpose: str = PurposeOption,
    scope: str = typer.Option("read", "--scope", help="the rights to check: read,write,train,audit"),
    node: str | None = NodeOption,
    rpc_url: str | None = RpcOption,
    json_out: bool = JsonOption,
) -> None:
    """Whether the chain authorizes DID for SCOPE and PURPOSE now. Exit code 0 yes, 1 no."""
    with connect(node, rpc_url, None, None) as tl:
        allowed = tl.check(twin_id, did, purpose=purpose, scope=scope)
        used = tl.via()
    if json_out:
        print_json(
            {"twinId": twin_id, "did": did, "purpose": purpose, "scope": scope, "authorized": allowed, "via": used}
        )
    elif allowed:
        console.print(f"[green]authorized[/]: {did} may {scope} twin {twin_id} for {purpose}", highlight=False)
    else:
        console.print(
            f"[red]not authorized[/]: {did} may not {scope} twin {twin_id} for {purpose}; the owner can "
            f"run `twinledger consent grant {twin_id} {did} --scope {scope} --purpose {purpose}`",
            highlight=False,
        )
    if not json_out:
        say_via(tl)
    if not allowed:
        raise typer.Exit(1)


class _IssueByDefault(TyperGroup):
    """`consent receipt TWIN DID ...` issues (as it always has); `consent receipt verify FILE` verifies."""

    def parse_args(self, ctx: Any, args: list[str]) -> list[str]:
        if args and args[0] not in self.commands and not args[0].startswith("-"):
            args = ["issue", *args]
        return super().parse_args(ctx, args)


receipts = typer.Typer(
    cls=_IssueByDefault, no_args_is_help=True,
    help="Consent receipts: W3C credentials the twin's owner issues for a grant in force (issue, verify).",
)  # fmt: skip
app.add_typer(receipts, name="receipt")


@receipts.command("issue")
@wallet_options
def receipt(
    twin_id: int = TwinArgument,
    did: str = typer.Argument(..., help="the grantee's DID"),
    purpose: str = PurposeOption,
    tx: str = typer.Option(..., "--tx", help="the grant's transaction hash"),
    out: Path | None = typer.Option(None, "-o", "--out", help="write the credential here"),
    *,
    session: Session,
    json_out: bool = JsonOption,
) -> None:
    """As the twin's owner, issue a W3C verifiable credential (ConsentReceipt) for the grant that transaction TX
    made, once the chain shows TX is that grant and it is in force. Signed by your did:key, vouched for by your
    Ethereum key."""
    with session.connect() as tl:
        credential = tl.issue_consent_receipt(twin_id, did, purpose=purpose, tx_hash=tx)
    if out:
        out.write_text(json.dumps(credential, indent=2))
    if json_out or not out:
        print_json(credential)
    else:
        console.print(f"consent receipt for {did} written to {out}", highlight=False)


@receipts.command("verify")
def verify_receipt(
    file: Path = typer.Argument(..., help="a consent receipt (JSON)"),
    rpc_url: str | None = RpcOption,
    json_out: bool = JsonOption,
) -> None:
    """Check a consent receipt against the chain alone: its proof, that its issuer is the twin's owner, that its
    transaction is the grant's event, and that the grant is in force with the scopes and expiry it states.
    Exit code 0 when it holds."""
    from eth_utils import is_address

    from twinledger.chain.client import ChainClient
    from twinledger.chain.ledger import TwinLedger
    from twinledger.errors import NotFound
    from twinledger.identity.credentials import scope_words
    from twinledger.identity.errors import InvalidCredential
    from twinledger.verify.consent import verify_receipt_on_chain

    try:
        credential = json.loads(file.read_text())
    except FileNotFoundError:
        raise NotFound(f"no receipt file {file}", hint="check the path") from None
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise InvalidCredential(f"{file} is not a JSON consent receipt") from None
    subject = credential.get("credentialSubject") if isinstance(credential, dict) else None
    registry = subject.get("registry") if isinstance(subject, dict) else None
    if not isinstance(registry, str) or not is_address(registry):
        raise InvalidCredential(f"{file} names no registry address in its credentialSubject")
    from twinledger.profile import chain_url

    ledger = TwinLedger(ChainClient(chain_url(None, rpc_url)), registry)
    receipt, on_chain = verify_receipt_on_chain(ledger, credential)
    grant = receipt.grant
    words = scope_words(grant.scopes)
    report = {
        "verified": True, "twinId": grant.twin_id, "did": grant.grantee_did, "purpose": grant.purpose,
        "scopes": words, "expiry": grant.expires_at, "txHash": on_chain.tx_hash,
        "blockNumber": on_chain.block_number, "issuer": receipt.issuer, "owner": on_chain.owner,
        "chainId": grant.chain_id, "registry": grant.registry,
    }  # fmt: skip
    if json_out:
        print_json(report)
        return
    console.print(
        f"[green]verified[/]: {receipt.issuer} (owner {on_chain.owner}) attests that twin {grant.twin_id} grants "
        f"{','.join(words)} to {grant.grantee_did} for {grant.purpose} until "
        f"{_when(int(grant.expires_at or 0))}, by transaction {on_chain.tx_hash} in block {on_chain.block_number}; "
        "in force now",
        highlight=False,
    )
