"""Aggregator side: open a task, collect a round's committed updates, verify them, FedAvg, pin, checkpoint."""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import suppress
from dataclasses import dataclass

import numpy as np
from multiformats import CID

from twinledger.chain.client import TxResult
from twinledger.chain.types import purpose_code
from twinledger.errors import AuthError, InvalidInput, TwinledgerError
from twinledger.federated import chainview, tensors
from twinledger.federated.context import FederatedContext
from twinledger.federated.records import (
    UPDATE_LEAF_TYPES,
    ExcludedUpdate,
    IncludedUpdate,
    RoundRecord,
    TaskSpec,
    pin_json,
)
from twinledger.identity.did import canonical_did, parse_did
from twinledger.identity.keys import DidKey
from twinledger.identity.records import sign_record
from twinledger.merkle import StandardMerkleTree


@dataclass(frozen=True)
class WeightedUpdate:
    twin_id: int
    arrays: tensors.Arrays
    num_samples: int


def fedavg(updates: Sequence[WeightedUpdate]) -> tensors.Arrays:
    """Weighted FedAvg by sample count in float64, summed in ascending twin-id order.

    Floating-point addition is not associative, so the order is fixed: the same updates always give the same bytes.
    """
    if not updates:
        raise InvalidInput("FedAvg needs at least one update")
    ordered = sorted(updates, key=lambda u: u.twin_id)
    total = float(sum(u.num_samples for u in ordered))
    sums = [np.zeros(a.shape, dtype=np.float64) for a in ordered[0].arrays]
    for update in ordered:
        weight = np.float64(update.num_samples)
        for acc, array in zip(sums, update.arrays, strict=True):
            acc += array * weight
    return [acc / total for acc in sums]


def updates_tree(included: Sequence[IncludedUpdate]) -> StandardMerkleTree:
    """The StandardMerkleTree over (twinId, updateDigest, numSamples) of the included updates."""
    return StandardMerkleTree.of([u.leaf for u in included], UPDATE_LEAF_TYPES)


@dataclass(frozen=True)
class RoundResult:
    record_cid: CID
    record: RoundRecord
    model: tensors.Arrays
    tx: TxResult


class Aggregator(FederatedContext):
    """Runs tasks as the FederatedLedger binding's account; `key` opens updates encrypted to the aggregator."""

    key: DidKey | None = None

    def open_task(
        self,
        aggregator_did: str,
        purpose: str | bytes,
        initial_model: Sequence[object],
        *,
        encrypt_updates: bool = False,
    ) -> TaskSpec:
        """Pin the initial model, create the task on chain (round 1 opens) and announce its task record, signed by
        the aggregator DID when `key` is its key (which `Verifier.verify_round` requires: the record names this
        account, so the signature binds the DID to the account the chain knows as the task's aggregator)."""
        did = canonical_did(aggregator_did)
        if encrypt_updates and parse_did(did).method != "key":
            raise InvalidInput(
                f"updates can only be encrypted to a did:key, and the aggregator is {did}",
                hint="act as a did:key aggregator or open the task without encryption",
            )
        code = purpose_code(purpose)
        model = tensors.serialize(initial_model)
        digest = tensors.digest(model)
        model_cid = self.pin_bytes(model)
        try:
            task_id, tx = self.federated.create_task(did, code, digest)
        except BaseException:
            with suppress(Exception):
                self.store.unpin(model_cid)
            raise
        spec = TaskSpec(
            task_id=task_id,
            chain_id=self.federated.client.chain_id,
            contract=self.federated.address,
            aggregator_did=did,
            purpose=code,
            initial_model_digest=digest,
            initial_model_cid=str(model_cid),
            encrypt_updates=encrypt_updates,
            created_block=tx.block_number,
            aggregator=self.federated.client.address,
        )
        record = spec.to_json()
        if self.key is not None and self.key.did == did:
            # the DID vouches for the account: the chain cannot check a did:key, a verifier can check this
            record = sign_record(record, self.key)
        self.catalog.put_task(task_id, pin_json(self.store, record))
        return spec

    def check_aggregator(self, task_id: int) -> int:
        """Raise unless this account is the task's aggregator and the task is open; return the open round."""
        record = chainview.task(self.federated, task_id)
        account = self.federated.client.address
        if record.aggregator.lower() != account.lower():
            raise AuthError(
                f"account {account} is not the aggregator of task {task_id} ({record.aggregator})",
                hint="only the task's aggregator may checkpoint or close it",
            )
        if record.closed:
            raise InvalidInput(f"task {task_id} is closed", hint="open a new task")
        return record.open_round

    def collect(
        self, spec: TaskSpec, round_: int, consent_block: int
    ) -> tuple[list[IncludedUpdate], list[WeightedUpdate], list[ExcludedUpdate]]:
        """Check every effective commit of the round; return the included ones, their arrays, and the exclusions."""
        shapes = tensors.shapes_of(self.global_model(spec.task_id, round_))
        included: list[IncludedUpdate] = []
        weighted: list[WeightedUpdate] = []
        excluded: list[ExcludedUpdate] = []
        commits = chainview.commits(
            self.federated, spec.task_id, round_, from_block=spec.created_block, to_block=consent_block
        )
        for twin_id, commit in commits.items():
            record_cid = self.catalog.update(spec.task_id, round_, twin_id, commit.digest)
            outcome = self._check_update(spec, round_, commit, record_cid, consent_block, shapes)
            if isinstance(outcome, str):
                cid_text = str(record_cid) if record_cid else None
                excluded.append(ExcludedUpdate(twin_id, commit.digest, commit.num_samples, outcome, cid_text))
                continue
            assert record_cid is not None
            included.append(IncludedUpdate(twin_id, commit.digest, commit.num_samples, str(record_cid)))
            weighted.append(WeightedUpdate(twin_id, outcome, commit.num_samples))
        return included, weighted, excluded

    def _check_update(
        self,
        spec: TaskSpec,
        round_: int,
        commit: chainview.Commit,
        record_cid: CID | None,
        consent_block: int,
        shapes: tensors.Shapes,
    ) -> tensors.Arrays | str:
        """The update's arrays, or why it is excluded."""
        if record_cid is None:
            return "no pinned update record was announced for the committed digest"
        if not chainview.trains_at(self.ledger, commit.twin_id, spec.aggregator_did, spec.purpose, consent_block):
            return f"TRAIN consent was not in force at block {consent_block}"
        try:
            record = self.update_record(record_cid)
            described = (record.task_id, record.round, record.twin_id, record.digest, record.num_samples)
            if described != (spec.task_id, round_, commit.twin_id, commit.digest, commit.num_samples):
                return "the update record does not describe the committed update"
            data = self.update_plaintext(record, self.key)
            if tensors.digest(data) != commit.digest:
                return "the pinned bytes do not hash to the committed digest"
            arrays = tensors.deserialize(data)
            tensors.check_shapes(arrays, shapes)
        except TwinledgerError as error:
            return f"{error.__class__.__name__}: {error.message}"
        return arrays

    def aggregate_round(self, task_id: int, round_: int | None = None) -> RoundResult:
        """Aggregate and checkpoint the open round (or check that `round_` is it).

        Consent is evaluated at the latest block when aggregation starts (recorded as the round's consent block);
        commits made after it belong to no checkpoint and are not considered.
        """
        open_round = self.check_aggregator(task_id)
        if round_ is not None and round_ != open_round:
            raise InvalidInput(
                f"round {round_} of task {task_id} is not open (the open round is {open_round})",
                hint="rounds are checkpointed in order; aggregate the open round",
            )
        spec = self.task_spec(task_id)
        if spec.encrypt_updates and (self.key is None or self.key.did != spec.aggregator_did):
            raise InvalidInput(
                f"task {task_id}'s updates are encrypted to {spec.aggregator_did}",
                hint="give the aggregator its did:key (Aggregator.key / --key)",
            )
        consent_block = int(self.federated.client.w3.eth.block_number)
        included, weighted, excluded = self.collect(spec, open_round, consent_block)
        if not included:
            reasons = "; ".join(f"twin {e.twin_id}: {e.reason}" for e in excluded) or "no update was committed"
            raise InvalidInput(
                f"round {open_round} of task {task_id} has no valid update to aggregate ({reasons})",
                hint="wait for consenting participants to submit, then aggregate again",
            )
        model = fedavg(weighted)
        model_file = tensors.serialize(model)
        model_digest = tensors.digest(model_file)
        tree = updates_tree(included)
        total = sum(u.num_samples for u in included)
        pinned: list[CID] = []
        try:
            model_cid = self.pin_bytes(model_file)
            pinned.append(model_cid)
            record = RoundRecord(
                task_id, open_round, model_digest, str(model_cid), consent_block, tree.root, total, included, excluded
            )
            record_cid = pin_json(self.store, record.to_json())
            pinned.append(record_cid)
            tx = self.federated.checkpoint(task_id, open_round, model_digest, tree.root, len(included), total)
        except BaseException:
            for cid in pinned:  # a model that is not checkpointed stays unpinned
                with suppress(Exception):
                    self.store.unpin(cid)
            raise
        self.catalog.put_round(task_id, open_round, record_cid)
        return RoundResult(record_cid, record, model, tx)

    def close_task(self, task_id: int) -> TxResult:
        self.check_aggregator(task_id)
        return self.federated.close_task(task_id)
