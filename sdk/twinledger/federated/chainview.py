"""What the chain says about a federated task: its creation, the effective commits of a round, checkpoints,
and whether TRAIN consent was in force at a given block."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from twinledger.chain.client import ChainEvent
from twinledger.chain.errors import ContractRevert
from twinledger.chain.ledger import FederatedLedger, TaskRecord, TwinLedger
from twinledger.chain.logs import LogScanner, event_filter
from twinledger.chain.types import Scope
from twinledger.errors import NotFound
from twinledger.identity.did import did_hash

Block = int | Literal["latest"]


@dataclass(frozen=True)
class Commit:
    """The effective (latest) UpdateCommitted of a twin in a round."""

    twin_id: int
    digest: bytes
    num_samples: int
    committer: str
    block_number: int
    tx_hash: str


@dataclass(frozen=True)
class Checkpoint:
    round: int
    model_digest: bytes
    updates_root: bytes
    count: int
    total_samples: int
    block_number: int
    tx_hash: str


def events(
    federated: FederatedLedger, name: str, *indexed: int, from_block: int, to_block: Block = "latest"
) -> list[ChainEvent]:
    """Decoded `name` events of the FederatedLedger whose leading indexed arguments equal `indexed`, from
    `from_block` (a task's creation block: never earlier than the deployment), read in pages a provider accepts."""
    query = event_filter(federated.contract, name, *indexed)
    logs = LogScanner(federated.client.w3).logs(query, from_block, to_block)
    decoded = federated.events.decode_all(logs)
    return sorted(decoded, key=lambda ev: (ev.block_number, ev.log_index))


def task(federated: FederatedLedger, task_id: int) -> TaskRecord:
    """The task's on-chain record; NotFound when there is no such task."""
    try:
        return federated.task(task_id)
    except ContractRevert as error:
        if error.error == "TaskNotFound":
            raise NotFound(f"there is no federated task {task_id}", hint="check the task id and the chain") from None
        raise


def commits(
    federated: FederatedLedger, task_id: int, round_: int, *, from_block: int, to_block: Block = "latest"
) -> dict[int, Commit]:
    """The effective commit of each twin in a round: a later commit of a twin supersedes an earlier one."""
    effective: dict[int, Commit] = {}
    for ev in events(federated, "UpdateCommitted", task_id, round_, from_block=from_block, to_block=to_block):
        a = ev.args
        effective[int(a["twinId"])] = Commit(
            int(a["twinId"]),
            bytes(a["updateDigest"]),
            int(a["numSamples"]),
            str(a["committer"]),
            ev.block_number,
            ev.tx_hash,
        )
    return dict(sorted(effective.items()))


def checkpoint(federated: FederatedLedger, task_id: int, round_: int, *, from_block: int) -> Checkpoint | None:
    found = events(federated, "RoundCheckpointed", task_id, round_, from_block=from_block)
    if not found:
        return None
    ev = found[-1]
    a = ev.args
    return Checkpoint(
        round_,
        bytes(a["modelDigest"]),
        bytes(a["updatesRoot"]),
        int(a["count"]),
        int(a["totalSamples"]),
        ev.block_number,
        ev.tx_hash,
    )


def trains_at(ledger: TwinLedger, twin_id: int, did: str, purpose: bytes, block: Block = "latest") -> bool:
    """isAuthorized(twin, did, purpose, TRAIN) as of `block` (an eth_call at that block; INHERIT and expiry apply)."""
    fn = ledger.contract.functions.isAuthorized(twin_id, did_hash(did), purpose, int(Scope.TRAIN))
    return bool(fn.call(block_identifier=block))
