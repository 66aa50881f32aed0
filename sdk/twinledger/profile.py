"""The profile: which node and which chain the CLI talks to, kept in `$TWINLEDGER_HOME/profile.json`.

It holds what the user set (`twinledger config set`: node URL, RPC URL) and what the node said of itself the last
time a command reached it (`/v1/node`: chain id, contract addresses, deployment block, the RPC URL it publishes).
The second part is what lets an owner revoke consent, list grants or transfer a twin with the node stopped: the
chain is enough once the contracts are known. Learned facts are only a cache: every command checks the chain it
reaches against them (chain id, code at the TwinLedger address) and a reachable node's own answer replaces them.

Precedence for each value: the command's option (or its environment variable), then the profile, then the node's
own answer (for the RPC URL), then the built-in default (the node URL only: no command guesses an RPC URL).
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from twinledger import config
from twinledger.errors import InvalidInput

if TYPE_CHECKING:
    from twinledger.chain.client import ChainClient

DEFAULT_NODE = "http://127.0.0.1:8700"
PROFILE_FILE = "profile.json"


@dataclass(frozen=True)
class ChainFacts:
    """What a node says of its chain (`/v1/node`), enough to act on the chain without it."""

    chain_id: int
    twin_ledger: str
    federated_ledger: str | None = None
    deploy_block: int = 0
    rpc_url: str | None = None  # the RPC URL the node publishes for clients, if any


@dataclass(frozen=True)
class Profile:
    node_url: str | None = None
    rpc_url: str | None = None
    learned: dict[str, ChainFacts] = field(default_factory=dict)  # node URL -> what it said last

    def facts(self, node_url: str) -> ChainFacts | None:
        return self.learned.get(node_url.rstrip("/"))

    def as_json(self) -> dict[str, Any]:
        return {
            "nodeUrl": self.node_url,
            "rpcUrl": self.rpc_url,
            "learned": {url: asdict(facts) for url, facts in self.learned.items()},
        }


def path() -> Path:
    return config.home() / PROFILE_FILE


def load() -> Profile:
    """The profile (empty when there is none); a damaged file is named with the way out."""
    file = path()
    try:
        data = json.loads(file.read_text())
        return Profile(
            data.get("nodeUrl"),
            data.get("rpcUrl"),
            {url: ChainFacts(**facts) for url, facts in (data.get("learned") or {}).items()},
        )
    except FileNotFoundError:
        return Profile()
    except (OSError, UnicodeDecodeError, ValueError, TypeError, AttributeError) as error:
        raise InvalidInput(
            f"the profile {file} is damaged ({error.__class__.__name__})",
            hint=f"delete it (`rm {file}`) and set it again with `twinledger config set`",
        ) from None


def save(profile: Profile) -> None:
    """Write the profile atomically (a reader never sees half a file; two writers: the last one wins)."""
    file = path()
    file.parent.mkdir(parents=True, exist_ok=True)
    tmp = file.with_name(f".{file.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(profile.as_json(), indent=2) + "\n")
    tmp.replace(file)


def remember(node_url: str, facts: ChainFacts) -> None:
    """Keep what a node said of itself, writing only when it changed (commands run often; the file rarely moves)."""
    profile = load()
    url = node_url.rstrip("/")
    if profile.learned.get(url) != facts:
        save(replace(profile, learned={**profile.learned, url: facts}))


@dataclass(frozen=True)
class Endpoints:
    """Which node and chain a command uses, and where each came from (shown by `twinledger config show`)."""

    node_url: str
    node_from: str
    rpc_url: str | None  # None: the one the node publishes (asked when the chain is first needed)
    rpc_from: str
    known: ChainFacts | None  # what the node said last time, to work with the chain alone while it is down


def checked_url(url: str, what: str) -> str:
    """`url` when it is an http(s) URL with a host; a typo ("localhost:8700", "htp://…") said so at once."""
    from urllib.parse import urlsplit

    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - parsing the port is the check
    except ValueError as error:
        raise InvalidInput(f"the {what} URL {url!r} is malformed: {error}", hint="e.g. http://127.0.0.1:8700") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise InvalidInput(
            f"the {what} URL {url!r} is not an http(s) URL with a host", hint="e.g. http://127.0.0.1:8700"
        )
    return url


def endpoints(node_url: str | None = None, rpc_url: str | None = None) -> Endpoints:
    """Resolve the node and RPC URLs from a command's options (None: not given), the profile and the defaults."""
    profile = load()
    if node_url:
        node, node_from = checked_url(node_url, "node").rstrip("/"), "--node / TWINLEDGER_NODE_URL"
    elif profile.node_url:
        node, node_from = profile.node_url.rstrip("/"), f"the profile ({path()})"
    else:
        node, node_from = DEFAULT_NODE, "the default"
    known = profile.facts(node)
    if rpc_url:
        return Endpoints(node, node_from, checked_url(rpc_url, "RPC"), "--rpc-url / TWINLEDGER_RPC_URL", known)
    if profile.rpc_url:
        return Endpoints(node, node_from, profile.rpc_url, f"the profile ({path()})", known)
    return Endpoints(node, node_from, None, f"the node {node} (/v1/node rpcUrl)", known)


def chain_url(node_url: str | None = None, rpc_url: str | None = None) -> str:
    """An RPC URL for a command that uses the chain without the node: the option, the profile, what the node
    published when last seen, else the local chain that `twinledger chain up` runs for this data directory."""
    where = endpoints(node_url, rpc_url)
    if where.rpc_url:
        return where.rpc_url
    if where.known is not None and where.known.rpc_url:
        return where.known.rpc_url
    from twinledger.chain.localchain import LocalChain

    status = LocalChain(config.data_dir() / "chain").status()
    if status.running and status.rpc_url:
        return status.rpc_url
    raise InvalidInput(
        "no chain to use: no --rpc-url, none in the profile, no node seen that publishes one, no local chain running",
        hint="pass --rpc-url URL, or `twinledger config set --node URL` (the node says its chain), or start a "
        "local chain with `twinledger chain up`",
    )


def check_chain(chain: ChainClient, facts: ChainFacts, whose: str) -> None:
    """Refuse an RPC that is not the chain `facts` describe, naming both: another chain id, or the same id without
    the TwinLedger code (a second local anvil answering on that URL: every read would quietly say "no twins")."""
    from web3 import Web3

    if chain.chain_id != facts.chain_id:
        raise InvalidInput(
            f"the RPC {chain.rpc_url} is chain {chain.chain_id}, {whose} serves chain {facts.chain_id}",
            hint="point both at the same chain (`twinledger config show` says where each comes from)",
        )
    if not chain.w3.eth.get_code(Web3.to_checksum_address(facts.twin_ledger)):
        raise InvalidInput(
            f"the RPC {chain.rpc_url} (chain {chain.chain_id}) has no contract at {facts.twin_ledger}, the "
            f"TwinLedger of {whose}: it is another chain with the same id",
            hint="pass the node's chain as --rpc-url (TWINLEDGER_RPC_URL); a second local anvil may hold this port",
        )
