"""The individual checks behind `fetch_snapshot` and `twinledger verify`. Each returns what it established or
raises VerificationFailed naming the first thing that did not match."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
from collections.abc import Coroutine, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar
from urllib.parse import urlsplit

import http_sf
from multiformats import CID
from web3 import Web3

from twinledger.chain.ledger import TwinLedger
from twinledger.chain.types import BatchKind
from twinledger.errors import IntegrityError, TwinledgerError
from twinledger.identity import canonical_did, content_digest, verify_record, verify_request, verify_request_signature
from twinledger.merkle import leaf_hash, verify
from twinledger.provenance import RECEIPT_LEAF_TYPES, SNAPSHOT_LEAF_TYPES, read_json_block

MANIFEST_TYPE = "twinledger/snapshot-manifest"
RECEIPT_TYPE = "twinledger/access-receipt"
ZERO_ADDRESS = "0x0000000000000000000000000000000000000000"
T = TypeVar("T")


class VerificationFailed(IntegrityError):
    """Something the node served does not match its signature, hash link or on-chain anchor."""


def run(coro: Coroutine[Any, Any, T]) -> T:
    """Run a coroutine from sync code (the identity checks are async: DID resolution goes through didkit)."""
    return asyncio.run(coro)


def _fail(message: str, hint: str | None = None) -> VerificationFailed:
    return VerificationFailed(message, hint=hint or "do not trust this data; report it to the node's operator")


def read_manifest(cid: CID, data: bytes, *, twin_id: int, chain_id: int, registry: str) -> dict[str, Any]:
    """Parse a manifest block (its bytes must hash to `cid`) and check it belongs to this twin, chain and registry."""
    try:
        manifest = read_json_block(cid, data)
    except TwinledgerError as error:
        raise _fail(f"manifest {cid}: {error.message}") from None
    if manifest.get("type") != MANIFEST_TYPE:
        raise _fail(f"block {cid} is not a snapshot manifest (type {manifest.get('type')!r})")
    if manifest.get("twinId") != twin_id:
        raise _fail(f"manifest {cid} is for twin {manifest.get('twinId')}, not twin {twin_id}")
    if manifest.get("chainId") != chain_id or str(manifest.get("registry", "")).lower() != registry.lower():
        raise _fail(
            f"manifest {cid} names chain {manifest.get('chainId')} / registry {manifest.get('registry')}, "
            f"not chain {chain_id} / {registry}"
        )
    return manifest


async def check_node_signature(record: dict[str, Any], what: str) -> str:
    """The record's `proof` (the node's signature); returns the signer DID."""
    try:
        return (await verify_record(record)).signer
    except TwinledgerError as error:
        raise _fail(f"{what}: the node's signature does not verify: {error.message}") from None


def _sha256_member(digest_header: str) -> bytes | None:
    try:
        parsed = http_sf.parse(digest_header.encode("ascii"), tltype="dictionary")
    except Exception:  # any unparsable header is a mismatch, reported by the caller
        return None
    member = parsed.get("sha-256") if isinstance(parsed, dict) else None
    return member[0] if isinstance(member, tuple) and isinstance(member[0], bytes) else None


async def check_producer(manifest: dict[str, Any], what: str) -> str:
    """The producer's own RFC 9421 signature of the push: by the DID the manifest names, over POST to this twin's
    snapshots, with a content digest equal to the manifest's plaintext sha256. Returns the producer DID."""
    producer = manifest.get("producer") or {}
    request = producer.get("request") or {}
    try:
        headers = {
            "signature-input": request["signatureInput"],
            "signature": request["signature"],
            "content-digest": request["contentDigest"],
        }
        verified = await verify_request_signature(
            request["method"], request["target"], headers, now=int(manifest["created"])
        )
    except KeyError as missing:
        raise _fail(f"{what}: the producer's request lacks {missing}") from None
    except TwinledgerError as error:
        raise _fail(f"{what}: the producer's signature does not verify: {error.message}") from None
    if verified.did != canonical_did(str(producer.get("did", ""))):
        raise _fail(f"{what}: signed by {verified.did}, but the manifest names {producer.get('did')} as producer")
    path = urlsplit(request["target"]).path.rstrip("/")
    if request["method"] != "POST" or not path.endswith(f"/v1/twins/{manifest['twinId']}/snapshots"):
        raise _fail(f"{what}: the producer signed {request['method']} {path}, not a push to twin {manifest['twinId']}")
    signed_digest = _sha256_member(verified.content_digest)
    if signed_digest is None or signed_digest.hex() != manifest["plaintext"]["sha256"]:
        raise _fail(f"{what}: the plaintext sha256 in the manifest is not the digest the producer signed")
    return verified.did


def check_plaintext(manifest: dict[str, Any], sha256: bytes, size: int, what: str) -> None:
    expected = manifest["plaintext"]
    if not hmac.compare_digest(sha256.hex(), expected["sha256"]) or size != expected["size"]:
        raise _fail(
            f"{what}: the plaintext served (sha256 {sha256.hex()[:16]}…, {size} bytes) is not the one the "
            f"manifest names (sha256 {expected['sha256'][:16]}…, {expected['size']} bytes)"
        )


@dataclass(frozen=True)
class AnchorCheck:
    root: str
    anchorer: str
    anchored_at: int


def record_anchorer(record: dict[str, Any], what: str) -> str:
    """The chain account a node-signed manifest or receipt names as the anchorer of its batch (EIP-55).

    Anyone may anchor any root, each under their own account, so an anchor only counts when it is by the account
    that the node, by signing the record, said anchors for it; this field is that binding of node DID to account.
    """
    anchorer = record.get("anchorer")
    if not isinstance(anchorer, str) or not Web3.is_address(anchorer) or anchorer.lower() == ZERO_ADDRESS:
        raise _fail(f"{what}: the node-signed record names no anchoring account (anchorer {anchorer!r})")
    return str(Web3.to_checksum_address(anchorer))


def check_anchor(
    ledger: TwinLedger,
    kind: BatchKind,
    leaf: Sequence[Any],
    root: str,
    proof: Sequence[str],
    what: str,
    *,
    anchorer: str,
    seen: dict[tuple[str, bytes], AnchorCheck] | None = None,
) -> AnchorCheck:
    """The leaf with its Merkle proof reaches `root`, and `anchorer` (the account the signed record names) has
    `root` anchored on chain as a batch of `kind`. Anchors of the same root by anyone else do not count.

    `seen` keeps the (anchorer, root) pairs already found on chain, so that many leaves of one batch cost one call."""
    types = SNAPSHOT_LEAF_TYPES if kind is BatchKind.SNAPSHOTS else RECEIPT_LEAF_TYPES
    root_bytes = bytes.fromhex(root.removeprefix("0x"))
    if not verify(root_bytes, leaf_hash(types, list(leaf)), [bytes.fromhex(p.removeprefix("0x")) for p in proof]):
        raise _fail(f"{what}: its Merkle proof does not lead to batch root {root}")
    if seen is not None and (anchorer, root_bytes) in seen:
        return seen[anchorer, root_bytes]
    at, on_chain_kind, _count = ledger.batch_of(anchorer, root_bytes)
    if at == 0:
        raise _fail(f"{what}: batch root {root} is not anchored by {anchorer} on chain {ledger.client.chain_id}")
    if on_chain_kind is not kind:
        raise _fail(
            f"{what}: {anchorer} anchored batch root {root} as {on_chain_kind.name.lower()}, not {kind.name.lower()}"
        )
    found = AnchorCheck(root, anchorer, at)
    if seen is not None:
        seen[anchorer, root_bytes] = found
    return found


async def check_reader_request(receipt: dict[str, Any], what: str, *, signer: str = "reader") -> str:
    """The reader's own signed GET kept in an access receipt, or the requester's in a denial record (`signer`: the
    field naming the DID; a read has an empty body)."""
    request = receipt.get("request") or {}
    headers = {
        "signature-input": request.get("signatureInput", ""),
        "signature": request.get("signature", ""),
        "content-digest": content_digest(b""),
    }
    try:
        verified = await verify_request(
            request.get("method", ""), request.get("target", ""), headers, b"", now=int(receipt["time"])
        )
    except TwinledgerError as error:
        raise _fail(f"{what}: the {signer}'s signed request does not verify: {error.message}") from None
    if verified.did != canonical_did(str(receipt.get(signer, ""))):
        raise _fail(f"{what}: the request was signed by {verified.did}, not the {signer} {receipt.get(signer)}")
    return verified.did


def check_denial(record: dict[str, Any], what: str) -> str | None:
    """A denial record's own facts (its node signature, chain link and anchor are checked as a receipt's): for a
    refusal recorded on its own, the requester's signed GET of this twin; for a count, a positive count over one
    window. Returns the requester (None: a twin-wide count of many DIDs)."""
    if "count" not in record:
        requester = run(check_reader_request(record, what, signer="requester"))
        request = record.get("request") or {}
        path = urlsplit(str(request.get("target", ""))).path
        twin = f"/v1/twins/{record['twinId']}"
        if request.get("method") != "GET" or not (path == twin or path.startswith(twin + "/")):
            raise _fail(f"{what}: the requester signed {request.get('method')} {path}, not a read of twin "
                        f"{record['twinId']}")  # fmt: skip
        return requester
    count, window, counted_for = record.get("count"), record.get("window") or {}, record.get("requester")
    if type(count) is not int or count < 1 or not all(type(window.get(k)) is int for k in ("start", "seconds")):
        raise _fail(f"{what}: a denial count needs a positive count and a window (start, seconds)")
    if counted_for is not None and not isinstance(counted_for, str):
        raise _fail(f"{what}: a denial count names requester {counted_for!r}")
    return counted_for


def sha256(data: bytes) -> bytes:
    return hashlib.sha256(data).digest()
