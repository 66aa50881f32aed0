"""The UnixFS importer: bytes and directory trees into blocks whose CIDs match Kubo's `ipfs add`.

The layouts follow boxo/ipld/unixfs/importer (balanced and trickle) line by line, because every structural
choice (when a level is full, which leaves are typed File vs Raw) changes the root CID.
Memory is bounded by the tree depth times ``max_links``: leaves are written out as soon as they are hashed.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Protocol

import mmh3
from multiformats import CID

from twinledger.errors import InvalidInput, NotFound
from twinledger.ipfs.cids import DAG_PB, RAW, block_cid, to_cid
from twinledger.ipfs.dagpb import PBLink, UnixFSData, UnixFSType, encode_file_leaf, encode_node, encode_unixfs
from twinledger.ipfs.options import ImportOptions

MURMUR3_X64_64 = 0x22
TRICKLE_DEPTH_REPEAT = 4


class BlockSink(Protocol):
    """Where the importer sends each finished block (a store transaction, or nothing for --only-hash)."""

    def put_block(self, cid: bytes, data: bytes) -> None: ...


class DiscardSink:
    """Computes CIDs without keeping blocks: `ipfs add --only-hash`."""

    def put_block(self, cid: bytes, data: bytes) -> None:
        return None


@dataclass(frozen=True)
class ImportResult:
    """Root of an import and the number of content bytes it covers."""

    cid: CID
    size: int


@dataclass(frozen=True, slots=True)
class _Child:
    cid: bytes
    tsize: int  # cumulative size of the child's DAG, as boxo puts in PBLink.Tsize
    filesize: int  # content bytes under the child, as boxo puts in UnixFS blocksizes


class _Chunks:
    """Fixed-size chunks with one chunk of look-ahead, so `done` is known before building each node."""

    def __init__(self, stream: BinaryIO, size: int) -> None:
        self._stream = stream
        self._size = size
        self._next = self._read()

    def _read(self) -> bytes | None:
        buf = self._stream.read(self._size)
        if buf and len(buf) < self._size:  # short reads from pipes: keep reading until full or EOF
            parts = [buf]
            got = len(buf)
            while got < self._size:
                more = self._stream.read(self._size - got)
                if not more:
                    break
                parts.append(more)
                got += len(more)
            buf = b"".join(parts)
        return buf or None

    @property
    def done(self) -> bool:
        return self._next is None

    def take(self) -> bytes:
        chunk = self._next
        assert chunk is not None
        self._next = self._read()
        return chunk


class _FileBuilder:
    def __init__(self, sink: BlockSink, options: ImportOptions) -> None:
        self.sink = sink
        self.options = options
        self.node_version = options.cid_version

    def leaf(self, chunk: bytes, unixfs_type: UnixFSType) -> _Child:
        if self.options.raw_leaves:
            cid = block_cid(chunk, codec=RAW, version=1)
            self.sink.put_block(cid, chunk)
            return _Child(cid, len(chunk), len(chunk))
        block = encode_file_leaf(chunk, unixfs_type)
        cid = block_cid(block, codec=DAG_PB, version=self.node_version)
        self.sink.put_block(cid, block)
        return _Child(cid, len(block), len(chunk))

    def internal(self, children: list[_Child]) -> _Child:
        filesize = sum(child.filesize for child in children)
        data = encode_unixfs(UnixFSData(UnixFSType.FILE, filesize=filesize, blocksizes=[c.filesize for c in children]))
        block = encode_node([PBLink(c.cid, b"", c.tsize) for c in children], data)
        cid = block_cid(block, codec=DAG_PB, version=self.node_version)
        self.sink.put_block(cid, block)
        return _Child(cid, len(block) + sum(c.tsize for c in children), filesize)

    # boxo/ipld/unixfs/importer/balanced/builder.go
    def balanced(self, chunks: _Chunks) -> _Child:
        if chunks.done:
            return self.leaf(b"", UnixFSType.FILE)
        root = self.leaf(chunks.take(), UnixFSType.FILE)
        depth = 1
        while not chunks.done:
            root = self._fill_balanced(chunks, [root], depth)
            depth += 1
        return root

    def _fill_balanced(self, chunks: _Chunks, children: list[_Child], depth: int) -> _Child:
        while len(children) < self.options.max_links and not chunks.done:
            if depth == 1:
                children.append(self.leaf(chunks.take(), UnixFSType.FILE))
            else:
                children.append(self._fill_balanced(chunks, [], depth - 1))
        return self.internal(children)

    # boxo/ipld/unixfs/importer/trickle/trickledag.go: the root is always an internal node
    def trickle(self, chunks: _Chunks, max_depth: int = -1) -> _Child:
        children: list[_Child] = []
        while len(children) < self.options.max_links and not chunks.done:
            children.append(self.leaf(chunks.take(), UnixFSType.RAW))
        depth = 1
        while (max_depth == -1 or depth < max_depth) and not chunks.done:
            repeat = 0
            while repeat < TRICKLE_DEPTH_REPEAT and not chunks.done:
                children.append(self.trickle(chunks, depth))
                repeat += 1
            depth += 1
        return self.internal(children)


def import_stream(sink: BlockSink, stream: BinaryIO, options: ImportOptions | None = None) -> ImportResult:
    """Chunk ``stream`` into a UnixFS file DAG, sending every block to ``sink``; returns the root."""
    options = options or ImportOptions()
    child = _import_file_child(sink, stream, options)
    return ImportResult(to_cid(child.cid), child.filesize)


def _import_file_child(sink: BlockSink, stream: BinaryIO, options: ImportOptions) -> _Child:
    builder = _FileBuilder(sink, options)
    chunks = _Chunks(stream, options.chunk_size)
    return builder.trickle(chunks) if options.layout == "trickle" else builder.balanced(chunks)


def check_readable(path: Path, options: ImportOptions) -> None:
    """Open every file under ``path`` before any block is written, so an unreadable one changes nothing."""
    for entry in _walk(path, options, top=True):
        if entry.is_file():
            try:
                with entry.open("rb"):
                    pass
            except OSError as error:
                raise InvalidInput(
                    f"cannot read {entry}: {error.strerror}",
                    hint="fix the file's permissions or leave it out",
                ) from None


def _walk(path: Path, options: ImportOptions, *, top: bool = False) -> Iterator[Path]:
    try:
        mode = path.lstat().st_mode
    except FileNotFoundError:
        raise NotFound(f"{path} does not exist", hint="check the path") from None
    except OSError as error:
        raise InvalidInput(f"cannot read {path}: {error.strerror}", hint="check the path's permissions") from None
    yield path
    if stat.S_ISDIR(mode):
        for child in _list_dir(path, options):
            yield from _walk(child, options)
    elif not (stat.S_ISREG(mode) or stat.S_ISLNK(mode)):
        raise InvalidInput(f"{path} is not a file, directory or symlink", hint="add regular files only")


def _list_dir(path: Path, options: ImportOptions) -> list[Path]:
    try:
        names = sorted(os.listdir(path))
    except OSError as error:
        raise InvalidInput(f"cannot list {path}: {error.strerror}", hint="check the directory's permissions") from None
    return [path / name for name in names if options.hidden or not name.startswith(".")]


def import_path(sink: BlockSink, path: Path, options: ImportOptions | None = None) -> ImportResult:
    """Import a file, symlink or directory tree (`ipfs add -r`); returns the root and total content size."""
    options = options or ImportOptions()
    check_readable(path, options)
    child = _import_entry(sink, path, options)
    return ImportResult(to_cid(child.cid), child.filesize)


def _import_entry(sink: BlockSink, path: Path, options: ImportOptions) -> _Child:
    mode = path.lstat().st_mode
    if stat.S_ISLNK(mode):
        data = encode_unixfs(UnixFSData(UnixFSType.SYMLINK, data=os.fsencode(os.readlink(path))))
        return _put_pb(sink, encode_node([], data), [], options, 0)
    if stat.S_ISDIR(mode):
        entries: list[tuple[bytes, _Child]] = []
        for child_path in _list_dir(path, options):
            entries.append((os.fsencode(child_path.name), _import_entry(sink, child_path, options)))
        return build_directory(sink, entries, options)
    with path.open("rb") as stream:
        return _import_file_child(sink, stream, options)


def _put_pb(sink: BlockSink, block: bytes, links: list[PBLink], options: ImportOptions, size: int) -> _Child:
    cid = block_cid(block, codec=DAG_PB, version=options.cid_version)
    sink.put_block(cid, block)
    return _Child(cid, len(block) + sum(link.tsize for link in links), size)


_DIRECTORY_DATA = encode_unixfs(UnixFSData(UnixFSType.DIRECTORY))


def build_directory(sink: BlockSink, entries: list[tuple[bytes, _Child]], options: ImportOptions) -> _Child:
    """A basic directory node, or a HAMT when it passes Kubo's sharding threshold."""
    size = sum(child.filesize for _, child in entries)
    links = [PBLink(child.cid, name, child.tsize) for name, child in entries]
    block = encode_node(links, _DIRECTORY_DATA)
    if options.hamt_size_estimation == "links":
        estimate = sum(len(link.name) + len(link.cid) for link in links)
    else:
        estimate = len(block)
    if options.hamt_threshold and estimate > options.hamt_threshold:
        return _build_shard(sink, links, options, depth=0, size=size)
    return _put_pb(sink, block, links, options, size)


def _hamt_hash(name: bytes) -> bytes:
    # boxo hashes names with murmur3 x64 128 (seed 0) and keeps h1, big-endian (spaolacci/murmur3 New64)
    h1, _h2 = mmh3.hash64(name, seed=0, x64arch=True, signed=False)
    return h1.to_bytes(8, "big")


def _build_shard(sink: BlockSink, links: list[PBLink], options: ImportOptions, *, depth: int, size: int) -> _Child:
    fanout = options.hamt_fanout
    bits = fanout.bit_length() - 1
    if bits != 8:
        raise InvalidInput(f"HAMT fanout {fanout} is not supported", hint="use the Kubo default fanout 256")
    if depth >= 8:
        raise InvalidInput("directory names collide on all 64 hash bits", hint="rename one of the entries")
    slots: dict[int, list[PBLink]] = {}
    for link in links:
        slots.setdefault(_hamt_hash(link.name)[depth], []).append(link)
    pad = len(f"{fanout - 1:X}")
    shard_links: list[PBLink] = []
    bitfield = 0
    for index in sorted(slots):
        bitfield |= 1 << index
        prefix = f"{index:0{pad}X}".encode()
        members = slots[index]
        if len(members) == 1:
            only = members[0]
            shard_links.append(PBLink(only.cid, prefix + only.name, only.tsize))
        else:
            child = _build_shard(sink, members, options, depth=depth + 1, size=0)
            shard_links.append(PBLink(child.cid, prefix, child.tsize))
    # go-bitfield's Bytes() drops leading zero bytes (kept compatible with the earlier big.Int bitfield)
    field_bytes = bitfield.to_bytes((bitfield.bit_length() + 7) // 8, "big")
    data = encode_unixfs(UnixFSData(UnixFSType.HAMT_SHARD, data=field_bytes, hash_type=MURMUR3_X64_64, fanout=fanout))
    return _put_pb(sink, encode_node(shard_links, data), shard_links, options, size)
