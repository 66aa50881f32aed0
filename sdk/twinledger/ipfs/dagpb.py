"""dag-pb and UnixFS protobuf encoding, written by hand.

Why not a library: no maintained Python package produces dag-pb/UnixFS blocks byte-identical to Kubo's
(boxo's) importer. The CID of a file depends on every byte of every node, so the field order and the
"always write Name and Tsize, even when empty" quirks of boxo's encoder are reproduced exactly here:

* PBNode: every Link (field 2) first, then Data (field 1), links sorted stably by name (boxo sorts on encode).
* PBLink: Hash (1), Name (2, written even when empty), Tsize (3).
* UnixFS Data (proto2): Type (1), Data (2), filesize (3), blocksizes (4, unpacked), hashType (5), fanout (6).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from enum import IntEnum

from twinledger.errors import IntegrityError


class UnixFSType(IntEnum):
    RAW = 0
    DIRECTORY = 1
    FILE = 2
    METADATA = 3
    SYMLINK = 4
    HAMT_SHARD = 5


@dataclass(frozen=True, slots=True)
class PBLink:
    """A dag-pb link: the child's binary CID, its name and the cumulative size of the child's DAG."""

    cid: bytes
    name: bytes
    tsize: int


@dataclass(slots=True)
class UnixFSData:
    type: UnixFSType
    data: bytes | None = None
    filesize: int | None = None
    blocksizes: list[int] = field(default_factory=list)
    hash_type: int | None = None
    fanout: int | None = None


def uvarint(value: int) -> bytes:
    out = bytearray()
    while value >= 0x80:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def read_uvarint(buf: bytes | memoryview, pos: int) -> tuple[int, int]:
    """Decode one varint at ``pos``; returns (value, next position). Raises ValueError on truncation."""
    result = 0
    shift = 0
    while True:
        if pos >= len(buf):
            raise ValueError("truncated varint")
        byte = buf[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if byte < 0x80:
            return result, pos
        shift += 7
        if shift > 63:
            raise ValueError("varint longer than 9 bytes")


def _bytes_field(tag: int, payload: bytes) -> bytes:
    return bytes((tag,)) + uvarint(len(payload)) + payload


def encode_unixfs(node: UnixFSData) -> bytes:
    parts = [b"\x08", uvarint(int(node.type))]
    if node.data is not None:
        parts.append(_bytes_field(0x12, node.data))
    if node.filesize is not None:
        parts += [b"\x18", uvarint(node.filesize)]
    for size in node.blocksizes:
        parts += [b"\x20", uvarint(size)]
    if node.hash_type is not None:
        parts += [b"\x28", uvarint(node.hash_type)]
    if node.fanout is not None:
        parts += [b"\x30", uvarint(node.fanout)]
    return b"".join(parts)


def encode_link(link: PBLink) -> bytes:
    body = _bytes_field(0x0A, link.cid) + _bytes_field(0x12, link.name) + b"\x18" + uvarint(link.tsize)
    return _bytes_field(0x12, body)


def encode_node(links: Sequence[PBLink], data: bytes | None) -> bytes:
    ordered = sorted(links, key=lambda link: link.name)  # stable, like boxo's sort.Stable(LinkSlice)
    parts = [encode_link(link) for link in ordered]
    if data is not None:
        parts.append(_bytes_field(0x0A, data))
    return b"".join(parts)


def encode_file_leaf(chunk: bytes, unixfs_type: UnixFSType) -> bytes:
    """A dag-pb leaf holding ``chunk``; one join so a 1 MiB chunk is copied once."""
    size = uvarint(len(chunk))
    if chunk:
        inner_head = b"\x08" + uvarint(int(unixfs_type)) + b"\x12" + size
        inner_tail = b"\x18" + size
    else:  # boxo leaves Data unset (nil) for the empty file, so the field is absent
        inner_head = b"\x08" + uvarint(int(unixfs_type))
        inner_tail = b"\x18\x00"
    inner_len = len(inner_head) + len(chunk) + len(inner_tail)
    return b"".join((b"\x0a", uvarint(inner_len), inner_head, chunk, inner_tail))


def _fields(buf: bytes, what: str) -> list[tuple[int, int | bytes]]:
    """Split a protobuf message into (field number, value) pairs; only varint and length-delimited types."""
    out: list[tuple[int, int | bytes]] = []
    pos = 0
    try:
        while pos < len(buf):
            key, pos = read_uvarint(buf, pos)
            number, wire = key >> 3, key & 7
            if wire == 0:
                value, pos = read_uvarint(buf, pos)
                out.append((number, value))
            elif wire == 2:
                length, pos = read_uvarint(buf, pos)
                if pos + length > len(buf):
                    raise ValueError("field runs past the end")
                out.append((number, bytes(buf[pos : pos + length])))
                pos += length
            else:
                raise ValueError(f"unsupported wire type {wire}")
    except ValueError as error:
        raise IntegrityError(
            f"malformed {what}: {error}",
            hint="the block is not valid dag-pb; re-fetch it from a trusted peer",
        ) from None
    return out


def decode_node(block: bytes) -> tuple[list[PBLink], bytes | None]:
    links: list[PBLink] = []
    data: bytes | None = None
    for number, value in _fields(block, "dag-pb node"):
        if number == 2 and isinstance(value, bytes):
            cid, name, tsize = b"", b"", 0
            for sub_number, sub_value in _fields(value, "dag-pb link"):
                if sub_number == 1 and isinstance(sub_value, bytes):
                    cid = sub_value
                elif sub_number == 2 and isinstance(sub_value, bytes):
                    name = sub_value
                elif sub_number == 3 and isinstance(sub_value, int):
                    tsize = sub_value
            links.append(PBLink(cid, name, tsize))
        elif number == 1 and isinstance(value, bytes):
            data = value
    return links, data


def decode_unixfs(payload: bytes) -> UnixFSData:
    node = UnixFSData(UnixFSType.RAW)
    for number, value in _fields(payload, "UnixFS data"):
        if number == 1 and isinstance(value, int):
            node.type = UnixFSType(value) if value in UnixFSType._value2member_map_ else UnixFSType.METADATA
        elif number == 2 and isinstance(value, bytes):
            node.data = value
        elif number == 3 and isinstance(value, int):
            node.filesize = value
        elif number == 4 and isinstance(value, int):
            node.blocksizes.append(value)
        elif number == 5 and isinstance(value, int):
            node.hash_type = value
        elif number == 6 and isinstance(value, int):
            node.fanout = value
    return node
