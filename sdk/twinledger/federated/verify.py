"""Verification of a checkpointed round from the chain and the store, and a task's history."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

from twinledger.errors import TwinledgerError
from twinledger.federated import chainview, tensors
from twinledger.federated.aggregator import WeightedUpdate, fedavg, updates_tree
from twinledger.federated.context import FederatedContext
from twinledger.federated.records import TASK_RECORD, load_json
from twinledger.identity.keys import DidKey
from twinledger.identity.records import verify_record


@dataclass
class RoundVerification:
    task_id: int
    round: int
    checks: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    def check(self, passed: bool, what: str) -> bool:
        (self.checks if passed else self.problems).append(what)
        return passed

    def as_dict(self) -> dict[str, object]:
        return {
            "task": self.task_id,
            "round": self.round,
            "ok": self.ok,
            "checks": self.checks,
            "problems": self.problems,
        }


@dataclass(frozen=True)
class RoundHistory:
    round: int
    model_digest: bytes
    participants: list[int]
    excluded: dict[int, str]
    count: int
    total_samples: int
    block_number: int


class Verifier(FederatedContext):
    """Recomputes checkpointed rounds; `key` opens updates that were encrypted to the aggregator."""

    key: DidKey | None = None

    def _check_task_binding(self, task_id: int, aggregator_did: str, result: RoundVerification) -> None:
        """The chain cannot tell whether the account that created a task may act as the aggregator DID it names:
        the task record must be signed by that DID and name that account."""
        on_chain = chainview.task(self.federated, task_id).aggregator
        cid = self.catalog.task(task_id)
        record = load_json(self.store, cid, TASK_RECORD) if cid is not None else {}
        try:
            signer = asyncio.run(verify_record(record)).signer
        except TwinledgerError as error:
            signer = f"nobody ({error.message})"
        named = str(record.get("aggregator", ""))
        result.check(
            signer == aggregator_did and named.lower() == on_chain.lower(),
            f"the task record is signed by the aggregator DID {aggregator_did} (signer: {signer}) and names the "
            f"task's aggregator account on chain {on_chain} (names: {named or 'none'})",
        )

    def verify_round(self, task_id: int, round_: int) -> RoundVerification:
        """Recompute round `round_` from the pinned updates and compare digest, root and counts to the checkpoint."""
        result = RoundVerification(task_id, round_)
        spec = self.task_spec(task_id)
        self._check_task_binding(task_id, spec.aggregator_did, result)
        checkpoint = chainview.checkpoint(self.federated, task_id, round_, from_block=spec.created_block)
        if not result.check(checkpoint is not None, f"round {round_} is checkpointed on chain"):
            return result
        assert checkpoint is not None
        record_cid, record = self.round_record(task_id, round_)
        result.check(record.consent_block < checkpoint.block_number, "consent was evaluated before the checkpoint")
        commits = chainview.commits(
            self.federated, task_id, round_, from_block=spec.created_block, to_block=record.consent_block
        )
        accounted = {u.twin_id for u in record.included} | {u.twin_id for u in record.excluded}
        result.check(
            accounted == set(commits),
            f"every committed update is included or excluded (committed {sorted(commits)}, "
            f"recorded {sorted(accounted)})",
        )
        shapes = tensors.shapes_of(self.global_model(task_id, round_))
        weighted: list[WeightedUpdate] = []
        for update in record.included:
            label = f"twin {update.twin_id}"
            commit = commits.get(update.twin_id)
            if not result.check(
                commit is not None and (commit.digest, commit.num_samples) == (update.digest, update.num_samples),
                f"{label}: the included digest and sample count are the ones committed on chain",
            ):
                continue
            result.check(
                chainview.trains_at(
                    self.ledger, update.twin_id, spec.aggregator_did, spec.purpose, record.consent_block
                ),
                f"{label}: TRAIN consent was in force at block {record.consent_block}",
            )
            try:
                update_record = self.update_record(update.record_cid)
                data = self.update_plaintext(update_record, self.key)
            except TwinledgerError as error:
                result.check(False, f"{label}: pinned update readable ({error.message})")
                continue
            if not result.check(
                tensors.digest(data) == update.digest, f"{label}: the pinned update hashes to the committed digest"
            ):
                continue
            try:
                arrays = tensors.deserialize(data)
                tensors.check_shapes(arrays, shapes)
            except TwinledgerError as error:
                result.check(False, f"{label}: the pinned update is a well-formed update ({error.message})")
                continue
            weighted.append(WeightedUpdate(update.twin_id, arrays, update.num_samples))
        result.check(record.count == checkpoint.count, f"count {record.count} equals the checkpoint's")
        total = sum(u.num_samples for u in record.included)
        result.check(
            total == record.total_samples == checkpoint.total_samples,
            f"total samples {total} equals the checkpoint's {checkpoint.total_samples}",
        )
        if record.included:
            root = updates_tree(record.included).root
            result.check(root == checkpoint.updates_root, "the Merkle root of the included updates is the checkpoint's")
        if len(weighted) == len(record.included) and weighted:
            recomputed = tensors.digest(tensors.serialize(fedavg(weighted)))
            same = recomputed == checkpoint.model_digest
            result.check(same, "the recomputed FedAvg model has the checkpoint's digest")
        result.check(record.model_digest == checkpoint.model_digest, f"round record {record_cid} names the model")
        try:
            pinned_model = self.read_bytes(record.model_cid)
            result.check(tensors.digest(pinned_model) == checkpoint.model_digest, "the pinned model has the digest")
        except TwinledgerError as error:
            result.check(False, f"the pinned model is readable ({error.message})")
        return result

    def history(self, task_id: int) -> list[RoundHistory]:
        """Checkpointed rounds of a task with their participants (from the round records, else the Merkle count)."""
        spec = self.task_spec(task_id)
        rounds: list[RoundHistory] = []
        for ev in chainview.events(self.federated, "RoundCheckpointed", task_id, from_block=spec.created_block):
            a = ev.args
            round_ = int(a["round"])
            try:
                _, record = self.round_record(task_id, round_)
                participants = [u.twin_id for u in record.included]
                excluded = {u.twin_id: u.reason for u in record.excluded}
            except TwinledgerError:
                participants, excluded = [], {}
            rounds.append(
                RoundHistory(
                    round_,
                    bytes(a["modelDigest"]),
                    participants,
                    excluded,
                    int(a["count"]),
                    int(a["totalSamples"]),
                    ev.block_number,
                )
            )
        return rounds
