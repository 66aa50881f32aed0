"""FederatedLedger: tasks, consent-gated update commits, ordered checkpoints, and each revert."""

from __future__ import annotations

import dataclasses

from eth_utils import keccak

from tests.contracts.helpers import DID_A, DIGEST, reverts
from twinledger.chain.ledger import GrantRequest
from twinledger.chain.types import purpose_code

AGGREGATOR_DID = "did:key:z6MkhaXgBZDvotDkL5257faiztiGiC2QtKLGpbnnEGta2doK"


def _setup(ledger_as, federated_as, accounts):
    owner, aggregator = ledger_as(accounts[1]), federated_as(accounts[5])
    twin, _ = owner.register("asset")
    task, created = aggregator.create_task(AGGREGATOR_DID, "research", DIGEST)
    return owner, aggregator, twin, task, created


def test_round_lifecycle(ledger_as, federated_as, accounts):
    owner, aggregator, twin, task, created = _setup(ledger_as, federated_as, accounts)
    event = created.event("TaskCreated").args
    assert (event["aggregator"], event["aggregatorDid"], event["purpose"]) == (
        accounts[5].address, AGGREGATOR_DID, purpose_code("research"),
    )  # fmt: skip
    owner.grant(GrantRequest.of(twin, AGGREGATOR_DID, "research", "train", owner.client.chain_time() + 3600))
    participant = federated_as(accounts[1])
    committed = participant.commit_update(task, 1, twin, keccak(b"update"), 100).event("UpdateCommitted").args
    assert (committed["round"], committed["twinId"], committed["numSamples"]) == (1, twin, 100)
    done = aggregator.checkpoint(task, 1, keccak(b"model-1"), keccak(b"root"), 1, 100).event("RoundCheckpointed")
    assert done.args["modelDigest"] == keccak(b"model-1") and done.args["count"] == 1
    record = aggregator.task(task)
    assert (record.open_round, record.closed, record.aggregator_did_hash) == (
        2,
        False,
        keccak(text=AGGREGATOR_DID),
    )
    reverts("RoundNotOpen", lambda: participant.commit_update(task, 1, twin, keccak(b"late"), 1), openRound=2)
    reverts("RoundNotOpen", lambda: aggregator.checkpoint(task, 1, DIGEST, DIGEST, 1, 1))
    closed = aggregator.close_task(task).event("TaskClosed").args
    assert closed["lastRound"] == 1
    reverts("TaskIsClosed", lambda: participant.commit_update(task, 2, twin, keccak(b"u"), 1), taskId=task)
    reverts("TaskIsClosed", lambda: aggregator.close_task(task))


def test_commit_requires_train_consent_for_the_tasks_purpose(ledger_as, federated_as, accounts):
    owner, _, twin, task, _ = _setup(ledger_as, federated_as, accounts)
    participant = federated_as(accounts[1])
    expiry = owner.client.chain_time() + 3600
    reverts("TrainingNotAuthorized", lambda: participant.commit_update(task, 1, twin, DIGEST, 10), twinId=twin)
    owner.grant(GrantRequest.of(twin, AGGREGATOR_DID, "research", "read", expiry))  # READ is not TRAIN
    reverts("TrainingNotAuthorized", lambda: participant.commit_update(task, 1, twin, DIGEST, 10))
    owner.grant(GrantRequest.of(twin, AGGREGATOR_DID, "maintenance", "train", expiry))  # wrong purpose
    reverts("TrainingNotAuthorized", lambda: participant.commit_update(task, 1, twin, DIGEST, 10))
    owner.grant(GrantRequest.of(twin, DID_A, "research", "train", expiry))  # wrong DID
    reverts("TrainingNotAuthorized", lambda: participant.commit_update(task, 1, twin, DIGEST, 10))
    owner.grant(GrantRequest.of(twin, AGGREGATOR_DID, "research", "train", expiry))
    participant.commit_update(task, 1, twin, DIGEST, 10)
    owner.revoke(twin, AGGREGATOR_DID, "research")
    reverts("TrainingNotAuthorized", lambda: participant.commit_update(task, 1, twin, DIGEST, 10))


def test_commit_and_checkpoint_reverts(ledger_as, federated_as, accounts):
    owner, aggregator, twin, task, _ = _setup(ledger_as, federated_as, accounts)
    owner.grant(GrantRequest.of(twin, AGGREGATOR_DID, "research", "train", owner.client.chain_time() + 3600))
    participant, stranger = federated_as(accounts[1]), federated_as(accounts[3])
    reverts(
        "NotTwinController",
        lambda: stranger.commit_update(task, 1, twin, DIGEST, 10),
        caller=accounts[3].address,
    )
    reverts("TaskNotFound", lambda: participant.commit_update(99, 1, twin, DIGEST, 10), taskId=99)
    reverts("ZeroDigest", lambda: participant.commit_update(task, 1, twin, b"\x00" * 32, 10))
    reverts("InvalidSampleCount", lambda: participant.commit_update(task, 1, twin, DIGEST, 0))
    reverts("InvalidSampleCount", lambda: participant.commit_update(task, 1, twin, DIGEST, 2**64))
    reverts(
        "NotAggregator",
        lambda: stranger.checkpoint(task, 1, DIGEST, DIGEST, 1, 1),
        caller=accounts[3].address,
    )
    reverts("NotAggregator", lambda: stranger.close_task(task))
    reverts("EmptyRound", lambda: aggregator.checkpoint(task, 1, DIGEST, DIGEST, 0, 0))
    reverts("ZeroDigest", lambda: aggregator.checkpoint(task, 1, b"\x00" * 32, DIGEST, 1, 1))
    reverts("InvalidSampleCount", lambda: aggregator.checkpoint(task, 1, DIGEST, DIGEST, 3, 2))
    reverts("TaskNotFound", lambda: aggregator.task(7))
    reverts("TaskNotFound", lambda: aggregator.close_task(7))
    fn = aggregator.contract.functions
    reverts("InvalidDid", lambda: aggregator.client.send(fn.createTask("not-a-did", purpose_code("research"), DIGEST)))
    reverts("InvalidPurpose", lambda: aggregator.create_task(AGGREGATOR_DID, b"\x00" * 32, DIGEST))
    reverts("ZeroDigest", lambda: aggregator.create_task(AGGREGATOR_DID, "research", b"\x00" * 32))


def test_relayed_commit_is_the_owners_signed_act(ledger_as, federated_as, accounts):
    """commitUpdateBySig: anyone relays, the owner's EIP-712 signature authorizes, the owner is the committer."""
    owner, _, twin, task, _ = _setup(ledger_as, federated_as, accounts)
    relayer, stranger = federated_as(accounts[4]), accounts[3]  # a relayer with no role in the task
    deadline = owner.client.chain_time() + 600
    signed = relayer.sign_commit(accounts[1], task, 1, twin, DIGEST, 10, deadline=deadline)
    reverts("TrainingNotAuthorized", lambda: relayer.commit_update_by_sig(signed), twinId=twin)
    owner.grant(GrantRequest.of(twin, AGGREGATOR_DID, "research", "train", owner.client.chain_time() + 3600))
    committed = relayer.commit_update_by_sig(signed).event("UpdateCommitted").args
    assert (committed["committer"], committed["twinId"], committed["updateDigest"]) == (
        accounts[1].address,
        twin,
        DIGEST,
    )
    forged = relayer.sign_commit(stranger, task, 1, twin, DIGEST, 10, deadline=deadline)
    reverts("InvalidCommitSigner", lambda: relayer.commit_update_by_sig(forged), twinId=twin, owner=accounts[1].address)
    other = dataclasses.replace(signed, num_samples=11)  # the signature covers every field
    reverts("InvalidCommitSigner", lambda: relayer.commit_update_by_sig(other))
    late = relayer.sign_commit(accounts[1], task, 1, twin, DIGEST, 10, deadline=owner.client.chain_time() - 1)
    reverts("ExpiredSignature", lambda: relayer.commit_update_by_sig(late))
    foreign = relayer.sign_commit(accounts[1], task, 1, 999, DIGEST, 10, deadline=deadline)
    reverts("TwinNotFound", lambda: relayer.commit_update_by_sig(foreign), twinId=999)
