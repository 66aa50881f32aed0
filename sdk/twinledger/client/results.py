"""Typed results of the SDK's calls."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from twinledger.profile import ChainFacts


@dataclass(frozen=True)
class NodeInfo:
    """What a node says of itself (`/v1/node`)."""

    url: str
    did: str
    chain_id: int
    twin_ledger: str
    relayer: str | None
    federated_ledger: str | None = None
    deploy_block: int = 0
    rpc_url: str | None = None  # published for clients: the operator's public RPC, or the local anvil's

    @classmethod
    def from_json(cls, url: str, data: dict[str, Any]) -> NodeInfo:
        return cls(
            url, data["did"], int(data["chainId"]), data["twinLedger"], data.get("relayer"),
            data.get("federatedLedger"), int(data.get("deployBlock") or 0), data.get("rpcUrl"),
        )  # fmt: skip

    @property
    def facts(self) -> ChainFacts:
        return ChainFacts(self.chain_id, self.twin_ledger, self.federated_ledger, self.deploy_block, self.rpc_url)


@dataclass(frozen=True)
class Twin:
    twin_id: int
    owner: str
    kind: str
    parent_id: int
    device_did: str | None
    anchored_seq: int | None  # the last snapshot anchored on chain; None when not told (unsigned, or not allowed)
    tx_hash: str | None = None
    latest_seq: int | None = None  # the last snapshot stored, told as anchored_seq is

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class Anchor:
    batch_root: str | None
    proof: list[str] | None
    tx: str | None

    @property
    def anchored(self) -> bool:
        return self.tx is not None and self.batch_root is not None and self.proof is not None


@dataclass(frozen=True)
class Snapshot:
    """A stored snapshot's metadata (no content)."""

    twin_id: int
    seq: int
    manifest_cid: str
    content_cid: str
    size: int
    sha256: str
    created: int
    anchor: Anchor

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Snapshot:
        a = data.get("anchor") or {}
        return cls(
            int(data["twinId"]),
            int(data["seq"]),
            data["manifestCid"],
            data["contentCid"],
            int(data["size"]),
            data["sha256"],
            int(data["created"]),
            Anchor(a.get("batchRoot"), a.get("proof"), a.get("tx")),
        )

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class Verification:
    """What `fetch_snapshot` checked before returning the data."""

    plaintext_sha256: str
    manifest_cid: str
    producer: str
    node: str
    anchored: bool
    batch_root: str | None
    anchor_tx: str | None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class FetchedSnapshot:
    seq: int
    size: int
    manifest: dict[str, Any]
    verification: Verification
    data: bytes | None = None  # None when written to a file or stream

    def as_dict(self) -> dict[str, Any]:
        return {
            "seq": self.seq,
            "size": self.size,
            "manifestCid": self.verification.manifest_cid,
            "verification": self.verification.as_dict(),
        }


@dataclass(frozen=True)
class Grant:
    twin_id: int
    did: str
    purpose: str
    scopes: list[str]
    expiry: int
    grantor: str
    live: bool
    tx_hash: str
    revoked_tx: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class ConsentResult:
    """A grant or revocation that landed on chain, sent directly or through the node's relayer."""

    action: str
    twin_id: int
    did: str
    purpose: str
    scopes: list[str]
    expiry: int
    tx_hash: str
    block_number: int
    relayed: bool
    indexed: bool = True  # the node had indexed it on return; False: the node was unreachable (it will, from the chain)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class AuditEntry:
    kind: str
    time: int
    data: dict[str, Any]
    proof: dict[str, Any]
    event: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class TxOutcome:
    tx_hash: str
    block_number: int
    details: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)
