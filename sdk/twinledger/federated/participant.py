"""Participant side: serialize a locally trained update, pin it, and commit its digest for a twin."""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import suppress
from dataclasses import dataclass

from multiformats import CID
from web3 import Web3

from twinledger.chain.client import TxResult
from twinledger.chain.ledger import SignedCommit, recover_commit_signer
from twinledger.chain.types import purpose_label
from twinledger.crypto.envelope import seal_bytes
from twinledger.errors import AuthError, IntegrityError, InvalidInput
from twinledger.federated import chainview, tensors
from twinledger.federated.context import FederatedContext
from twinledger.federated.records import UpdateRecord, pin_json

MAX_SAMPLES = 2**64 - 1


class CommitSignerMismatch(AuthError):
    """A relayed commit is not signed by the twin's owner."""


@dataclass(frozen=True)
class SubmittedUpdate:
    task_id: int
    round: int
    twin_id: int
    digest: bytes
    num_samples: int
    record_cid: CID
    content_cid: CID
    tx: TxResult


class Participant(FederatedContext):
    """Submits updates for twins this account controls (the FederatedLedger binding's account commits)."""

    def check_round(self, task_id: int, round_: int) -> None:
        """Raise unless `round_` of `task_id` is the task's open round."""
        record = chainview.task(self.federated, task_id)
        if record.closed:
            raise InvalidInput(f"task {task_id} is closed", hint="no more updates are accepted; join an open task")
        if round_ != record.open_round:
            raise InvalidInput(
                f"round {round_} of task {task_id} is not open (the open round is {record.open_round})",
                hint=f"train on the global model of round {record.open_round} and submit to that round",
            )

    def check_may_commit(self, task_id: int, twin_id: int, signed: SignedCommit | None = None) -> None:
        """Raise AuthError unless the commit is the owner's (this account controls the twin, or `signed` is the
        owner's signature, relayed) and the owner granted TRAIN to the aggregator."""
        if signed is not None:
            owner = self.ledger.twin(twin_id).owner
            signer = recover_commit_signer(self.federated, signed)
            # a contract-wallet owner signs by ERC-1271, which only the chain can check
            if signer != owner and not self.ledger.client.w3.eth.get_code(Web3.to_checksum_address(owner)):
                raise CommitSignerMismatch(
                    f"the commit of twin {twin_id}'s update is signed by {signer}, not by its owner {owner}",
                    hint="the twin's owner signs the commit (EIP-712 Commit) with the key that owns the twin",
                )
        else:
            account = self.federated.client.address
            if not self.ledger.is_controller(twin_id, account):
                raise AuthError(
                    f"account {account} neither owns twin {twin_id} nor is approved for it",
                    hint="submit with the key of the twin's owner, or relay a commit the owner signed",
                )
        spec = self.task_spec(task_id)
        if not chainview.trains_at(self.ledger, twin_id, spec.aggregator_did, spec.purpose):
            purpose = purpose_label(spec.purpose)
            raise AuthError(
                f"twin {twin_id}'s owner has not granted TRAIN for purpose {purpose} to the "
                f"aggregator {spec.aggregator_did} (or the grant was revoked or expired)",
                hint=f"the owner grants it with `twinledger consent grant {twin_id} {spec.aggregator_did} "
                f"--scope train --purpose {purpose.split(' (')[0]}`",  # the alias, else the hex code
            )

    def submit(
        self, task_id: int, round_: int, twin_id: int, arrays: Sequence[object], num_samples: int
    ) -> SubmittedUpdate:
        """Serialize `arrays` (the locally trained parameters) and submit them; see `submit_file`."""
        return self.submit_file(task_id, round_, twin_id, tensors.serialize(arrays), num_samples)

    def submit_file(
        self,
        task_id: int,
        round_: int,
        twin_id: int,
        data: bytes,
        num_samples: int,
        *,
        expected_digest: bytes | None = None,
        signed: SignedCommit | None = None,
    ) -> SubmittedUpdate:
        """Check, pin and commit a tensor file as twin `twin_id`'s update in round `round_`.

        Everything is checked before anything is pinned: the round is open, the commit is the owner's (this account
        controls the twin, or `signed` is the owner's EIP-712 signature of exactly this commit, which this account
        relays), the owner granted TRAIN, the file parses, its shapes match the round's global model and (when
        given) it hashes to `expected_digest`. If the commit then fails, the pins are removed again.
        """
        if not isinstance(num_samples, int) or not 0 < num_samples <= MAX_SAMPLES:
            raise InvalidInput(f"num_samples must be a positive 64-bit integer, got {num_samples!r}")
        arrays = tensors.deserialize(data)
        digest = tensors.digest(data)
        if expected_digest is not None and expected_digest != digest:
            raise IntegrityError(
                f"the update hashes to 0x{digest.hex()}, not the stated 0x{expected_digest.hex()}",
                hint="send the exact tensor file whose sha256 you state",
            )
        if signed is not None and (signed.task_id, signed.round, signed.twin_id, signed.update_digest,
                                   signed.num_samples) != (task_id, round_, twin_id, digest, num_samples):  # fmt: skip
            raise InvalidInput(
                f"the signed commit is for task {signed.task_id} round {signed.round} twin {signed.twin_id} digest "
                f"0x{signed.update_digest.hex()} ({signed.num_samples} samples), not this update of twin {twin_id} "
                f"(task {task_id} round {round_}, digest 0x{digest.hex()}, {num_samples} samples)",
                hint="sign the commit of exactly the tensor file you send",
            )
        self.check_round(task_id, round_)
        self.check_may_commit(task_id, twin_id, signed)
        tensors.check_shapes(arrays, tensors.shapes_of(self.global_model(task_id, round_)))
        spec = self.task_spec(task_id)

        envelope = None
        content = data
        if spec.encrypt_updates:
            sealed, content = seal_bytes(data, [spec.aggregator_did])
            envelope = sealed.to_dict()
        pinned: list[CID] = []
        try:
            content_cid = self.pin_bytes(content)
            pinned.append(content_cid)
            record = UpdateRecord(task_id, round_, twin_id, digest, num_samples, str(content_cid), envelope)
            record_cid = pin_json(self.store, record.to_json())
            pinned.append(record_cid)
            if signed is None:
                tx = self.federated.commit_update(task_id, round_, twin_id, digest, num_samples)
            else:
                tx = self.federated.commit_update_by_sig(signed)
        except BaseException:
            for cid in pinned:  # nothing stays pinned for an update that is not on chain
                with suppress(Exception):
                    self.store.unpin(cid)
            raise
        self.catalog.put_update(task_id, round_, twin_id, digest, record_cid)
        return SubmittedUpdate(task_id, round_, twin_id, digest, num_samples, record_cid, content_cid, tx)
