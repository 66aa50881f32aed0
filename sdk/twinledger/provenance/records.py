"""Canonical JSON blocks and the Merkle leaves of snapshots and access receipts.

A manifest or receipt is stored as one raw IPFS block holding its RFC 8785 (JCS) bytes, so its CID (v1, raw,
sha2-256) is a pure function of its content and the sha256 digest inside that CID is what goes on chain.
"""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import dataclass
from typing import Any

from eth_account import Account
from eth_account.messages import encode_defunct
from eth_account.signers.local import LocalAccount
from multiformats import CID

from twinledger.errors import IntegrityError
from twinledger.identity.records import canonical_json
from twinledger.ipfs.cids import block_cid, to_cid, verify_block

RAW = 0x55
# StandardMerkleTree leaf encodings of what batches anchor.
SNAPSHOT_LEAF_TYPES = ("uint256", "uint256", "bytes32")  # twin id, sequence number, manifest digest
RECEIPT_LEAF_TYPES = ("uint256", "bytes32")  # twin id, receipt digest
# What a twin's first access receipt names as `previous`; each later one names the digest of the twin's receipt
# before it.
RECEIPT_GENESIS = "0x" + "00" * 32
# A refused read's node-signed record (services/denials.py in the node): it joins the same per-twin chain as the
# access receipts (`previous`), and is anchored as a receipt leaf, so a twin's log holds who was refused as well as
# who was served.
DENIAL_TYPE = "twinledger/access-denial"


@dataclass(frozen=True)
class JsonBlock:
    cid: CID
    data: bytes

    @property
    def digest(self) -> bytes:
        """sha256 of the canonical bytes: the multihash digest inside the CID, anchored as bytes32."""
        return hashlib.sha256(self.data).digest()


def json_block(value: Any) -> JsonBlock:
    data = canonical_json(value)
    return JsonBlock(to_cid(block_cid(data, codec=RAW, version=1)), data)


def read_json_block(cid: CID, data: bytes) -> dict[str, Any]:
    """Parse a canonical JSON block after checking it hashes to `cid` and is in canonical form."""
    verify_block(cid, data)
    value = json.loads(data)
    if canonical_json(value) != data:
        raise IntegrityError(f"block {cid} is not canonical JSON (RFC 8785)")
    if not isinstance(value, dict):
        raise IntegrityError(f"block {cid} does not hold a JSON object")
    return value


def snapshot_leaf(twin_id: int, seq: int, manifest_digest: bytes) -> tuple[int, int, bytes]:
    return (int(twin_id), int(seq), bytes(manifest_digest))


def receipt_digest(receipt: dict[str, Any]) -> bytes:
    return hashlib.sha256(canonical_json(receipt)).digest()


def receipt_leaf(twin_id: int, digest: bytes) -> tuple[int, bytes]:
    return (int(twin_id), bytes(digest))


def recovery_key_message(address: str, did: str, chain_id: int, issued: int) -> str:
    """What an owner signs (EIP-191) to name the did:key their snapshots are sealed to, as of `issued` (Unix
    seconds): a node keeps the latest binding it was given and refuses older ones, so a binding the owner rotated
    away from cannot be sent again."""
    return f"twinledger: seal my twins' snapshots on chain {chain_id} to {did} (owner {address}, issued {issued})"


def recovery_key_binding(
    account: LocalAccount, did: str, chain_id: int, *, issued: int | None = None
) -> dict[str, str | int]:
    """The body of `PUT /v1/owners/recovery-key`: the owner's address, when the binding was issued (now, unless
    given) and the address's signature of the binding.

    Send it in a request signed by `did` (the recovery did:key), so both keys vouch for the binding.
    """
    issued = int(time.time()) if issued is None else int(issued)
    message = recovery_key_message(account.address, did, chain_id, issued)
    signature = Account.sign_message(encode_defunct(text=message), account.key).signature
    return {"address": str(account.address), "issued": issued, "signature": "0x" + bytes(signature).hex()}
