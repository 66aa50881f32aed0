"""Federated tasks aggregated by the node (`/v1/fl/tasks`, docs/federated.md): open a task, submit a twin's update,
read a round's status, checkpoint it; and the node's FederatedLedger on the RPC's chain, for verifying.

    >>> tasks = FederatedTasks(client)                                        # doctest: +SKIP
    >>> task = tasks.create_task(read_tensor_file(Path("model.npz")), purpose="research")
    >>> tasks.submit_update(task.task_id, 1, twin_id=7, update=data, num_samples=120)   # as the twin's owner
    >>> tasks.checkpoint(task.task_id, 1)                                     # as the task's creator

The node is the aggregator: its did:key is the task's aggregator DID, the DID participants grant TRAIN to. The
wallet's did:key opens and checkpoints tasks (the node accepts the DIDs its operator lists); a participant signs
the commit of its update with the account that owns the twin and the node relays it.
"""

from __future__ import annotations

import hashlib
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

from web3 import Web3

from twinledger.chain.ledger import FederatedLedger
from twinledger.client.errors import NotOwner
from twinledger.errors import AuthError, InvalidInput, NotFound
from twinledger.federated import chainview
from twinledger.identity import DidSigner

if TYPE_CHECKING:
    from twinledger.client.sync import Client

TENSOR_MEDIA_TYPE = "application/octet-stream"
COMMIT_DEADLINE_S = 600  # a relayed commit can be replayed within its round until its deadline: keep it short


@dataclass(frozen=True)
class Task:
    task_id: int
    aggregator_did: str
    purpose: str
    initial_model_digest: str
    initial_model_cid: str
    encrypt_updates: bool
    created_block: int
    created_by: str

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Task:
        return cls(
            int(data["taskId"]),
            data["aggregatorDid"],
            data["purpose"],
            data["initialModel"]["digest"],
            data["initialModel"]["cid"],
            bool(data["encryptUpdates"]),
            int(data["createdBlock"]),
            data["createdBy"],
        )

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class SubmittedUpdate:
    task_id: int
    round: int
    twin_id: int
    digest: str
    num_samples: int
    record_cid: str
    content_cid: str
    tx_hash: str

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class TrainConsent:
    """Whether the twin's owner has TRAIN in force for the aggregator and the task's purpose now, and why not."""

    train: bool
    outcome: str
    detail: str


@dataclass(frozen=True)
class RoundUpdate:
    twin_id: int
    digest: str
    num_samples: int
    block: int
    tx_hash: str
    consent: TrainConsent


@dataclass(frozen=True)
class MissingTwin:
    """A twin the round waits for (a TRAIN grant to the aggregator, or an earlier round's update) without one."""

    twin_id: int
    consent: TrainConsent


@dataclass(frozen=True)
class RoundStatus:
    task_id: int
    round: int
    state: str  # open, checkpointed, closed or future
    open_round: int
    aggregator_did: str
    updates: list[RoundUpdate]
    missing: list[MissingTwin]
    checkpoint: dict[str, Any] | None
    round_record: str | None
    excluded: list[dict[str, Any]]

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> RoundStatus:
        return cls(
            int(data["taskId"]),
            int(data["round"]),
            data["state"],
            int(data["openRound"]),
            data["aggregatorDid"],
            [
                RoundUpdate(int(u["twinId"]), u["digest"], int(u["numSamples"]), int(u["block"]), u["tx"], _consent(u))
                for u in data["updates"]
            ],
            [MissingTwin(int(m["twinId"]), _consent(m)) for m in data.get("missing", [])],
            data.get("checkpoint"),
            data.get("roundRecord"),
            list(data.get("excluded", [])),
        )

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class Checkpoint:
    task_id: int
    round: int
    model_digest: str
    model_cid: str
    updates_root: str
    count: int
    total_samples: int
    included: list[int]
    excluded: dict[int, str]
    record_cid: str
    tx_hash: str
    verified: bool

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Checkpoint:
        return cls(
            int(data["taskId"]),
            int(data["round"]),
            data["model"]["digest"],
            data["model"]["cid"],
            data["updatesRoot"],
            int(data["count"]),
            int(data["totalSamples"]),
            [int(u["twinId"]) for u in data["included"]],
            {int(u["twinId"]): str(u["reason"]) for u in data["excluded"]},
            data["record"],
            data["tx"],
            bool(data["verified"]),
        )

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _consent(entry: dict[str, Any]) -> TrainConsent:
    consent = entry.get("consent") or {}
    return TrainConsent(
        bool(consent.get("train")), str(consent.get("outcome", "unknown")), str(consent.get("detail", ""))
    )


class FederatedTasks:
    """The node's federated endpoints through a `Client` (its node, chain and wallet)."""

    def __init__(self, client: Client) -> None:
        self.client = client
        self._federated: FederatedLedger | None = None

    @property
    def federated(self) -> FederatedLedger:
        """The FederatedLedger the node publishes (`/v1/node`), on the RPC's chain, sending from the wallet."""
        if self._federated is None:
            address = self.client.facts.federated_ledger
            if not address:
                raise NotFound(
                    f"the node {self.client.node_url} does not publish a FederatedLedger",
                    hint="upgrade the node, or give the contracts with --deployments-dir",
                )
            chain = self.client.ledger.client  # checks the RPC is the node's chain
            if not chain.w3.eth.get_code(Web3.to_checksum_address(address)):
                raise InvalidInput(
                    f"the RPC {chain.rpc_url} has no contract at {address}, the FederatedLedger of the node "
                    f"{self.client.node_url}",
                    hint="pass the node's chain as --rpc-url (TWINLEDGER_RPC_URL)",
                )
            self._federated = FederatedLedger(chain, address)
        return self._federated

    def create_task(self, initial_model: bytes, *, purpose: str, encrypt: bool = False) -> Task:
        """Open a task the node aggregates, with `initial_model` (a tensor file) as round 1's global model; signed by
        the wallet's did:key, which must be among the node's task creators and alone may checkpoint the task."""
        response = self.client._request(
            "POST",
            "/v1/fl/tasks",
            signer=self.client.identity(),
            body=initial_model,
            params={"purpose": purpose, "encrypt": str(encrypt).lower()},
            headers={"Content-Type": TENSOR_MEDIA_TYPE},
        )
        return Task.from_json(response.json())

    def submit_update(
        self, task_id: int, round_: int, *, twin_id: int, update: bytes, num_samples: int
    ) -> SubmittedUpdate:
        """Submit twin `twin_id`'s update (a tensor file) to round `round_`, as its owner: the wallet signs the
        commit (EIP-712, a short deadline) and the request; the node checks the round, consent, shape, then relays
        it. Returns once the node has indexed the commit."""
        wallet = self.client._wallet()
        owner = self.client._owner_of(twin_id)
        if owner != wallet.address:  # the node takes updates from the owner alone (an approved account cannot sign)
            raise NotOwner(
                f"wallet {wallet.name} ({wallet.address}) does not own twin {twin_id} (owner {owner}); cannot submit "
                f"its update to task {task_id}",
                hint="submit with the twin owner's wallet (--name)",
            )
        digest = hashlib.sha256(update).digest()
        deadline = self.client.ledger.client.chain_time() + COMMIT_DEADLINE_S
        commit = self.federated.sign_commit(
            wallet.account, task_id, round_, twin_id, digest, num_samples, deadline=deadline
        )
        response = self.client._request(
            "POST",
            f"/v1/fl/tasks/{int(task_id)}/rounds/{int(round_)}/updates",
            signer=wallet.ethereum_did(self.client.node.chain_id),
            body=update,
            params={"twinId": twin_id, "numSamples": num_samples},
            headers={
                "Content-Type": TENSOR_MEDIA_TYPE,
                "Twinledger-Update-Sha256": digest.hex(),
                "Twinledger-Commit-Signature": "0x" + commit.signature.hex(),
                "Twinledger-Commit-Deadline": str(deadline),
            },
        )
        data = response.json()
        submitted = SubmittedUpdate(
            task_id, round_, twin_id, data["digest"], num_samples, data["record"], data["content"], data["tx"]
        )
        owner_did = wallet.ethereum_did(self.client.node.chain_id)
        self.client._until_indexed(
            f"the update of twin {twin_id}",
            lambda: any(u.tx_hash == submitted.tx_hash for u in self._committed(task_id, round_, owner_did)),
        )
        return submitted

    def _committed(self, task_id: int, round_: int, owner: DidSigner) -> list[RoundUpdate]:
        """The round's commits as the owner of a twin that just committed sees them; none while the node has not
        indexed that commit (until then the node does not count the owner as a participant)."""
        try:
            return self.round_status(task_id, round_, signer=owner).updates
        except AuthError:
            return []

    def round_status(self, task_id: int, round_: int | None = None, *, signer: DidSigner | None = None) -> RoundStatus:
        """Who submitted (with TRAIN consent now), who the round still waits for, and its checkpoint, if any (of the
        open round when `round_` is None); for the task's creator and owners of twins that committed to it (signed
        by the wallet's did:key, the recovery key the node knows for an owner)."""
        if round_ is None:
            round_ = chainview.task(self.federated, task_id).open_round
        response = self.client._request(
            "GET", f"/v1/fl/tasks/{int(task_id)}/rounds/{int(round_)}", signer=signer or self.client.identity()
        )
        return RoundStatus.from_json(response.json())

    def checkpoint(self, task_id: int, round_: int) -> Checkpoint:
        """Have the node aggregate the open round from the updates it holds, checkpoint it on chain and verify it
        (as the DID that opened the task). Returns once the node has indexed the checkpoint."""
        response = self.client._request(
            "POST", f"/v1/fl/tasks/{int(task_id)}/rounds/{int(round_)}/checkpoint", signer=self.client.identity()
        )
        done = Checkpoint.from_json(response.json())
        self.client._until_indexed(
            f"the checkpoint of task {task_id} round {round_}",
            lambda: self.round_status(task_id, round_).state == "checkpointed",
        )
        return done
