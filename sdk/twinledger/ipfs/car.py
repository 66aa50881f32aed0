"""CAR v1 (Content Addressable aRchive) writing and verified reading.

Format: varint(len) + dag-cbor {"roots": [CID, ...], "version": 1}, then per block
varint(len(cid) + len(data)) + cid + data. CIDv0 blocks carry their bare multihash, as go-car writes them.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import BinaryIO, Protocol

import dag_cbor
from multiformats import CID

from twinledger.errors import IntegrityError, InvalidInput, NotFound
from twinledger.ipfs.cids import to_cid, verify_block
from twinledger.ipfs.dag import block_links, traverse
from twinledger.ipfs.dagpb import read_uvarint, uvarint

MAX_HEADER_SIZE = 1 << 20
# Kubo refuses blocks over 2 MiB on the network (bitswap); a bigger section is not a block anyone can serve.
MAX_BLOCK_SIZE = 2 << 20
_MAX_CID_SIZE = 128


class StagingArea(Protocol):
    def has(self, cid: CID) -> bool: ...
    def get(self, cid: CID) -> bytes: ...
    def put(self, cid: CID, data: bytes) -> None: ...


def write_car(out: BinaryIO, roots: list[CID], blocks: Iterable[tuple[CID, bytes]]) -> None:
    out.write(car_header(roots))
    for cid, data in blocks:
        out.write(section_prefix(cid, len(data)))
        out.write(data)


def car_header(roots: list[CID]) -> bytes:
    header = dag_cbor.encode({"roots": list[dag_cbor.IPLDKind](roots), "version": 1})
    return uvarint(len(header)) + header


def car_section(cid: CID, data: bytes) -> bytes:
    """One block as a CAR holds it."""
    return section_prefix(cid, len(data)) + data


def section_prefix(cid: CID, size: int) -> bytes:
    """What precedes a block of `size` bytes in a CAR: a writer that streams sends it, then the block as it is."""
    cid_bytes = bytes(cid)
    return uvarint(len(cid_bytes) + size) + cid_bytes


def _corrupt(message: str) -> IntegrityError:
    return IntegrityError(message, hint="the CAR is corrupt or truncated; nothing was imported; fetch it again")


def _read_exact(stream: BinaryIO, size: int, what: str) -> bytes:
    data = stream.read(size)
    while data is not None and 0 < len(data) < size:
        more = stream.read(size - len(data))
        if not more:
            break
        data += more
    if data is None or len(data) < size:
        raise _corrupt(f"CAR truncated in {what}: expected {size} bytes, got {len(data or b'')}")
    return data


def _read_varint(stream: BinaryIO, what: str) -> int | None:
    """A varint from the stream, or None at a clean end of file before its first byte."""
    raw = bytearray()
    while True:
        byte = stream.read(1)
        if not byte:
            if raw:
                raise _corrupt(f"CAR truncated in the length of {what}")
            return None
        raw += byte
        if byte[0] < 0x80:
            return read_uvarint(bytes(raw), 0)[0]
        if len(raw) > 9:
            raise _corrupt(f"CAR has an over-long varint in {what}")


def _split_cid(section: bytes, what: str) -> tuple[CID, bytes]:
    try:
        if section[:2] == b"\x12\x20":  # CIDv0: a bare sha2-256 multihash
            end = 34
        else:
            pos = 0
            for _field in range(3):  # version, codec, hash code
                _, pos = read_uvarint(section, pos)
            length, pos = read_uvarint(section, pos)
            end = pos + length
        if end > len(section) or end > _MAX_CID_SIZE:
            raise ValueError("CID runs past the section")
        cid = to_cid(section[:end])
    except (ValueError, KeyError) as error:
        raise _corrupt(f"{what} does not start with a valid CID ({error})") from None
    return cid, section[end:]


def _check_complete(root: CID, links: dict[bytes, list[CID]], get: Callable[[CID], bytes]) -> None:
    """Raise NotFound unless every block under `root` is in the CAR (`links`) or already in the store (`get`)."""

    def links_of(cid: CID) -> list[CID]:
        known = links.get(bytes(cid))
        return known if known is not None else block_links(cid, get(cid))

    for _ in traverse(root, links_of):
        pass


def read_car_into(staging: StagingArea, stream: BinaryIO, *, require_complete: bool) -> list[CID]:
    """Verify every block of a CAR and stage it; returns the roots.

    Raises (and the caller rolls the staging back) on a malformed header, a block whose bytes do not hash to
    its CID, a section over MAX_BLOCK_SIZE, truncation, a root that is neither in the CAR nor the store, or,
    with ``require_complete``, a DAG under a root that is missing blocks.
    """
    header_size = _read_varint(stream, "the header")
    if header_size is None:
        raise _corrupt("CAR is empty: no header")
    if header_size > MAX_HEADER_SIZE:
        raise _corrupt(f"CAR header claims {header_size} bytes, over the {MAX_HEADER_SIZE} limit")
    try:
        header = dag_cbor.decode(_read_exact(stream, header_size, "the header"))
    except IntegrityError:
        raise
    except Exception as error:  # dag_cbor raises several decoder-specific error types
        raise _corrupt(f"CAR header is not valid dag-cbor ({error})") from None
    if not isinstance(header, dict) or header.get("version") != 1:
        raise InvalidInput("not a CAR v1 file (header version is not 1)", hint="convert CAR v2 files to v1 first")
    raw_roots = header.get("roots")
    if not isinstance(raw_roots, list) or not all(isinstance(root, CID) for root in raw_roots):
        raise _corrupt("CAR header 'roots' is not a list of CIDs")
    roots = [root for root in raw_roots if isinstance(root, CID)]
    links: dict[bytes, list[CID]] = {}  # each block's links, read as it streams by: completeness never re-reads
    index = 0
    while True:
        what = f"block #{index}"
        section_size = _read_varint(stream, what)
        if section_size is None:
            break
        if section_size > MAX_BLOCK_SIZE + _MAX_CID_SIZE:
            raise _corrupt(f"CAR {what} is {section_size} bytes, over the {MAX_BLOCK_SIZE}-byte block limit")
        section = _read_exact(stream, section_size, what)
        cid, data = _split_cid(section, what)
        try:
            verify_block(cid, data)
        except IntegrityError:
            raise _corrupt(f"CAR {what} ({cid}): bytes do not hash to the CID") from None
        staging.put(cid, data)
        if require_complete:
            links[bytes(cid)] = block_links(cid, data)
        index += 1
    for root in roots:
        if not staging.has(root):
            raise _corrupt(f"CAR root {root} is neither in the CAR nor in the store")
        if require_complete:
            try:
                _check_complete(root, links, staging.get)
            except NotFound as missing:
                raise _corrupt(f"CAR root {root} is incomplete: {missing.message}") from None
    return [root if root.version == 0 else root.set(base="base32") for root in roots]
