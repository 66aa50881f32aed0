"""The embedded block store: content-addressed files on disk, recursive pins, garbage collection.

Layout under the store root (see docs/ipfs.md):
  blocks.sqlite           blocks of up to 16 KiB, one row each under KEY (packed.py): receipts, manifests, small
                          leaves cost a row, not an inode
  blocks/<XY>/<KEY>.data  one file per larger block; KEY is base32 of the multihash (as Kubo's flatfs),
                          XY its next-to-last two characters, so directories stay small
  tmp/                    blocks being written; never read as blocks, swept by gc
  pins.sqlite             recursive pins, one row each (see pins.py); a store opened with another PinIndex (the
                          node's state.sqlite) keeps them there instead, and names that database in pins-index so
                          every later opener (the CLI's gc) sees the same pins. An old pins.json is moved in once.
  gc.lock                 writers hold it shared, gc exclusive, so gc never deletes a block being added
"""

from __future__ import annotations

import base64
import contextlib
import ctypes
import fcntl
import os
import tempfile
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Protocol, runtime_checkable

from multiformats import CID

from twinledger.errors import IntegrityError, InvalidInput, NotFound, Unavailable
from twinledger.ipfs.cids import IDENTITY, block_key, to_cid, verify_block
from twinledger.ipfs.dag import walk_dag
from twinledger.ipfs.importer import ImportResult, import_path, import_stream
from twinledger.ipfs.options import ImportOptions
from twinledger.ipfs.packed import PACKED_BLOCK_BYTES, PackedBlocks
from twinledger.ipfs.pins import PinIndex
from twinledger.libc import libc

_WRITE_THREADS = 4
_MAX_IN_FLIGHT = 16  # blocks queued for the writer threads: bounds memory whatever the file size
_MAX_STAGED_PACKED = 64 * 1024 * 1024  # small blocks a transaction holds in memory; past this they go to files


@dataclass(frozen=True)
class BlockStat:
    cid: CID
    size: int


@runtime_checkable
class BlockStore(Protocol):
    """What the node needs from IPFS; the embedded store and the Kubo backend both provide it."""

    def has(self, cid: CID) -> bool: ...
    def get(self, cid: CID) -> bytes: ...
    def put(self, cid: CID, data: bytes) -> None: ...
    def delete(self, cid: CID) -> None: ...
    def stat(self, cid: CID) -> BlockStat: ...
    def pin(self, cid: CID) -> None: ...
    def unpin(self, cid: CID) -> None: ...
    def pins(self) -> list[CID]: ...
    def gc(self) -> list[CID]: ...
    def add_path(self, path: Path, options: ImportOptions, *, pin: bool = True) -> ImportResult: ...
    def add_stream(self, stream: BinaryIO, options: ImportOptions, *, pin: bool = True) -> ImportResult: ...
    def import_car(self, stream: BinaryIO, *, pin_roots: bool = True) -> list[CID]: ...
    def put_dag(self, root: CID, blocks: list[tuple[CID, bytes]]) -> None: ...
    def export_car(self, root: CID, out: BinaryIO) -> None: ...


def fsync_dir(path: Path) -> None:
    """Make the directory's entries (files created, renamed, removed in it) durable."""
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


@contextlib.contextmanager
def _flock(path: Path, mode: int) -> Iterator[None]:
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, mode)
        yield
    finally:
        os.close(fd)  # closing drops the lock


class Transaction:
    """Blocks staged in tmp/ (written by worker threads), made durable together, and renamed into place on commit.

    Durability is one filesystem sync per commit (``syncfs``) rather than one fsync per block: the blocks are on
    disk before any of them is renamed into view, so a crash can still never expose a block whose bytes do not
    hash to its CID, and a 256 MiB import costs two journal commits instead of a thousand.

    Nothing is visible in the store until ``commit``; ``rollback`` removes every staged file, which is how a
    refused CAR or a failed import leaves the store unchanged.
    """

    def __init__(self, store: FileBlockStore, *, threads: int = _WRITE_THREADS) -> None:
        self._store = store
        self._staged: dict[str, tuple[CID, Path]] = {}
        self._packed: dict[str, tuple[CID, bytes]] = {}  # small blocks, written as rows on commit
        self._packed_bytes = 0
        self._pending: deque[Future[None]] = deque()
        # A small write (a 1 KiB snapshot is two blocks) is cheaper written inline than handed to a pool.
        self._pool = ThreadPoolExecutor(threads, thread_name_prefix="blockstore-write") if threads else None
        self._gc_fd: int | None = None  # a staged transaction's own shared gc lock, held until commit or rollback

    def put_block(self, cid: bytes, data: bytes) -> None:
        self.put(to_cid(cid), data)

    def put(self, cid: CID, data: bytes) -> None:
        """Stage a block; the caller has already checked that ``data`` hashes to ``cid``."""
        key = block_key(cid)
        if key in self._staged or key in self._packed:
            return
        if len(data) <= PACKED_BLOCK_BYTES and self._packed_bytes + len(data) <= _MAX_STAGED_PACKED:
            # No lookup of the store first: the commit's INSERT OR IGNORE keeps a copy already there as it is.
            self._packed[key] = (cid, bytes(data))
            self._packed_bytes += len(data)
            return
        if self._store._has_key(key):
            return
        fd, name = tempfile.mkstemp(dir=self._store.tmp_dir, prefix=key[-8:], suffix=".staged")
        self._staged[key] = (cid, Path(name))
        if self._pool is None:
            _write_and_close(fd, data)
            return
        self._pending.append(self._pool.submit(_write_and_close, fd, data))
        while len(self._pending) > _MAX_IN_FLIGHT:
            self._pending.popleft().result()

    def has(self, cid: CID) -> bool:
        key = block_key(cid)
        return key in self._staged or key in self._packed or self._store.has(cid)

    def get(self, cid: CID) -> bytes:
        key = block_key(cid)
        packed = self._packed.get(key)
        if packed is not None:
            return packed[1]
        staged = self._staged.get(key)
        if staged is None:
            return self._store.get(cid)
        self._drain()
        data = staged[1].read_bytes()
        verify_block(cid, data)
        return data

    def _drain(self) -> None:
        while self._pending:
            self._pending.popleft().result()

    def _shutdown(self) -> None:
        if self._pool is not None:
            self._pool.shutdown()
            self._pool = None

    def commit(self) -> None:
        commit_together(self._store, [self])
        self.close()

    def close(self) -> None:
        """Release a staged transaction's gc lock, once whatever pins its blocks has committed."""
        if self._gc_fd is not None:
            os.close(self._gc_fd)  # closing drops the lock
            self._gc_fd = None

    def rollback(self) -> None:
        for future in self._pending:
            with contextlib.suppress(Exception):
                future.result()
        self._pending.clear()
        self._shutdown()
        for _cid, temp in self._staged.values():
            temp.unlink(missing_ok=True)
        self._staged.clear()
        self._packed.clear()
        self.close()


def commit_together(store: FileBlockStore, transactions: list[Transaction]) -> None:
    """Make the blocks of many transactions durable and visible with one sync round (group commit): one syncfs for
    every staged file's bytes, the renames, one syncfs for the directory entries. Many concurrent pushes then share
    two syncs instead of paying two each. On an error none is committed, and each caller rolls its own back.
    Staged transactions keep their gc lock until :meth:`Transaction.close`: their blocks are unpinned until the
    caller's pins commit."""
    staged: list[tuple[str, Path]] = []
    packed: dict[str, bytes] = {}
    for tx in transactions:
        tx._drain()
        tx._shutdown()
        staged.extend((key, temp) for key, (_cid, temp) in tx._staged.items())
        packed.update((key, data) for key, (_cid, data) in tx._packed.items())
    if packed:  # one transaction and one fsync for every small block of the group
        store.packed.put(packed.items())
    if staged:
        _make_durable(store.tmp_dir, [temp for _key, temp in staged])
        touched: set[Path] = set()
        moved: set[str] = set()
        for key, temp in staged:
            if key in moved:  # two transactions of the group staged the same block
                temp.unlink(missing_ok=True)
                continue
            final = store._path_of_key(key)
            # Same key, same bytes: replacing a copy another process committed meanwhile changes nothing. The shard
            # directory is created only when missing (a stat and a mkdir per block were a third of a batch's cost).
            try:
                os.replace(temp, final)
            except FileNotFoundError:
                final.parent.mkdir(parents=True, exist_ok=True)
                os.replace(temp, final)
            moved.add(key)
            touched.add(final.parent)
        _make_durable(store.blocks_dir, [], directories=touched)
    for tx in transactions:
        tx._staged.clear()
        tx._packed.clear()


def _write_and_close(fd: int, data: bytes, *, sync: bool = False) -> None:
    try:
        view = memoryview(data)
        while view:
            written = os.write(fd, view)
            view = view[written:]
        if sync:
            os.fsync(fd)
    finally:
        os.close(fd)


def _syncfs(path: Path) -> bool:
    """Flush the whole filesystem holding `path` (Linux syncfs(2)); False where the call is not available."""
    syncfs = getattr(libc(), "syncfs", None)
    if syncfs is None:
        return False
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        if syncfs(fd) != 0:
            raise OSError(ctypes.get_errno(), f"syncfs failed on {path}")
    finally:
        os.close(fd)
    return True


def _make_durable(anchor: Path, files: list[Path], *, directories: set[Path] | None = None) -> None:
    """Files' contents and directories' entries on disk: one syncfs, else an fsync for each."""
    if _syncfs(anchor):
        return
    for path in files:
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
    for directory in directories or ():
        fsync_dir(directory)


class FileBlockStore:
    """The embedded block store (see the module docstring for the on-disk layout)."""

    def __init__(self, root: Path | str, *, pins: PinIndex | None = None) -> None:
        self.root = Path(root)
        self.blocks_dir = self.root / "blocks"
        self.tmp_dir = self.root / "tmp"
        try:
            self.blocks_dir.mkdir(parents=True, exist_ok=True)
            self.tmp_dir.mkdir(parents=True, exist_ok=True)
        except OSError as error:
            raise InvalidInput(
                f"cannot create the block store at {self.root}: {error.strerror}",
                hint="point TWINLEDGER_IPFS_PATH at a writable directory",
            ) from None
        self._gc_lock = self.root / "gc.lock"
        self.packed = PackedBlocks(self.root / "blocks.sqlite")
        try:
            self._pins: PinIndex | IntegrityError = pins or _pin_index_of(self.root)
        except IntegrityError as unreachable:
            # The pins are in a database this process cannot open (a node's PostgreSQL): its blocks can still be
            # read (`fl verify` on the node's store), and whatever needs the pins fails closed with this error.
            self._pins = unreachable
            return
        if pins is not None and pins.location() != str((self.root / "pins.sqlite").resolve()):
            # Whoever opens this root later (`twinledger ipfs gc` on a node's store) must see these pins, or gc
            # would take every block of the node: the root names the database that holds them.
            _write_atomically(self.root / PIN_INDEX_POINTER, pins.location().encode())
        self.pin_index.migrate_json(self.root / "pins.json")

    @property
    def pin_index(self) -> PinIndex:
        if isinstance(self._pins, IntegrityError):
            raise IntegrityError(self._pins.message, hint=self._pins.hint)
        return self._pins

    def __repr__(self) -> str:
        return f"FileBlockStore({str(self.root)!r})"

    # -- blocks -------------------------------------------------------------------------------------------
    def _path_of_key(self, key: str) -> Path:
        return self.blocks_dir / key[-3:-1] / f"{key}.data"

    def _path(self, cid: CID) -> Path:
        return self._path_of_key(block_key(cid))

    def _has_key(self, key: str) -> bool:
        return self.packed.has(key) or self._path_of_key(key).exists()

    def has(self, cid: CID) -> bool:
        return cid.hashfun.code == IDENTITY or self._has_key(block_key(cid))

    def get(self, cid: CID) -> bytes:
        if cid.hashfun.code == IDENTITY:
            return bytes(cid.raw_digest)
        key = block_key(cid)
        data = self.packed.get(key)
        packed = data is not None
        if data is None:
            try:
                data = self._path_of_key(key).read_bytes()
            except FileNotFoundError:
                raise NotFound(
                    f"block {cid} is not in the store", hint="add the content or import a CAR that holds it"
                ) from None
        try:
            verify_block(cid, data)
        except IntegrityError as error:
            where = f"row {key} of {self.packed.path}" if packed else f"file {self._path_of_key(key)}"
            raise IntegrityError(f"{error.message} ({where})", hint=error.hint) from None
        return data

    def put(self, cid: CID, data: bytes) -> None:
        verify_block(cid, data)
        with self.transaction() as tx:
            tx.put(cid, data)

    def delete(self, cid: CID) -> None:
        with _flock(self._gc_lock, fcntl.LOCK_EX):
            if bytes(cid.digest) in self._pinned_multihashes():
                raise InvalidInput(f"block {cid} is pinned", hint="unpin the DAG that holds it first")
            if self.packed.delete([block_key(cid)]):
                return
            try:
                self._path(cid).unlink()
            except FileNotFoundError:
                raise NotFound(f"block {cid} is not in the store", hint="nothing to delete") from None

    def stat(self, cid: CID) -> BlockStat:
        size = self.packed.size(block_key(cid))
        if size is not None:
            return BlockStat(cid, size)
        try:
            return BlockStat(cid, self._path(cid).stat().st_size)
        except FileNotFoundError:
            raise NotFound(f"block {cid} is not in the store", hint="add the content first") from None

    @contextlib.contextmanager
    def transaction(self) -> Iterator[Transaction]:
        """Stage blocks and make them visible together; on any error none of them appear."""
        with _flock(self._gc_lock, fcntl.LOCK_SH):
            tx = Transaction(self)
            try:
                yield tx
                tx.commit()  # inside the guard: a write that fails while draining must roll back too
            except OSError as error:
                tx.rollback()
                raise Unavailable(
                    f"the block store at {self.root} could not write: {error.strerror or error}",
                    hint="free disk space or fix the store's permissions, then retry; nothing was added",
                ) from error
            except BaseException:
                tx.rollback()
                raise

    def stage(self) -> Transaction:
        """A transaction the caller commits later, maybe with others (:func:`commit_together`), maybe from another
        thread: it holds its own shared gc lock from now until it is committed or rolled back, so gc can neither
        sweep its staging files nor collect its blocks before whoever pins them has committed the pins."""
        tx = Transaction(self, threads=0)
        fd = os.open(self._gc_lock, os.O_RDWR | os.O_CREAT, 0o644)
        fcntl.flock(fd, fcntl.LOCK_SH)
        tx._gc_fd = fd
        return tx

    def iter_keys(self) -> Iterator[str]:
        """The key of every stored block: the packed ones, then the files."""
        yield from self.packed.stored_keys()
        for key, _path in self._block_files():
            yield key

    def _block_files(self) -> Iterator[tuple[str, Path]]:
        for shard in sorted(self.blocks_dir.iterdir()):
            for path in sorted(shard.glob("*.data")):
                yield path.name.removesuffix(".data"), path

    def local_cids(self) -> Iterator[CID]:
        """Every stored block as a CIDv1 raw (blocks are kept by multihash; `ipfs refs local` names them so)."""
        return (_cid_of_key(key) for key in self.iter_keys())

    def _replace_raw(self, cid: CID, data: bytes) -> None:
        """Overwrite a stored block's bytes unchecked: how tests simulate a corrupt disk."""
        key = block_key(cid)
        if not self.packed.replace_raw(key, data):
            self._path_of_key(key).write_bytes(data)

    def _remove_raw(self, cid: CID) -> None:
        """Remove a stored block even if pinned: how tests simulate lost data."""
        key = block_key(cid)
        if not self.packed.delete([key]):
            self._path_of_key(key).unlink()

    # -- pins ---------------------------------------------------------------------------------------------
    def pin(self, cid: CID) -> None:
        """Pin ``cid`` and everything below it; refused (pins unchanged) unless the whole DAG is present."""
        with _flock(self._gc_lock, fcntl.LOCK_SH):
            for _ in walk_dag(cid, self.get):
                pass
            self.pin_index.add([cid])

    def unpin(self, cid: CID) -> None:
        if not self.pin_index.remove(cid):
            raise NotFound(f"{cid} is not pinned", hint="`twinledger ipfs pin ls` lists the pins")

    def pins(self) -> list[CID]:
        return list(self.pin_index)

    def _pinned_multihashes(self) -> set[bytes]:
        reachable: set[bytes] = set()
        for root in self.pins():
            for cid, _ in walk_dag(root, self.get):
                reachable.add(bytes(cid.digest))
        return reachable

    def gc(self) -> list[CID]:
        """Delete every block no recursive pin reaches, and abandoned staging files; returns what went."""
        with _flock(self._gc_lock, fcntl.LOCK_EX):
            keep = {_key_of_multihash(mh) for mh in self._pinned_multihashes()}
            removed: list[CID] = []
            packed = [key for key in self.packed.stored_keys() if key not in keep]
            self.packed.delete(packed)
            removed.extend(_cid_of_key(key) for key in packed)
            for key, path in self._block_files():
                if key not in keep:
                    path.unlink()
                    removed.append(_cid_of_key(key))
            for leftover in self.tmp_dir.iterdir():  # staging files of writers that crashed
                leftover.unlink(missing_ok=True)
            return removed

    # -- imports ------------------------------------------------------------------------------------------
    def _import_and_pin(self, build: Callable[[Transaction], ImportResult], *, pin: bool) -> ImportResult:
        with _flock(self._gc_lock, fcntl.LOCK_SH):  # held until pinned, so gc cannot take the new blocks
            with self.transaction() as tx:
                result = build(tx)
            if pin:
                # The import just wrote (or found present) every block of this DAG under the gc lock: walking it
                # again to prove completeness would re-read and re-hash all of it (a quarter of the import's time).
                self.pin_index.add([result.cid])
        return result

    def add_path(self, path: Path, options: ImportOptions, *, pin: bool = True) -> ImportResult:
        return self._import_and_pin(lambda tx: import_path(tx, path, options), pin=pin)

    def add_stream(self, stream: BinaryIO, options: ImportOptions, *, pin: bool = True) -> ImportResult:
        return self._import_and_pin(lambda tx: import_stream(tx, stream, options), pin=pin)

    def import_car(self, stream: BinaryIO, *, pin_roots: bool = True) -> list[CID]:
        from twinledger.ipfs.car import read_car_into

        with _flock(self._gc_lock, fcntl.LOCK_SH):
            with self.transaction() as tx:
                roots = read_car_into(tx, stream, require_complete=pin_roots)
            if pin_roots:  # read_car_into found every root's DAG complete, and gc waits for this shared lock
                self.pin_index.add(roots)
        return roots

    def put_dag(self, root: CID, blocks: list[tuple[CID, bytes]]) -> None:
        """Store a DAG its caller has just built (the anchor worker's batch) and pin `root`, in one transaction.
        Every block is checked against its CID; unlike :meth:`import_car` the DAG is not walked again for
        completeness (the caller vouches for it), which decoding a 2,048-link dag-cbor batch block made cost more
        than writing the batch."""
        with _flock(self._gc_lock, fcntl.LOCK_SH):
            with self.transaction() as tx:
                for cid, data in blocks:
                    verify_block(cid, data)
                    tx.put(cid, data)
                if not tx.has(root):
                    raise InvalidInput(f"the DAG's root {root} is not among its blocks")
            self.pin_index.add([root])

    def export_car(self, root: CID, out: BinaryIO) -> None:
        from twinledger.ipfs.car import write_car

        write_car(out, [root], walk_dag(root, self.get))


PIN_INDEX_POINTER = "pins-index"
REMOTE_PINS = "database:"  # a pins-index naming a database server, not a file (the node's PostgreSQL)


def _pin_index_of(root: Path) -> PinIndex:
    """The pins of the store at `root`: in the database its `pins-index` file names, else its own pins.sqlite."""
    try:
        location = (root / PIN_INDEX_POINTER).read_text().strip()
    except FileNotFoundError:
        return PinIndex(root / "pins.sqlite")
    if location.startswith(REMOTE_PINS):
        # Fail closed: without the pins, gc would take every block the node stores.
        raise IntegrityError(
            f"the pins of the block store at {root} are in a database this command cannot open "
            f"({location.removeprefix(REMOTE_PINS)})",
            hint="collect garbage through the node that owns the store; do not open it with the CLI",
        )
    return PinIndex(Path(location))


def _write_atomically(path: Path, data: bytes) -> None:
    if path.exists() and path.read_bytes() == data:
        return
    fd, name = tempfile.mkstemp(dir=path.parent, prefix=path.name, suffix=".tmp")
    _write_and_close(fd, data, sync=True)
    os.replace(name, path)
    fsync_dir(path.parent)


def _key_of_multihash(multihash: bytes) -> str:
    return base64.b32encode(multihash).decode().rstrip("=")


def _cid_of_key(key: str) -> CID:
    """Blocks are stored by multihash, so like Kubo's `repo gc` we name them as CIDv1 raw."""
    multihash = base64.b32decode(key + "=" * (-len(key) % 8))
    return to_cid(b"\x01\x55" + multihash)
