"""The node as a federated aggregator: its chain account creates tasks, relays the commits owners sign and
checkpoints; its did:key is the aggregator DID (so updates can be encrypted to it), its block store holds the
updates and models, and its catalog lives in the data directory (`<data>/fl`).

The node pays for all of these, so it decides who may cause them: only DIDs the operator lists
(`fl_task_creators`) open tasks, only a task's creator (proven by the DID signature of the request) checkpoints it
or reads its rounds besides the participants, and every DID's gas is bounded (`fl_gas_per_did`, see gas_budget).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

from twinledger.chain.ledger import SignedCommit
from twinledger.chain.types import Scope
from twinledger.federated import Aggregator, DirectoryCatalog, Participant, Verifier
from twinledger.federated.aggregator import RoundResult
from twinledger.federated.context import FederatedContext
from twinledger.federated.participant import SubmittedUpdate
from twinledger.federated.records import TaskSpec
from twinledger.identity.did import did_hash, parse_did
from twinledger_node.consent.decision import decide
from twinledger_node.db.base import Connection, Row
from twinledger_node.problem import Problem
from twinledger_node.runtime import NodeRuntime
from twinledger_node.services.gas_budget import GasBudget, MeteredFederatedLedger

# What one request may cost at most, reserved from the caller's budget before it is sent (measured: createTask
# ~117k, a relayed commit ~48k, a checkpoint ~31k; docs/gas.md); the gas actually used is charged afterwards.
CEILING_CREATE = 200_000
CEILING_COMMIT = 100_000
CEILING_CHECKPOINT = 100_000


class FederatedService:
    def __init__(self, rt: NodeRuntime) -> None:
        self.rt = rt
        self.catalog = DirectoryCatalog(rt.settings.data_dir / "fl", rt.client.chain_id, rt.federated.address)
        federated = MeteredFederatedLedger(rt.client, rt.federated.address)
        parts = (federated, rt.ledger, rt.store, self.catalog)
        self.aggregator = Aggregator(*parts)
        self.aggregator.key = rt.node_key
        self.participant = Participant(*parts)
        self.verifier = Verifier(*parts)
        self.verifier.key = rt.node_key
        self.budget = GasBudget(rt.state, rt.settings.fl_gas_per_did)

    @property
    def context(self) -> FederatedContext:
        return self.verifier

    # ------------------------------------------------------------------ who may

    def creator_of(self, task_id: int) -> str | None:
        """The DID that opened `task_id` on this node (None: the task was not opened here)."""
        row = self.rt.state.connection().execute("SELECT creator FROM fl_tasks WHERE task_id = ?", (task_id,))
        found = row.fetchone()
        return None if found is None else str(found["creator"])

    def _hosted(self, task_id: int) -> str:
        creator = self.creator_of(task_id)
        if creator is None:
            raise Problem(404, "fl/unknown-task", "Unknown task", f"task {task_id} was not opened on this node",
                          hint="use a task this node aggregates (POST /v1/fl/tasks)")  # fmt: skip
        return creator

    def require_creator(self, did: str, task_id: int) -> None:
        creator = self._hosted(task_id)
        if did != creator:
            raise Problem(403, "fl/not-task-creator", "Not the task's creator",
                          f"{did} did not open task {task_id}; only its creator may checkpoint it",
                          hint="sign the request with the DID that opened the task")  # fmt: skip

    def require_member(self, did: str, task_id: int) -> None:
        """The task's creator, or the owner of a twin that committed an update to it."""
        if did == self._hosted(task_id):
            return
        # the accounts `did` speaks for: its own (did:pkh on this chain) and those that named it as recovery key
        owners = self.rt.snapshots.owners_recovered_by(did)
        parsed = parse_did(did)
        if parsed.method == "pkh" and parsed.chain_id == self.rt.client.chain_id and parsed.address:
            owners.append(parsed.address)
        query = (
            "SELECT 1 FROM model_updates m JOIN twins t ON t.twin_id = m.twin_id "  # noqa: S608 (placeholders only)
            f"WHERE m.task_id = ? AND t.owner IN ({', '.join('?' * len(owners))}) LIMIT 1"
        )
        committed = bool(owners) and self.rt.index.connection().execute(query, (task_id, *owners)).fetchone()
        if not committed:
            raise Problem(403, "fl/not-task-member", "Not in the task",
                          f"{did} neither opened task {task_id} nor owns a twin that committed to it",
                          hint="round status is for the task's creator and its participants")  # fmt: skip

    # ------------------------------------------------------------------ what the node pays for

    def open_task(self, creator: str, purpose: bytes, arrays: Sequence[object], *, encrypt: bool) -> TaskSpec:
        if creator not in self.rt.settings.fl_task_creators:
            raise Problem(403, "fl/creator-not-allowed", "Not allowed to open tasks",
                          f"{creator} is not among the DIDs this node opens federated tasks for",
                          hint="ask the node's operator to add your DID to TWINLEDGER_FL_TASK_CREATORS")  # fmt: skip
        with self.budget.spend(creator, CEILING_CREATE):
            spec = self.aggregator.open_task(self.rt.node_key.did, purpose, arrays, encrypt_updates=encrypt)
        with self.rt.state.write() as db:
            db.execute("INSERT INTO fl_tasks (task_id, creator, created) VALUES (?, ?, ?)",
                       (spec.task_id, creator, time.time()))  # fmt: skip
        return spec

    def submit(
        self, caller: str, task_id: int, round_: int, twin_id: int, data: bytes, num_samples: int,
        *, expected_digest: bytes | None, signed: SignedCommit,
    ) -> SubmittedUpdate:  # fmt: skip
        self._hosted(task_id)
        with self.budget.spend(caller, CEILING_COMMIT):
            return self.participant.submit_file(
                task_id, round_, twin_id, data, num_samples, expected_digest=expected_digest, signed=signed
            )

    def checkpoint(self, caller: str, task_id: int, round_: int) -> RoundResult:
        self.require_creator(caller, task_id)
        with self.budget.spend(caller, CEILING_CHECKPOINT):
            return self.aggregator.aggregate_round(task_id, round_)

    def round_status(self, task_id: int, round_: int) -> dict[str, Any] | None:
        """The round as the index sees it: commits, checkpoint, and the round record's exclusions."""
        db = self.rt.index.connection()
        task: Row | None = db.execute("SELECT * FROM tasks WHERE task_id = ?", (task_id,)).fetchone()
        if task is None:
            return None
        updates = db.execute(
            "SELECT twin_id, update_digest, num_samples, block_number, tx_hash FROM model_updates "
            "WHERE task_id = ? AND round = ? ORDER BY twin_id",
            (task_id, round_),
        ).fetchall()
        checkpoint = db.execute(
            "SELECT * FROM checkpoints WHERE task_id = ? AND round = ?", (task_id, round_)
        ).fetchone()
        if checkpoint is not None:
            state = "checkpointed"
        elif round_ == task["open_round"] and not task["closed"]:
            state = "open"
        else:
            state = "closed" if task["closed"] else "future"
        consent = _TrainConsent(db, task, self.rt.chain_now())
        submitted = {int(u["twin_id"]) for u in updates}
        record_cid = self.catalog.round(task_id, round_)
        excluded: list[dict[str, Any]] = []
        if record_cid is not None:
            _, record = self.context.round_record(task_id, round_)
            excluded = [{"twinId": e.twin_id, "reason": e.reason} for e in record.excluded]
        return {
            "taskId": task_id,
            "round": round_,
            "state": state,
            "openRound": task["open_round"],
            "aggregatorDid": task["aggregator_did"],
            "updates": [
                {
                    "twinId": u["twin_id"],
                    "digest": _hex(u["update_digest"]),
                    "numSamples": u["num_samples"],
                    "block": u["block_number"],
                    "tx": u["tx_hash"],
                    "consent": consent.of(int(u["twin_id"])),
                }
                for u in updates
            ],
            "missing": [
                {"twinId": twin, "consent": consent.of(twin)}
                for twin in _expected_twins(db, task, round_)
                if twin not in submitted
            ],
            "checkpoint": None
            if checkpoint is None
            else {
                "modelDigest": _hex(checkpoint["model_digest"]),
                "updatesRoot": _hex(checkpoint["updates_root"]),
                "count": checkpoint["count"],
                "totalSamples": checkpoint["total_samples"],
                "block": checkpoint["block_number"],
                "tx": checkpoint["tx_hash"],
            },
            "roundRecord": None if record_cid is None else str(record_cid),
            "excluded": excluded,
        }


class _TrainConsent:
    """Whether TRAIN for the task's purpose is in force now for its aggregator DID, per twin, from the index."""

    def __init__(self, db: Connection, task: Row, chain_now: int) -> None:
        self.db = db
        self.did_hash = did_hash(str(task["aggregator_did"]))
        self.purpose = bytes.fromhex(str(task["purpose"]).removeprefix("0x"))
        self.chain_now = chain_now

    def of(self, twin_id: int) -> dict[str, Any]:
        decision = decide(self.db, twin_id, self.did_hash, self.purpose, Scope.TRAIN, self.chain_now)
        return {"train": decision.allowed, "outcome": decision.outcome.value, "detail": decision.detail}


def _expected_twins(db: Connection, task: Row, round_: int) -> list[int]:
    """Who a round waits for (the task has no member list): twins with a TRAIN grant to the aggregator DID for the
    task's purpose that is not revoked (expired ones too, so their owner sees why), and twins that committed to an
    earlier round."""
    rows = db.execute(
        "SELECT twin_id FROM grants WHERE did_hash = ? AND purpose = ? AND revoked_block IS NULL AND (scopes & ?) <> 0 "
        "UNION SELECT twin_id FROM model_updates WHERE task_id = ? AND round < ?",
        (_hex(did_hash(str(task["aggregator_did"]))), str(task["purpose"]), int(Scope.TRAIN), task["task_id"], round_),
    ).fetchall()
    return sorted(int(r["twin_id"]) for r in rows)


def _hex(value: Any) -> str:
    if isinstance(value, bytes):
        return "0x" + value.hex()
    return str(value)
