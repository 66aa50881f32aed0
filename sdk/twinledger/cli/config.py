"""`twinledger config show|set|unset`: which node and chain every command uses (the profile)."""

from __future__ import annotations

import dataclasses

import typer

from twinledger.cli.output import JsonOption, console, print_json, print_mapping
from twinledger.errors import InvalidInput

app = typer.Typer(
    help="Which node and chain commands use: the profile in $TWINLEDGER_HOME (show, set, unset).",
    no_args_is_help=True,
)
KEYS = ("node", "rpc-url")


@app.command()
def show(json_out: bool = JsonOption) -> None:
    """What commands use now, where each value comes from, and what the node said of its chain when last seen."""
    from twinledger import profile

    where = profile.endpoints()
    known = where.known
    rpc = where.rpc_url or (known.rpc_url if known else None)
    report = {
        "profile": str(profile.path()),
        "node": where.node_url, "nodeFrom": where.node_from,
        "rpcUrl": rpc, "rpcFrom": where.rpc_from if where.rpc_url or rpc is None else "the node, when last seen",
        "chainId": known.chain_id if known else None,
        "twinLedger": known.twin_ledger if known else None,
        "federatedLedger": known.federated_ledger if known else None,
    }  # fmt: skip
    if json_out:
        print_json(report)
        return
    print_mapping("twinledger profile", {k: "-" if v is None else v for k, v in report.items()})
    if known is None:
        console.print(
            f"the node at {where.node_url} has not been seen yet: `twinledger config set --node URL` asks it",
            highlight=False,
        )


@app.command("set")
def set_(
    node: str | None = typer.Option(None, "--node", help="the node URL every command uses (asked who it is now)"),
    rpc_url: str | None = typer.Option(
        None, "--rpc-url", help="the chain JSON-RPC URL every command uses (checked to be the node's chain)"
    ),
    json_out: bool = JsonOption,
) -> None:
    """Set the node and/or RPC URL. The node is asked for its chain and contracts, and the RPC must be that chain
    with those contracts: a mismatch is refused with both values named, and nothing is written."""
    from twinledger import profile
    from twinledger.chain.client import ChainClient
    from twinledger.client import Client

    if node is None and rpc_url is None:
        raise InvalidInput("nothing to set", hint="pass --node URL and/or --rpc-url URL")
    current = profile.load()
    where = profile.endpoints(node, rpc_url)  # both URLs checked for form before anything is asked
    node_url = where.node_url
    facts = where.known
    if node is not None:
        with Client(node_url) as tl:
            facts = tl.node.facts
    if rpc_url is not None:
        chain = ChainClient(rpc_url)
        if facts is not None:
            profile.check_chain(chain, facts, f"the node {node_url}")
    updated = dataclasses.replace(
        current,
        node_url=node_url if node is not None else current.node_url,
        rpc_url=rpc_url if rpc_url is not None else current.rpc_url,
        learned={**current.learned, node_url: facts} if facts is not None else current.learned,
    )
    profile.save(updated)
    if json_out:
        print_json(updated.as_json())
        return
    for key, value in (("node", node), ("rpc-url", rpc_url)):
        if value is not None:
            console.print(f"{key} = {value}", highlight=False)
    if facts is not None:
        console.print(f"chain {facts.chain_id}, TwinLedger {facts.twin_ledger}", highlight=False)


@app.command()
def unset(
    key: str = typer.Argument(..., help="node or rpc-url"),
    json_out: bool = JsonOption,
) -> None:
    """Forget the node or RPC URL set with `config set` (commands then use their defaults)."""
    from twinledger import profile

    if key not in KEYS:
        raise InvalidInput(f"no profile key {key!r}", hint="use node or rpc-url")
    current = profile.load()
    updated = (
        dataclasses.replace(current, node_url=None) if key == "node" else dataclasses.replace(current, rpc_url=None)
    )
    profile.save(updated)
    if json_out:
        print_json(updated.as_json())
    else:
        console.print(f"{key} unset", highlight=False)
