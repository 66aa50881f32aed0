"""Walking DAGs: the links of a block by codec, depth-first traversal, and reading files back (cat)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import dag_cbor
from multiformats import CID

from twinledger.errors import IntegrityError, InvalidInput
from twinledger.ipfs.cids import DAG_CBOR, DAG_PB, RAW, to_cid
from twinledger.ipfs.dagpb import UnixFSType, decode_node, decode_unixfs


def block_links(cid: CID, data: bytes) -> list[CID]:
    """The CIDs ``data`` links to, in link order; raw blocks have none."""
    code = cid.codec.code
    if code == RAW:
        return []
    if code == DAG_PB:
        links, _ = decode_node(data)
        try:
            return [to_cid(link.cid) for link in links]
        except (ValueError, KeyError) as error:
            raise IntegrityError(f"block {cid} has a malformed link ({error})", hint="re-fetch the block") from None
    if code == DAG_CBOR:
        try:
            value = dag_cbor.decode(data)
        except Exception as error:  # dag_cbor raises several decoder-specific error types
            raise IntegrityError(f"block {cid} is not valid dag-cbor ({error})", hint="re-fetch the block") from None
        found: list[CID] = []
        _collect_cbor_links(value, found)
        return found
    raise InvalidInput(
        f"block {cid} uses codec {cid.codec.name}, which cannot be traversed here",
        hint="only dag-pb, raw and dag-cbor DAGs are supported",
    )


def _collect_cbor_links(value: Any, found: list[CID]) -> None:
    if isinstance(value, CID):
        found.append(value)
    elif isinstance(value, dict):
        for item in value.values():
            _collect_cbor_links(item, found)
    elif isinstance(value, list):
        for item in value:
            _collect_cbor_links(item, found)


def traverse(root: CID, links: Callable[[CID], list[CID]]) -> Iterator[CID]:
    """Depth-first, pre-order, each block once: the order Kubo's `dag export` writes a CAR in. `links(cid)` is
    asked for a block's links after the block was yielded."""
    seen: set[bytes] = set()
    stack = [root]
    while stack:
        cid = stack.pop()
        key = bytes(cid)
        if key in seen:
            continue
        seen.add(key)
        yield cid
        stack.extend(reversed(links(cid)))


def walk_dag(root: CID, get: Callable[[CID], bytes]) -> Iterator[tuple[CID, bytes]]:
    """Every block under `root` with its bytes, in :func:`traverse` order."""
    last: list[bytes] = []
    for cid in traverse(root, lambda cid: block_links(cid, last.pop())):
        last.append(get(cid))
        yield cid, last[-1]


def cat_blocks(root: CID, get: Callable[[CID], bytes]) -> Iterator[bytes]:
    """The content of a UnixFS file (or raw block) as a stream of chunks, each block verified by ``get``."""
    stack = [root]
    while stack:
        cid = stack.pop()
        data = get(cid)
        if cid.codec.code == RAW:
            yield data
            continue
        if cid.codec.code != DAG_PB:
            raise InvalidInput(f"{cid} is {cid.codec.name}, not a UnixFS file", hint="cat only reads files")
        links, payload = decode_node(data)
        node = decode_unixfs(payload or b"")
        if node.type not in (UnixFSType.FILE, UnixFSType.RAW):
            raise InvalidInput(
                f"{cid} is a UnixFS {node.type.name.lower()}, not a file",
                hint="use `twinledger ipfs get` for directories",
            )
        if node.data:
            yield node.data
        stack.extend(to_cid(link.cid) for link in reversed(links))


def directory_entries(cid: CID, get: Callable[[CID], bytes]) -> Iterator[tuple[str, CID]] | None:
    """(name, CID) of each entry when ``cid`` is a UnixFS directory or HAMT shard; None when it is not one."""
    if cid.codec.code != DAG_PB:
        return None
    links, payload = decode_node(get(cid))
    node = decode_unixfs(payload or b"")
    if node.type == UnixFSType.DIRECTORY:
        return ((_entry_name(cid, link.name), to_cid(link.cid)) for link in links)
    if node.type == UnixFSType.HAMT_SHARD:
        pad = len(f"{(node.fanout or 256) - 1:X}")
        return _shard_entries(links, pad, get)
    return None


def _shard_entries(links: list[Any], pad: int, get: Callable[[CID], bytes]) -> Iterator[tuple[str, CID]]:
    for link in links:
        child = to_cid(link.cid)
        if len(link.name) == pad:  # a bare index prefix names a sub-shard
            sub = directory_entries(child, get)
            if sub is not None:
                yield from sub
        else:
            yield _entry_name(child, link.name[pad:]), child


def _entry_name(parent: CID, raw: bytes) -> str:
    name = raw.decode("utf-8", errors="surrogateescape")
    if not name or "/" in name or name in (".", "..") or "\0" in name:
        raise IntegrityError(
            f"directory {parent} has an unsafe entry name {name!r}",
            hint="refusing to write it; the DAG was not made by an honest importer",
        )
    return name


def symlink_target(cid: CID, get: Callable[[CID], bytes]) -> str | None:
    if cid.codec.code != DAG_PB:
        return None
    _, payload = decode_node(get(cid))
    node = decode_unixfs(payload or b"")
    if node.type != UnixFSType.SYMLINK:
        return None
    return (node.data or b"").decode("utf-8", errors="surrogateescape")
