"""`twinledger wallet create|import|list|show|export-did|passwd|register-recovery-key`, and the options every
command that uses a wallet or the node shares."""

from __future__ import annotations

import functools
import inspect
import json
import os
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer

from twinledger.cli.output import JsonOption, console, print_json, print_mapping, print_rows
from twinledger.errors import AuthError, InvalidInput, TwinledgerError
from twinledger.wallet import PASSPHRASE_ENV, Wallet, WalletStore, read_passphrase_file

if TYPE_CHECKING:
    from twinledger.client import Client

app = typer.Typer(
    help="Your keys: an Ethereum account (keystore v3) and a did:key, under $TWINLEDGER_HOME.", no_args_is_help=True
)

NameOption = typer.Option("default", "--name", "-n", envvar="TWINLEDGER_WALLET", help="which wallet")
PassFileOption = typer.Option(None, "--passphrase-file", help="read the passphrase from this file (mode 0600)")
NodeOption = typer.Option(
    None, "--node", envvar="TWINLEDGER_NODE_URL",
    help="node URL (default: the profile's, `twinledger config`, else http://127.0.0.1:8700)",
)  # fmt: skip
RpcOption = typer.Option(
    None, "--rpc-url", envvar="TWINLEDGER_RPC_URL",
    help="chain JSON-RPC URL (default: the profile's, else the one the node publishes)",
)  # fmt: skip


def passphrase(passphrase_file: Path | None, *, confirm: bool = False, prompt: str = "wallet passphrase") -> str:
    """--passphrase-file, else $TWINLEDGER_PASSPHRASE, else a hidden prompt (never echoed, never logged)."""
    if passphrase_file is not None:
        return read_passphrase_file(passphrase_file)
    from_env = os.environ.get(PASSPHRASE_ENV)
    if from_env is not None:
        return from_env
    return str(typer.prompt(prompt, hide_input=True, confirmation_prompt=confirm))


def unlock(name: str, passphrase_file: Path | None) -> Wallet:
    store = WalletStore()
    store.info(name)  # a missing wallet is reported before asking for a passphrase
    return store.unlock(name, passphrase(passphrase_file))


@contextmanager
def connect(node: str | None, rpc_url: str | None, name: str | None, passphrase_file: Path | None) -> Iterator[Client]:
    """A Client for the command: the node and chain the options or the profile name, and (when `name`) the
    unlocked wallet. What the node says of itself is kept in the profile, so the next command can act on the chain
    alone if the node is down then."""
    from twinledger import profile
    from twinledger.client import Client

    where = profile.endpoints(node, rpc_url)
    wallet = unlock(name, passphrase_file) if name else None
    client = Client(where.node_url, where.rpc_url, wallet, known=where.known)
    try:
        yield client
    finally:
        client.close()
        if client.via()["node"] is not None:
            profile.remember(where.node_url, client.node.facts)


def say_via(client: Client) -> None:
    """One dim line on which node and chain a command used (for the commands that can do without the node)."""
    via = client.via()
    parts = [f"chain {via['chain']}"] if via["chain"] else []
    parts.append(f"node {via['node']}" if via["node"] else f"node {client.node_url} not reachable: not used")
    console.print(f"[dim]via {'; '.join(parts)}[/]", highlight=False)


@dataclass(frozen=True)
class Session:
    """The options every command that acts as your wallet takes: --name, --passphrase-file, --node, --rpc-url."""

    name: str
    passphrase_file: Path | None
    node: str | None
    rpc_url: str | None

    def connect(self, *, wallet: bool = True) -> AbstractContextManager[Client]:
        """A Client on the node and chain; the wallet is unlocked (passphrase asked) only now, and only if `wallet`."""
        return connect(self.node, self.rpc_url, self.name if wallet else None, self.passphrase_file)


_SESSION_OPTIONS = (
    ("name", str, NameOption),
    ("passphrase_file", Path | None, PassFileOption),
    ("node", str | None, NodeOption),
    ("rpc_url", str | None, RpcOption),
)


def wallet_options(command: Callable[..., None]) -> Callable[..., None]:
    """Give a command declaring `session: Session` the four shared options instead, in front of its --json.

    Typer reads a command's options from its signature and has no option groups, so this rewrites the signature
    that typer sees; the command keeps its own arguments and options as they are.
    """
    signature = inspect.signature(command, eval_str=True)
    own = [p for p in signature.parameters.values() if p.name != "session"]
    shared = [
        inspect.Parameter(name, inspect.Parameter.POSITIONAL_OR_KEYWORD, default=default, annotation=annotation)
        for name, annotation, default in _SESSION_OPTIONS
    ]
    at = next((i for i, p in enumerate(own) if p.name == "json_out"), len(own))

    @functools.wraps(command)
    def run(**kwargs: Any) -> None:
        session = Session(**{name: kwargs.pop(name) for name, _, _ in _SESSION_OPTIONS})
        command(session=session, **kwargs)

    run.__signature__ = signature.replace(parameters=[*own[:at], *shared, *own[at:]])  # type: ignore[attr-defined]
    return run


def _reveal(what: str, yes: bool) -> None:
    """Printing a secret needs its explicit flag and a confirmation (prompt, or --yes-i-understand)."""
    if not yes and not typer.confirm(
        f"print the {what} to the terminal? Anyone who sees it controls the wallet", default=False
    ):
        raise typer.Exit(1)


def _register_recovery(wallet: Wallet, node: str | None) -> str:
    try:
        with connect(node, None, None, None) as client:
            client.wallet = wallet
            client.ensure_recovery_key()
            return f"recovery key registered with the node at {client.node_url}"
    except TwinledgerError as error:
        return f"recovery key not registered ({error.message}); `twinledger twin register` will do it"


@app.command()
def create(
    name: str = NameOption,
    passphrase_file: Path | None = PassFileOption,
    node: str | None = NodeOption,
    offline: bool = typer.Option(False, "--offline", help="do not register the did:key with the node"),
    json_out: bool = JsonOption,
) -> None:
    """Create a wallet: a new Ethereum key and a new did:key, encrypted with your passphrase (scrypt), files 0600.
    The did:key is registered with the node as your recovery key: your twins' snapshots are sealed to it."""
    if not offline:
        from twinledger.profile import endpoints

        endpoints(node)  # a malformed node URL is refused before the wallet is made
    secret = passphrase(passphrase_file, confirm=True, prompt="new wallet passphrase")
    store = WalletStore()
    info = store.create(name, secret)
    status = "offline" if offline else _register_recovery(store.unlock(name, secret), node)
    if json_out:
        print_json({**info.as_dict(), "recoveryKey": status})
        return
    console.print(f"created wallet [bold]{name}[/] in {info.path}")
    print_mapping("wallet", {"address": info.address, "did:key": info.did})
    console.print(status)


@app.command("import")
def import_(
    name: str = NameOption,
    passphrase_file: Path | None = PassFileOption,
    keystore: Path | None = typer.Option(None, "--keystore", help="an existing keystore v3 file"),
    private_key_file: Path | None = typer.Option(None, "--private-key-file", help="a file holding a hex private key"),
    did_jwk_file: Path | None = typer.Option(None, "--did-jwk-file", help="an Ed25519 private JWK (else a new one)"),
    json_out: bool = JsonOption,
) -> None:
    """Import an Ethereum key (keystore v3 or hex key file) as a wallet; a did:key is created unless given."""
    from eth_account import Account

    from twinledger.identity.keyfile import read_key_file
    from twinledger.wallet.store import read_keystore

    if (keystore is None) == (private_key_file is None):
        raise InvalidInput("give exactly one of --keystore or --private-key-file")
    if keystore is not None:
        keystore_json = read_keystore(keystore)  # damaged or not a keystore: said before a passphrase is asked
        old = passphrase(None, prompt=f"passphrase of {keystore}")
        try:
            key = bytes(Account.decrypt(keystore_json, old))
        except ValueError:
            raise AuthError(f"wrong passphrase for keystore {keystore}") from None
    else:
        assert private_key_file is not None
        try:
            key = bytes(Account.from_key(read_passphrase_file(private_key_file).strip()).key)
        except ValueError:
            raise InvalidInput(f"{private_key_file} does not hold a private key", hint="32 bytes as hex") from None
    did_key = read_key_file(did_jwk_file) if did_jwk_file else None
    info = WalletStore().create(
        name,
        passphrase(passphrase_file, confirm=True, prompt="new wallet passphrase"),
        private_key=key,
        did_key=did_key,
    )
    if json_out:
        print_json(info.as_dict())
    else:
        console.print(f"imported wallet [bold]{name}[/]: {info.address}, {info.did}")


@app.command("list")
def list_(json_out: bool = JsonOption) -> None:
    """The wallets under $TWINLEDGER_HOME."""
    wallets, damaged = WalletStore().survey()
    if json_out:
        print_json([w.as_dict() for w in wallets])
    else:
        print_rows("wallets", ["name", "address", "did:key"], [(w.name, w.address, w.did) for w in wallets])
    for error in damaged:
        typer.echo(f"warning: {error.message} ({error.hint})", err=True)


@app.command()
def show(
    name: str = NameOption,
    passphrase_file: Path | None = PassFileOption,
    chain_id: int = typer.Option(31337, "--chain-id", min=1, help="chain of the did:pkh shown"),
    private_key: bool = typer.Option(False, "--private-key", help="also print the Ethereum private key"),
    yes: bool = typer.Option(False, "--yes-i-understand", help="confirm printing a private key without a prompt"),
    json_out: bool = JsonOption,
) -> None:
    """Address and DIDs of a wallet (public). The private key only with --private-key and a confirmation."""
    info = WalletStore().info(name)
    data: dict[str, object] = {
        "name": info.name,
        "address": info.address,
        "did": info.did,
        "pkh": info.pkh(chain_id),
        "path": str(info.path),
    }
    if private_key:
        _reveal("Ethereum private key", yes)
        data["privateKey"] = "0x" + bytes(unlock(name, passphrase_file).account.key).hex()
    if json_out:
        print_json(data)
    else:
        print_mapping(f"wallet {name}", data)


@app.command("export-did")
def export_did(
    name: str = NameOption,
    passphrase_file: Path | None = PassFileOption,
    private: bool = typer.Option(False, "--private", help="export the did:key's private JWK"),
    yes: bool = typer.Option(False, "--yes-i-understand", help="confirm exporting a private key without a prompt"),
    json_out: bool = JsonOption,
) -> None:
    """Print the wallet's did:key (give it to twin owners); --private exports its private JWK after confirmation."""
    info = WalletStore().info(name)
    if not private:
        if json_out:
            print_json({"did": info.did})
        else:
            typer.echo(info.did)
        return
    _reveal("did:key private JWK", yes)
    jwk = unlock(name, passphrase_file).did_key.to_jwk()
    typer.echo(jwk if not json_out else json.dumps({"did": info.did, "jwk": json.loads(jwk)}))


@app.command()
def passwd(
    name: str = NameOption,
    passphrase_file: Path | None = PassFileOption,
    new_passphrase_file: Path | None = typer.Option(None, "--new-passphrase-file", help="the new passphrase"),
    json_out: bool = JsonOption,
) -> None:
    """Change a wallet's passphrase (both keys re-encrypted; each file replaced atomically)."""
    store = WalletStore()
    store.info(name)  # a missing or damaged wallet is reported before any passphrase is asked
    old = passphrase(passphrase_file, prompt="current passphrase")
    store.unlock(name, old)  # and a wrong current passphrase before the new one is
    if new_passphrase_file is not None:
        new = read_passphrase_file(new_passphrase_file)
    else:
        new = str(typer.prompt("new passphrase", hide_input=True, confirmation_prompt=True))
    info = store.change_passphrase(name, old, new)
    if json_out:
        print_json({"name": info.name, "changed": True})
    else:
        console.print(f"passphrase of wallet [bold]{name}[/] changed")


@app.command("register-recovery-key")
def register_recovery_key(
    name: str = NameOption,
    passphrase_file: Path | None = PassFileOption,
    node: str | None = NodeOption,
    json_out: bool = JsonOption,
) -> None:
    """Tell the node to seal your twins' snapshots to this wallet's did:key (signed by both of your keys)."""
    with connect(node, None, name, passphrase_file) as client:
        did = client.ensure_recovery_key()
        owner = client.wallet.address if client.wallet else ""
    if json_out:
        print_json({"owner": owner, "did": did})
    else:
        console.print(f"the node at {client.node_url} seals snapshots of {owner}'s twins to {did}")
