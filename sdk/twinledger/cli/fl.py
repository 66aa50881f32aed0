"""`twinledger fl task create|submit|status|checkpoint|verify|history`: federated learning with the node as the
aggregator, and checks of its rounds against the chain and the block store."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import typer

from twinledger import config
from twinledger.cli.output import JsonOption, console, print_json, print_mapping, print_rows
from twinledger.cli.wallet import NodeOption, RpcOption, Session, wallet_options

if TYPE_CHECKING:
    from twinledger.chain.ledger import FederatedLedger, TwinLedger
    from twinledger.client.federated import RoundStatus, TrainConsent
    from twinledger.federated import Verifier

app = typer.Typer(
    help="Federated learning with provenance: open a task on the node, submit updates, checkpoint, verify rounds.",
    no_args_is_help=True,
)
task_app = typer.Typer(help="Federated tasks the node aggregates.", no_args_is_help=True)
app.add_typer(task_app, name="task")

TENSOR_FORMATS = ".npy (one array), .npz (several, in archive order) or a twinledger tensor file"
TaskArgument = typer.Argument(..., min=1, metavar="TASK", help="Task id")
RoundArgument = typer.Argument(..., min=1, metavar="ROUND", help="Round number")
DeploymentsOption = typer.Option(
    None,
    "--deployments-dir",
    envvar="TWINLEDGER_DEPLOYMENTS_DIR",
    help="directory of the contracts' <chainId>.json (a node writes it in its data directory's deployments/): used "
    "instead of asking a node, or when the node cannot be reached",
)
StoreOption = typer.Option(
    None, "--store", envvar="TWINLEDGER_IPFS_PATH", help="Block store directory (default: $TWINLEDGER_DATA_DIR/ipfs)"
)
CatalogOption = typer.Option(
    None, "--catalog", envvar="TWINLEDGER_FL_CATALOG", help="Federated catalog (default: $TWINLEDGER_DATA_DIR/fl)"
)
KeyOption = typer.Option(
    None, "--key", help="JWK file of the aggregator's did:key, to open updates that were encrypted to it"
)


# ---------------------------------------------------------------------- the node as aggregator


@task_app.command("create")
@wallet_options
def task_create(
    model: Path = typer.Option(..., "--model", help=f"the initial global model: {TENSOR_FORMATS}"),
    purpose: str = typer.Option(..., "--purpose", help="what the model is trained for: research, ... or a DPV IRI"),
    encrypt: bool = typer.Option(
        False, "--encrypt", help="participants encrypt their updates to the node's did:key (only the node reads them)"
    ),
    *,
    session: Session,
    json_out: bool = JsonOption,
) -> None:
    """Open a federated task the node aggregates, signed by your wallet's did:key (the node's operator lists the
    DIDs that may). Round 1 opens at once. Participants grant TRAIN for PURPOSE to the aggregator DID printed."""
    from twinledger.client.federated import FederatedTasks
    from twinledger.federated.files import read_tensor_file

    initial = read_tensor_file(model)  # a bad file is refused before the wallet is unlocked
    with session.connect() as tl:
        task = FederatedTasks(tl).create_task(initial, purpose=purpose, encrypt=encrypt)
    if json_out:
        print_json(task.as_dict())
        return
    print_mapping(
        f"task {task.task_id}",
        {
            "aggregator DID": task.aggregator_did,
            "purpose": purpose,
            "initial model": f"{task.initial_model_digest} ({task.initial_model_cid})",
            "updates encrypted": "yes" if task.encrypt_updates else "no",
            "opened by": task.created_by,
            "block": task.created_block,
        },
    )
    console.print(
        f"participants: `twinledger consent grant TWIN {task.aggregator_did} --scope train --purpose {purpose}`, "
        f"then `twinledger fl submit {task.task_id} 1 --twin TWIN --update FILE --samples N`",
        highlight=False,
    )


@app.command()
@wallet_options
def submit(
    task: int = TaskArgument,
    round_: int = RoundArgument,
    twin: int = typer.Option(..., "--twin", min=1, max=2**40 - 1, help="your twin whose data trained the update"),
    update: Path = typer.Option(..., "--update", help=f"the locally trained parameters: {TENSOR_FORMATS}"),
    samples: int = typer.Option(
        ..., "--samples", min=1, max=2**63 - 1, help="how many examples trained the update (its FedAvg weight)"
    ),
    *,
    session: Session,
    json_out: bool = JsonOption,
) -> None:
    """Submit your twin's update to ROUND of TASK: you sign the commit, the node checks round, TRAIN consent and
    shapes, pins the update and relays the commit (it pays the gas)."""
    from twinledger.client.federated import FederatedTasks
    from twinledger.federated.files import read_tensor_file

    data = read_tensor_file(update)
    with session.connect() as tl:
        sent = FederatedTasks(tl).submit_update(task, round_, twin_id=twin, update=data, num_samples=samples)
    if json_out:
        print_json(sent.as_dict())
    else:
        console.print(
            f"submitted twin {twin}'s update to task {task} round {round_}: digest {sent.digest}, {samples} samples, "
            f"record {sent.record_cid}, tx {sent.tx_hash}",
            highlight=False,
        )


def _consent_text(consent: TrainConsent) -> str:
    return "TRAIN in force" if consent.train else f"no TRAIN ({consent.outcome}: {consent.detail})"


def _print_status(status: RoundStatus) -> None:
    checkpoint = status.checkpoint
    print_mapping(
        f"task {status.task_id} round {status.round}",
        {
            "state": status.state + ("" if status.state == "open" else f" (open round: {status.open_round})"),
            "aggregator DID": status.aggregator_did,
            "checkpoint": "none yet"
            if checkpoint is None
            else f"{checkpoint['count']} updates, {checkpoint['totalSamples']} samples, model "
            f"{checkpoint['modelDigest']}, tx {checkpoint['tx']}",
        },
    )
    excluded = {int(e["twinId"]): str(e["reason"]) for e in status.excluded}
    rows: list[tuple[object, ...]] = [
        (u.twin_id, "yes", u.num_samples, u.digest, _consent_text(u.consent), excluded.get(u.twin_id, "-"))
        for u in status.updates
    ]
    rows += [(m.twin_id, "missing", "-", "-", _consent_text(m.consent), "-") for m in status.missing]
    print_rows("twins", ["twin", "submitted", "samples", "digest", "consent now", "excluded"], rows)


@app.command()
@wallet_options
def status(
    task: int = TaskArgument,
    round_: int | None = typer.Argument(None, min=1, metavar="[ROUND]", help="Round number (default: the open one)"),
    *,
    session: Session,
    json_out: bool = JsonOption,
) -> None:
    """Who submitted to ROUND of TASK, who it still waits for (twins with a TRAIN grant to the aggregator, or an
    earlier round's update), each twin's TRAIN consent now, and whether it is checkpointed. For the task's creator
    and its participants."""
    from twinledger.client.federated import FederatedTasks

    with session.connect() as tl:
        found = FederatedTasks(tl).round_status(task, round_)
    if json_out:
        print_json(found.as_dict())
    else:
        _print_status(found)


@app.command()
@wallet_options
def checkpoint(
    task: int = TaskArgument,
    round_: int = RoundArgument,
    *,
    session: Session,
    json_out: bool = JsonOption,
) -> None:
    """Have the node aggregate ROUND of TASK from the updates it holds (consent checked at the round's consent
    block, FedAvg), checkpoint it on chain and verify it; only the wallet that opened the task may."""
    from rich.console import Console

    from twinledger.client.federated import FederatedTasks

    with session.connect() as tl:
        progress = Console(stderr=True, emoji=False)
        with progress.status(f"the node aggregates task {task} round {round_} and checkpoints it…"):
            done = FederatedTasks(tl).checkpoint(task, round_)
    if json_out:
        print_json(done.as_dict())
        return
    print_mapping(
        f"task {task} round {round_} checkpointed",
        {
            "twins": ", ".join(map(str, done.included)),
            "excluded": "; ".join(f"{t}: {why}" for t, why in done.excluded.items()) or "-",
            "samples": done.total_samples,
            "model": f"{done.model_digest} ({done.model_cid})",
            "updates root": done.updates_root,
            "round record": done.record_cid,
            "tx": done.tx_hash,
            "verified by the node": "yes" if done.verified else "NO",
        },
    )


# ---------------------------------------------------------------------- verification


def _contracts(
    node: str | None, rpc_url: str | None, deployments_dir: Path | None
) -> tuple[TwinLedger, FederatedLedger]:
    """The contracts to verify against: the node's (`/v1/node`, or what it said when last seen: the profile), or
    the deployment file when only --deployments-dir is given or the node cannot be reached."""
    from twinledger.cli.wallet import connect
    from twinledger.client import NodeUnavailable
    from twinledger.client.federated import FederatedTasks

    if deployments_dir is None or node is not None:
        try:
            with connect(node, rpc_url, None, None) as tl:
                return tl.ledger, FederatedTasks(tl).federated
        except NodeUnavailable as error:
            if deployments_dir is None:
                raise NodeUnavailable(
                    error.message,
                    hint="start the node (`twinledger node up`) or pass --node URL; or name the contracts' "
                    "deployment with --deployments-dir DIR",
                ) from None
    assert deployments_dir is not None  # else the node answered or its absence was raised
    return _deployed(rpc_url, deployments_dir)


def _deployed(rpc_url: str | None, deployments_dir: Path) -> tuple[TwinLedger, FederatedLedger]:
    from twinledger.chain.client import ChainClient
    from twinledger.chain.deploy import Deployment, deployment_path
    from twinledger.errors import NotFound
    from twinledger.profile import chain_url

    client = ChainClient(chain_url(None, rpc_url))
    path = deployment_path(deployments_dir, client.chain_id)
    if not path.is_file():
        raise NotFound(
            f"no deployment file {path} for chain {client.chain_id}",
            hint="pass the --deployments-dir of the deployment the node uses (its data directory's deployments/), "
            "or --node URL to take the contracts from the node",
        )
    return Deployment.load(path).bind(client)


def open_verifier(
    node: str | None,
    rpc_url: str | None,
    deployments_dir: Path | None,
    store: Path | None,
    catalog: Path | None,
    key: Path | None = None,
) -> Verifier:
    """A read-only Verifier on the node's (or the deployment file's) contracts, the block store and the catalog."""
    from twinledger.federated import DirectoryCatalog, Verifier
    from twinledger.ipfs import FileBlockStore

    ledger, federated = _contracts(node, rpc_url, deployments_dir)
    verifier = Verifier(
        federated,
        ledger,
        FileBlockStore(store or config.data_dir() / "ipfs"),
        DirectoryCatalog(catalog or config.data_dir() / "fl", federated.client.chain_id, federated.address),
    )
    if key is not None:
        from twinledger.identity.keyfile import read_key_file

        verifier.key = read_key_file(key)
    return verifier


@app.command()
def verify(
    task: int = TaskArgument,
    round_: int = RoundArgument,
    node: str | None = NodeOption,
    rpc_url: str | None = RpcOption,
    deployments_dir: Path | None = DeploymentsOption,
    store: Path | None = StoreOption,
    catalog: Path | None = CatalogOption,
    key: Path | None = KeyOption,
    json_out: bool = JsonOption,
) -> None:
    """Recompute ROUND of TASK from the pinned updates; check model digest, Merkle root and counts. Exit 4 if not."""
    report = open_verifier(node, rpc_url, deployments_dir, store, catalog, key).verify_round(task, round_)
    if json_out:
        print_json(report.as_dict())
    else:
        for line in report.checks:
            console.print(f"[green]✓[/] {line}", highlight=False)
        for line in report.problems:
            console.print(f"[red]✗[/] {line}", highlight=False)
        verdict = "[green]verified[/]" if report.ok else "[red]FAILED[/]"
        console.print(f"task {task} round {round_}: {verdict}")
    if not report.ok:
        raise typer.Exit(4)


@app.command()
def history(
    task: int = TaskArgument,
    node: str | None = NodeOption,
    rpc_url: str | None = RpcOption,
    deployments_dir: Path | None = DeploymentsOption,
    store: Path | None = StoreOption,
    catalog: Path | None = CatalogOption,
    json_out: bool = JsonOption,
) -> None:
    """Show TASK's checkpointed rounds: participants (twin ids), exclusions and model digests."""
    rounds = open_verifier(node, rpc_url, deployments_dir, store, catalog).history(task)
    if json_out:
        print_json(
            [
                {
                    "round": r.round,
                    "modelDigest": r.model_digest,
                    "participants": r.participants,
                    "excluded": {str(k): v for k, v in r.excluded.items()},
                    "count": r.count,
                    "totalSamples": r.total_samples,
                    "block": r.block_number,
                }
                for r in rounds
            ]
        )
        return
    rows = [
        (
            r.round,
            ", ".join(map(str, r.participants)),
            "; ".join(f"{t}: {why}" for t, why in r.excluded.items()) or "-",
            r.total_samples,
            "0x" + r.model_digest.hex(),
        )
        for r in rounds
    ]
    print_rows(f"task {task}", ["round", "twins", "excluded", "samples", "model digest"], rows)
