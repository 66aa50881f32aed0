"""Typed bindings of the deployed contracts: TwinLedger (twins, anchors, consent) and FederatedLedger."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from eth_account import Account
from eth_account.messages import encode_typed_data
from eth_account.signers.local import LocalAccount
from web3 import Web3

from twinledger.chain.client import ChainClient, ChainEvent, EventDecoder, TxResult
from twinledger.chain.types import BatchKind, Scope, TwinKind, purpose_code
from twinledger.errors import InvalidInput
from twinledger.identity.did import canonical_did, did_hash

ZERO32 = b"\x00" * 32
EIP712_NAME = "twinledger"
EIP712_VERSION = "1"
GRANT_TYPES = {
    "Grant": [
        {"name": "twinId", "type": "uint256"},
        {"name": "did", "type": "string"},
        {"name": "purpose", "type": "bytes32"},
        {"name": "scopes", "type": "uint8"},
        {"name": "expiry", "type": "uint64"},
        {"name": "nonce", "type": "uint256"},
        {"name": "deadline", "type": "uint256"},
    ]
}
COMMIT_DOMAIN_NAME = "twinledger-federated"
COMMIT_TYPES = {
    "Commit": [
        {"name": "taskId", "type": "uint256"},
        {"name": "round", "type": "uint256"},
        {"name": "twinId", "type": "uint256"},
        {"name": "updateDigest", "type": "bytes32"},
        {"name": "numSamples", "type": "uint256"},
        {"name": "deadline", "type": "uint256"},
    ]
}
REVOKE_TYPES = {
    "Revoke": [
        {"name": "twinId", "type": "uint256"},
        {"name": "did", "type": "string"},
        {"name": "purpose", "type": "bytes32"},
        {"name": "nonce", "type": "uint256"},
        {"name": "deadline", "type": "uint256"},
    ]
}


@dataclass(frozen=True)
class TwinRecord:
    twin_id: int
    owner: str
    parent_id: int
    kind: TwinKind
    head_seq: int
    period: int  # the ownership period: 0 from the mint, one more with every transfer


@dataclass(frozen=True)
class GrantRecord:
    twin_id: int
    did_hash: bytes
    purpose: bytes
    grantor: str
    scopes: Scope
    expiry: int
    granted_at: int
    period: int  # the twin's ownership period the grant belongs to: live only while the twin is in it

    @property
    def exists(self) -> bool:
        return self.grantor != "0x0000000000000000000000000000000000000000"


@dataclass(frozen=True)
class GrantRequest:
    """One grant: who (DID), which twin, for what purpose, which scopes, until when (unix seconds)."""

    twin_id: int
    did: str
    purpose: bytes
    scopes: Scope
    expiry: int

    @classmethod
    def of(cls, twin_id: int, did: str, purpose: str | bytes, scopes: Scope | str | int, expiry: int) -> GrantRequest:
        return cls(int(twin_id), canonical_did(did), purpose_code(purpose), Scope.parse(scopes), int(expiry))

    def as_tuple(self) -> tuple[int, str, bytes, int, int]:
        return (self.twin_id, self.did, self.purpose, int(self.scopes), self.expiry)


@dataclass(frozen=True)
class SignedCommit:
    """An update commit signed by the twin's owner (EIP-712 `Commit`), ready for anyone to relay."""

    task_id: int
    round: int
    twin_id: int
    update_digest: bytes
    num_samples: int
    deadline: int
    signature: bytes

    def message(self) -> dict[str, Any]:
        """The EIP-712 `Commit` message."""
        return {
            "taskId": self.task_id, "round": self.round, "twinId": self.twin_id, "updateDigest": self.update_digest,
            "numSamples": self.num_samples, "deadline": self.deadline,
        }  # fmt: skip

    def as_tuple(self) -> tuple[int, int, int, bytes, int, int, bytes]:
        return (
            self.task_id, self.round, self.twin_id, self.update_digest, self.num_samples, self.deadline,
            self.signature,
        )  # fmt: skip


@dataclass(frozen=True)
class SignedConsent:
    """An EIP-712 grant or revocation signed by the twin's owner, ready for anyone to submit."""

    action: str  # "grant" | "revoke"
    twin_id: int
    did: str
    purpose: bytes
    scopes: Scope
    expiry: int
    nonce: int
    deadline: int
    signature: bytes
    signer: str

    def as_json(self) -> dict[str, Any]:
        return {
            "action": self.action,
            "twinId": self.twin_id,
            "did": self.did,
            "purpose": "0x" + self.purpose.hex(),
            "scopes": int(self.scopes),
            "expiry": self.expiry,
            "nonce": self.nonce,
            "deadline": self.deadline,
            "signature": "0x" + self.signature.hex(),
            "signer": self.signer,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> SignedConsent:
        return cls(
            action=str(data["action"]),
            twin_id=int(data["twinId"]),
            did=str(data["did"]),
            purpose=purpose_code(str(data["purpose"])),
            scopes=Scope(int(data.get("scopes", 0))),
            expiry=int(data.get("expiry", 0)),
            nonce=int(data["nonce"]),
            deadline=int(data["deadline"]),
            signature=bytes.fromhex(str(data["signature"]).removeprefix("0x")),
            signer=str(data.get("signer", "")),
        )


ZERO_ADDRESS = "0x" + "0" * 40


def recipient_address(text: str) -> str:
    """`text` as a checksummed address; a mixed-case address must carry a valid EIP-55 checksum (one mistyped
    character fails it; all-lowercase or all-uppercase carries none, as EIP-55 allows)."""
    from eth_utils import is_checksum_address, is_hex_address

    if not is_hex_address(text):
        raise InvalidInput(f"{text!r} is not an Ethereum address", hint="an address is 0x and 40 hex digits")
    body = text[2:]
    if body != body.lower() and body != body.upper() and not is_checksum_address(text):
        raise InvalidInput(
            f"{text} fails its EIP-55 checksum: one of its characters is likely mistyped",
            hint="copy the address again from its owner (an all-lowercase address skips the check)",
        )
    return str(Web3.to_checksum_address(text))


class TwinLedger:
    """Bindings of the TwinLedger contract: twin registry, snapshot/batch anchors and consent registry."""

    def __init__(self, client: ChainClient, address: str) -> None:
        self.client = client
        self.contract = client.contract("TwinLedger", address)
        self.address = str(self.contract.address)
        self.events = EventDecoder([self.contract])

    def _send(self, fn: Any) -> TxResult:
        return self.client.send(fn, self.events)

    # ------------------------------------------------------------------ twins

    def register(
        self,
        kind: TwinKind | str | int,
        *,
        parent_id: int = 0,
        metadata_digest: bytes = ZERO32,
        device_did: str = "",
    ) -> tuple[int, TxResult]:
        """Mint a twin to the sending account; returns the new twin id."""
        device = canonical_did(device_did) if device_did else ""
        fn = self.contract.functions.register(int(TwinKind.parse(kind)), parent_id, metadata_digest, device)
        result = self._send(fn)
        return int(result.event("TwinRegistered").args["twinId"]), result

    def bind_device(self, twin_id: int, device_did: str) -> TxResult:
        return self._send(self.contract.functions.bindDevice(twin_id, canonical_did(device_did) if device_did else ""))

    def set_parent(self, twin_id: int, parent_id: int) -> TxResult:
        return self._send(self.contract.functions.setParent(twin_id, parent_id))

    def check_recipient(self, twin_id: int, to: str) -> tuple[str, str]:
        """(owner, `to` checksummed), refusing what would lose the twin: a mistyped address (a mixed-case one whose
        EIP-55 checksum fails), the zero address, the owner itself."""
        owner = self.owner_of(twin_id)
        to = recipient_address(to)
        if to == ZERO_ADDRESS:
            raise InvalidInput(f"{to} is the zero address: a twin sent there is burnt, never owned again",
                               hint="name the new owner's address")  # fmt: skip
        if to.lower() == owner.lower():
            raise InvalidInput(f"{to} already owns twin {twin_id}", hint="name the new owner's address")
        return owner, to

    def transfer(self, twin_id: int, to: str, *, safe: bool = True) -> TxResult:
        """Transfer the twin to `to`, once `check_recipient` let it."""
        owner, to = self.check_recipient(twin_id, to)
        fn = (
            self.contract.functions.safeTransferFrom(owner, to, twin_id)
            if safe
            else self.contract.functions.transferFrom(owner, to, twin_id)
        )
        return self._send(fn)

    def approve(self, to: str, twin_id: int) -> TxResult:
        return self._send(self.contract.functions.approve(Web3.to_checksum_address(to), twin_id))

    def set_approval_for_all(self, operator: str, approved: bool) -> TxResult:
        return self._send(self.contract.functions.setApprovalForAll(Web3.to_checksum_address(operator), approved))

    def twin(self, twin_id: int) -> TwinRecord:
        owner, parent, kind, head, period = self.client.call(self.contract.functions.twinOf(twin_id))
        return TwinRecord(twin_id, str(owner), int(parent), TwinKind(kind), int(head), int(period))

    def owner_of(self, twin_id: int) -> str:
        return str(self.client.call(self.contract.functions.ownerOf(twin_id)))

    def balance_of(self, owner: str) -> int:
        return int(self.client.call(self.contract.functions.balanceOf(Web3.to_checksum_address(owner))))

    def is_controller(self, twin_id: int, account: str) -> bool:
        return bool(self.client.call(self.contract.functions.isController(twin_id, Web3.to_checksum_address(account))))

    def total_twins(self) -> int:
        return int(self.client.call(self.contract.functions.totalTwins()))

    # ------------------------------------------------------------------ anchors

    def anchor_snapshot(self, twin_id: int, seq: int, manifest_digest: bytes) -> TxResult:
        return self._send(self.contract.functions.anchorSnapshot(twin_id, seq, manifest_digest))

    def anchor_batch(self, kind: BatchKind, root: bytes, count: int, leaves_cid: str) -> TxResult:
        return self._send(self.contract.functions.anchorBatch(int(kind), root, count, leaves_cid))

    def batch_of(self, anchorer: str, root: bytes) -> tuple[int, BatchKind, int]:
        """When `anchorer` anchored `root` (0: it did not), of which kind, with how many leaves. Anyone may anchor
        any root; only the anchorer named by the signed records says anything about them."""
        fn = self.contract.functions.batchOf(Web3.to_checksum_address(anchorer), root)
        at, kind, count = self.client.call(fn)
        return int(at), BatchKind(kind), int(count)

    # ------------------------------------------------------------------ consent

    def grant(self, request: GrantRequest) -> TxResult:
        return self._send(self.contract.functions.grant(*request.as_tuple()))

    def revoke(self, twin_id: int, did: str, purpose: str | bytes) -> TxResult:
        return self._send(self.contract.functions.revoke(twin_id, did_hash(did), purpose_code(purpose)))

    def grant_batch(self, requests: Sequence[GrantRequest]) -> TxResult:
        return self._send(self.contract.functions.grantBatch([r.as_tuple() for r in requests]))

    def revoke_batch(self, items: Sequence[tuple[int, str, str | bytes]]) -> TxResult:
        rows = [(t, did_hash(d), purpose_code(p)) for t, d, p in items]
        return self._send(self.contract.functions.revokeBatch(rows))

    def is_authorized(self, twin_id: int, did: str, purpose: str | bytes, scope: Scope | str | int) -> bool:
        fn = self.contract.functions.isAuthorized(
            twin_id, did_hash(did), purpose_code(purpose), int(Scope.parse(scope))
        )
        return bool(self.client.call(fn))

    def grant_of(self, twin_id: int, did: str, purpose: str | bytes) -> GrantRecord:
        key, code = did_hash(did), purpose_code(purpose)
        grantor, scopes, expiry, granted_at, period = self.client.call(
            self.contract.functions.grantOf(twin_id, key, code)
        )
        return GrantRecord(twin_id, key, code, str(grantor), Scope(scopes), int(expiry), int(granted_at), int(period))

    def nonce_of(self, owner: str) -> int:
        return int(self.client.call(self.contract.functions.nonces(Web3.to_checksum_address(owner))))

    # ------------------------------------------------------------------ consent by signature

    def domain(self) -> dict[str, Any]:
        return {
            "name": EIP712_NAME,
            "version": EIP712_VERSION,
            "chainId": self.client.chain_id,
            "verifyingContract": self.address,
        }

    def sign_grant(
        self, owner: LocalAccount, request: GrantRequest, *, deadline: int, nonce: int | None = None
    ) -> SignedConsent:
        """The owner's EIP-712 signature over a grant; anyone (e.g. the node's relayer) may submit it."""
        nonce = self.nonce_of(owner.address) if nonce is None else nonce
        message = {
            "twinId": request.twin_id,
            "did": request.did,
            "purpose": request.purpose,
            "scopes": int(request.scopes),
            "expiry": request.expiry,
            "nonce": nonce,
            "deadline": deadline,
        }
        signature = owner.sign_typed_data(self.domain(), GRANT_TYPES, message).signature
        return SignedConsent(
            "grant", request.twin_id, request.did, request.purpose, request.scopes, request.expiry,
            nonce, deadline, bytes(signature), str(owner.address),
        )  # fmt: skip

    def sign_revoke(
        self, owner: LocalAccount, twin_id: int, did: str, purpose: str | bytes, *, deadline: int,
        nonce: int | None = None,
    ) -> SignedConsent:  # fmt: skip
        nonce = self.nonce_of(owner.address) if nonce is None else nonce
        code, did = purpose_code(purpose), canonical_did(did)
        message = {"twinId": twin_id, "did": did, "purpose": code, "nonce": nonce, "deadline": deadline}
        signature = owner.sign_typed_data(self.domain(), REVOKE_TYPES, message).signature
        return SignedConsent(
            "revoke", twin_id, did, code, Scope(0), 0, nonce, deadline, bytes(signature), str(owner.address)
        )

    def submit_signed(self, consent: SignedConsent) -> TxResult:
        """Submit a signed grant or revocation from the client's account (which pays the gas)."""
        if consent.action == "grant":
            request = (consent.twin_id, consent.did, consent.purpose, int(consent.scopes), consent.expiry)
            fn = self.contract.functions.grantBySig(request, consent.nonce, consent.deadline, consent.signature)
        else:
            fn = self.contract.functions.revokeBySig(
                consent.twin_id,
                consent.did,
                consent.purpose,
                consent.nonce,
                consent.deadline,
                consent.signature,
            )
        return self._send(fn)


class OnChainGrants:
    """`GrantLookup` for consent-receipt verification, answered by the contract itself (isAuthorized)."""

    def __init__(self, ledger: TwinLedger) -> None:
        self.ledger = ledger

    def is_authorized(self, twin_id: int, did_hash: bytes, purpose: bytes, scope: int) -> bool:
        fn = self.ledger.contract.functions.isAuthorized(twin_id, did_hash, purpose, int(scope))
        return bool(self.ledger.client.call(fn))


@dataclass(frozen=True)
class TaskRecord:
    task_id: int
    aggregator: str
    open_round: int
    closed: bool
    aggregator_did_hash: bytes
    purpose: bytes


class FederatedLedger:
    """Bindings of the FederatedLedger contract."""

    def __init__(self, client: ChainClient, address: str) -> None:
        self.client = client
        self.contract = client.contract("FederatedLedger", address)
        self.address = str(self.contract.address)
        self.events = EventDecoder([self.contract])

    def _send(self, fn: Any) -> TxResult:
        return self.client.send(fn, self.events)

    def ledger_address(self) -> str:
        return str(self.client.call(self.contract.functions.ledger()))

    def create_task(
        self, aggregator_did: str, purpose: str | bytes, initial_model_digest: bytes
    ) -> tuple[int, TxResult]:
        result = self._send(
            self.contract.functions.createTask(aggregator_did, purpose_code(purpose), initial_model_digest)
        )
        return int(result.event("TaskCreated").args["taskId"]), result

    def commit_update(
        self, task_id: int, round_: int, twin_id: int, update_digest: bytes, num_samples: int
    ) -> TxResult:
        return self._send(self.contract.functions.commitUpdate(task_id, round_, twin_id, update_digest, num_samples))

    def domain(self) -> dict[str, Any]:
        return {
            "name": COMMIT_DOMAIN_NAME,
            "version": EIP712_VERSION,
            "chainId": self.client.chain_id,
            "verifyingContract": self.address,
        }

    def sign_commit(
        self, owner: LocalAccount, task_id: int, round_: int, twin_id: int, digest: bytes, samples: int, *,
        deadline: int,
    ) -> SignedCommit:  # fmt: skip
        """The twin owner's EIP-712 signature over one update commit; anyone (e.g. the node) may relay it, and the
        relayer gains no power over the twin (no ERC-721 approval is involved). A relayed commit can be replayed
        until `deadline` in its round, so keep deadlines short."""
        unsigned = SignedCommit(task_id, round_, twin_id, bytes(digest), samples, deadline, b"")
        signature = owner.sign_typed_data(self.domain(), COMMIT_TYPES, unsigned.message()).signature
        return SignedCommit(task_id, round_, twin_id, bytes(digest), samples, deadline, bytes(signature))

    def commit_update_by_sig(self, commit: SignedCommit) -> TxResult:
        """Relay an owner-signed commit (this client's account pays the gas)."""
        return self._send(self.contract.functions.commitUpdateBySig(*commit.as_tuple()))

    def checkpoint(
        self,
        task_id: int,
        round_: int,
        model_digest: bytes,
        updates_root: bytes,
        count: int,
        total_samples: int,
    ) -> TxResult:
        fn = self.contract.functions.checkpoint(task_id, round_, model_digest, updates_root, count, total_samples)
        return self._send(fn)

    def close_task(self, task_id: int) -> TxResult:
        return self._send(self.contract.functions.closeTask(task_id))

    def task(self, task_id: int) -> TaskRecord:
        aggregator, open_round, closed, did_hash, purpose = self.client.call(self.contract.functions.taskOf(task_id))
        return TaskRecord(task_id, str(aggregator), int(open_round), bool(closed), bytes(did_hash), bytes(purpose))


def recover_commit_signer(federated: FederatedLedger, commit: SignedCommit) -> str:
    """The EOA that signed `commit` (a contract wallet's ERC-1271 signature is for the chain to check)."""
    try:
        encoded = encode_typed_data(federated.domain(), COMMIT_TYPES, commit.message())
        return str(Account.recover_message(encoded, signature=commit.signature))
    except Exception:  # a malformed signature recovers no one
        return "0x0000000000000000000000000000000000000000"


def all_events(ledger: TwinLedger, federated: FederatedLedger | None = None) -> EventDecoder:
    """One decoder for every event of the deployed contracts (what the node's indexer reads)."""
    return EventDecoder([ledger.contract] + ([federated.contract] if federated else []))


__all__ = [
    "ChainEvent",
    "FederatedLedger",
    "GrantRecord",
    "GrantRequest",
    "OnChainGrants",
    "SignedCommit",
    "SignedConsent",
    "TaskRecord",
    "TwinLedger",
    "TwinRecord",
    "all_events",
    "recover_commit_signer",
]
