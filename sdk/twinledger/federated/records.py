"""The blocks that tie on-chain digests to pinned bytes, and the catalog that finds them.

Three canonical-JSON blocks (RFC 8785, stored as one raw CIDv1 block each, so a block's CID is a pure function of
its content):

* a **task record** (`twinledger/fl-task/v1`): task id, chain, contract, aggregator DID, purpose, the initial
  model's digest and CID, and whether updates are encrypted to the aggregator's did:key;
* an **update record** (`twinledger/fl-update/v1`) per committed update: task, round, twin, the committed digest
  (sha256 of the plaintext tensor file), sample count, the CID of the pinned content and, when the content is
  ciphertext, the envelope that opens it;
* a **round record** (`twinledger/fl-round/v1`) per checkpoint: the model's digest and CID, the block at which
  consent was evaluated, the included updates (twin, digest, samples, update record CID) and every committed
  update that was left out with the reason.

The chain only holds digests, so the CIDs of these blocks are kept in a **catalog**: `DirectoryCatalog` writes one
small file per entry under a directory (a shared filesystem or the node's data directory).
"""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from multiformats import CID

from twinledger.errors import IntegrityError, InvalidInput
from twinledger.ipfs import BlockStore, parse_cid
from twinledger.provenance.records import json_block, read_json_block

TASK_RECORD = "twinledger/fl-task/v1"
UPDATE_RECORD = "twinledger/fl-update/v1"
ROUND_RECORD = "twinledger/fl-round/v1"

# StandardMerkleTree leaf of an included update: (twin id, update digest, sample count).
UPDATE_LEAF_TYPES = ("uint256", "bytes32", "uint256")


def _hex(value: bytes) -> str:
    return "0x" + value.hex()


def _bytes32(value: Any, what: str) -> bytes:
    text = str(value)
    try:
        raw = bytes.fromhex(text.removeprefix("0x"))
    except ValueError:
        raw = b""
    if len(raw) != 32:
        raise IntegrityError(f"{what} {text!r} is not a 32-byte hex value")
    return raw


def pin_json(store: BlockStore, value: dict[str, Any]) -> CID:
    """Store and pin `value` as a canonical JSON block; return its CID."""
    block = json_block(value)
    store.put(block.cid, block.data)
    store.pin(block.cid)
    return block.cid


def load_json(store: BlockStore, cid: CID | str, kind: str) -> dict[str, Any]:
    """Read a canonical JSON block of record type `kind`, checked against its CID."""
    parsed = parse_cid(cid)
    value = read_json_block(parsed, store.get(parsed))
    if value.get("type") != kind:
        raise IntegrityError(f"block {parsed} is a {value.get('type')!r}, not a {kind!r} record")
    return value


@dataclass(frozen=True)
class TaskSpec:
    task_id: int
    chain_id: int
    contract: str
    aggregator_did: str
    purpose: bytes
    initial_model_digest: bytes
    initial_model_cid: str
    encrypt_updates: bool
    created_block: int
    # The account that created the task on chain (the only one that may checkpoint it); the aggregator DID's
    # signature over the record binds that DID to this account. Empty in records written before it existed.
    aggregator: str = ""

    def to_json(self) -> dict[str, Any]:
        return {
            "type": TASK_RECORD,
            "taskId": self.task_id,
            "chainId": self.chain_id,
            "contract": self.contract.lower(),
            "aggregatorDid": self.aggregator_did,
            "purpose": _hex(self.purpose),
            "initialModel": {"digest": _hex(self.initial_model_digest), "cid": self.initial_model_cid},
            "encryptUpdates": self.encrypt_updates,
            "createdBlock": self.created_block,
            "aggregator": self.aggregator,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> TaskSpec:
        try:
            return cls(
                task_id=int(data["taskId"]),
                chain_id=int(data["chainId"]),
                contract=str(data["contract"]),
                aggregator_did=str(data["aggregatorDid"]),
                purpose=_bytes32(data["purpose"], "purpose"),
                initial_model_digest=_bytes32(data["initialModel"]["digest"], "initial model digest"),
                initial_model_cid=str(data["initialModel"]["cid"]),
                encrypt_updates=bool(data["encryptUpdates"]),
                created_block=int(data["createdBlock"]),
                aggregator=str(data.get("aggregator", "")),
            )
        except (KeyError, TypeError, ValueError) as error:
            raise IntegrityError(f"malformed task record: {error!r}") from None


@dataclass(frozen=True)
class UpdateRecord:
    task_id: int
    round: int
    twin_id: int
    digest: bytes
    num_samples: int
    content_cid: str
    envelope: dict[str, Any] | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "type": UPDATE_RECORD,
            "taskId": self.task_id,
            "round": self.round,
            "twinId": self.twin_id,
            "digest": _hex(self.digest),
            "numSamples": self.num_samples,
            "content": self.content_cid,
            "envelope": self.envelope,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> UpdateRecord:
        try:
            envelope = data["envelope"]
            return cls(
                task_id=int(data["taskId"]),
                round=int(data["round"]),
                twin_id=int(data["twinId"]),
                digest=_bytes32(data["digest"], "update digest"),
                num_samples=int(data["numSamples"]),
                content_cid=str(data["content"]),
                envelope=dict(envelope) if envelope is not None else None,
            )
        except (KeyError, TypeError, ValueError) as error:
            raise IntegrityError(f"malformed update record: {error!r}") from None


@dataclass(frozen=True)
class IncludedUpdate:
    twin_id: int
    digest: bytes
    num_samples: int
    record_cid: str

    @property
    def leaf(self) -> tuple[int, bytes, int]:
        return (self.twin_id, self.digest, self.num_samples)


@dataclass(frozen=True)
class ExcludedUpdate:
    twin_id: int
    digest: bytes
    num_samples: int
    reason: str
    record_cid: str | None = None


@dataclass(frozen=True)
class RoundRecord:
    task_id: int
    round: int
    model_digest: bytes
    model_cid: str
    consent_block: int
    updates_root: bytes
    total_samples: int
    included: list[IncludedUpdate] = field(default_factory=list)
    excluded: list[ExcludedUpdate] = field(default_factory=list)

    @property
    def count(self) -> int:
        return len(self.included)

    def to_json(self) -> dict[str, Any]:
        return {
            "type": ROUND_RECORD,
            "taskId": self.task_id,
            "round": self.round,
            "model": {"digest": _hex(self.model_digest), "cid": self.model_cid},
            "consentBlock": self.consent_block,
            "updatesRoot": _hex(self.updates_root),
            "leafEncoding": list(UPDATE_LEAF_TYPES),
            "count": self.count,
            "totalSamples": self.total_samples,
            "included": [
                {"twinId": u.twin_id, "digest": _hex(u.digest), "numSamples": u.num_samples, "record": u.record_cid}
                for u in self.included
            ],
            "excluded": [
                {
                    "twinId": u.twin_id,
                    "digest": _hex(u.digest),
                    "numSamples": u.num_samples,
                    "reason": u.reason,
                    "record": u.record_cid,
                }
                for u in self.excluded
            ],
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> RoundRecord:
        try:
            return cls(
                task_id=int(data["taskId"]),
                round=int(data["round"]),
                model_digest=_bytes32(data["model"]["digest"], "model digest"),
                model_cid=str(data["model"]["cid"]),
                consent_block=int(data["consentBlock"]),
                updates_root=_bytes32(data["updatesRoot"], "updates root"),
                total_samples=int(data["totalSamples"]),
                included=[
                    IncludedUpdate(
                        int(u["twinId"]), _bytes32(u["digest"], "update digest"), int(u["numSamples"]), str(u["record"])
                    )
                    for u in data["included"]
                ],
                excluded=[
                    ExcludedUpdate(
                        int(u["twinId"]),
                        _bytes32(u["digest"], "update digest"),
                        int(u["numSamples"]),
                        str(u["reason"]),
                        None if u.get("record") is None else str(u["record"]),
                    )
                    for u in data["excluded"]
                ],
            )
        except (KeyError, TypeError, ValueError) as error:
            raise IntegrityError(f"malformed round record: {error!r}") from None


class Catalog(Protocol):
    """Where the CIDs of task, update and round records are announced and found."""

    def put_task(self, task_id: int, cid: CID) -> None: ...
    def task(self, task_id: int) -> CID | None: ...
    def put_update(self, task_id: int, round_: int, twin_id: int, digest: bytes, cid: CID) -> None: ...
    def update(self, task_id: int, round_: int, twin_id: int, digest: bytes) -> CID | None: ...
    def put_round(self, task_id: int, round_: int, cid: CID) -> None: ...
    def round(self, task_id: int, round_: int) -> CID | None: ...


class DirectoryCatalog:
    """A Catalog kept as one file per entry under `root/<chainId>-<contract>/`; writes are atomic renames."""

    def __init__(self, root: Path, chain_id: int, contract: str) -> None:
        self.root = Path(root) / f"{chain_id}-{contract.lower()}"

    def _write(self, relative: str, cid: CID) -> None:
        path = self.root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".tmp")
        with os.fdopen(fd, "w") as out:
            out.write(str(cid))
        os.replace(tmp, path)

    def _read(self, relative: str) -> CID | None:
        path = self.root / relative
        if not path.exists():
            return None
        try:
            return parse_cid(path.read_text().strip())
        except InvalidInput:
            raise IntegrityError(f"catalog entry {path} does not hold a CID", hint="remove it; re-announce") from None

    def put_task(self, task_id: int, cid: CID) -> None:
        self._write(f"tasks/{task_id}.cid", cid)

    def task(self, task_id: int) -> CID | None:
        return self._read(f"tasks/{task_id}.cid")

    def put_update(self, task_id: int, round_: int, twin_id: int, digest: bytes, cid: CID) -> None:
        self._write(f"updates/{task_id}/{round_}/{twin_id}-{digest.hex()}.cid", cid)

    def update(self, task_id: int, round_: int, twin_id: int, digest: bytes) -> CID | None:
        return self._read(f"updates/{task_id}/{round_}/{twin_id}-{digest.hex()}.cid")

    def put_round(self, task_id: int, round_: int, cid: CID) -> None:
        self._write(f"rounds/{task_id}/{round_}.cid", cid)

    def round(self, task_id: int, round_: int) -> CID | None:
        return self._read(f"rounds/{task_id}/{round_}.cid")
