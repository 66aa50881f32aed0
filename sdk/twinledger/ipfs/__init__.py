"""Content-addressed storage for twinledger: Kubo-identical CIDs, a durable block store, CAR files, Kubo.

Public API (everything the node and the CLI use):

* ``ImportOptions`` — how bytes become a UnixFS DAG. ``ImportOptions()`` is Kubo's default profile
  (unixfs-v0-2015); ``ImportOptions.profile("unixfs-v1-2025")``; ``ImportOptions.from_kubo_flags([...])``
  takes `ipfs add` flags (--cid-version, --raw-leaves[=bool], --chunker=size-N, --max-file-links,
  --trickle, --profile, -r, -H).
* ``BlockStore`` — the protocol both backends implement: ``has/get/put/delete/stat`` (``get`` verifies
  every block against its CID), ``pin/unpin/pins`` (recursive), ``gc``, ``add_path/add_stream``,
  ``import_car/export_car``.
* ``FileBlockStore(path)`` — the embedded store; ``KuboStore(multiaddr)`` — a Kubo node over RPC (refuses a
  daemon older than Kubo 0.40.0; with ``import_options`` it sets the daemon's ``Import.*`` configuration).
* ``IPFSConfig`` / ``open_store(config)`` — choose the backend (env: TWINLEDGER_IPFS_BACKEND=embedded|kubo,
  TWINLEDGER_IPFS_PATH, TWINLEDGER_IPFS_KUBO_ADDR); ``import_profile`` is written into Kubo's configuration.
* ``import_file(store, stream, options, pin=True) -> ImportResult(cid, size)``; ``add_path(...)`` for files
  and directory trees; ``compute_cid(stream, options)`` for `--only-hash`.
* ``cat(store, cid) -> Iterator[bytes]``; ``get_to_path(store, cid, dest)`` writes files/directories out.
* ``export_car(store, root, out)`` (Kubo's order: depth-first, pre-order, no duplicates);
  ``import_car(store, stream, pin_roots=True) -> roots`` (verified; refused CARs leave the store unchanged).
* ``parse_cid(text)`` — a CID, or an InvalidInput naming the bad text.

Errors are twinledger.errors subclasses: InvalidInput, NotFound, IntegrityError, Unavailable.
"""

from __future__ import annotations

import io
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO, Literal

from multiformats import CID

from twinledger.config import DEFAULT_KUBO_ADDR
from twinledger.errors import InvalidInput
from twinledger.ipfs.cids import parse_cid
from twinledger.ipfs.dag import cat_blocks, directory_entries, symlink_target
from twinledger.ipfs.importer import DiscardSink, ImportResult, import_path, import_stream
from twinledger.ipfs.options import PROFILES, ImportOptions
from twinledger.ipfs.store import BlockStat, BlockStore, FileBlockStore

if TYPE_CHECKING:
    from twinledger.ipfs.kubo import KuboStore

__all__ = [
    "PROFILES",
    "BlockStat",
    "BlockStore",
    "FileBlockStore",
    "IPFSConfig",
    "ImportOptions",
    "ImportResult",
    "KuboStore",
    "add_path",
    "cat",
    "compute_cid",
    "export_car",
    "get_to_path",
    "import_car",
    "import_file",
    "open_store",
    "parse_cid",
]


def __getattr__(name: str) -> Any:
    # The Kubo client (ipfshttpclient, requests, ...) costs ~80 ms to import; processes on the embedded store,
    # the node's included, never load it.
    if name == "KuboStore":
        from twinledger.ipfs.kubo import KuboStore

        return KuboStore
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


@dataclass(frozen=True)
class IPFSConfig:
    backend: Literal["embedded", "kubo"] = "embedded"
    path: Path = Path.home() / ".twinledger" / "ipfs"
    kubo_addr: str = DEFAULT_KUBO_ADDR
    # The profile this process imports with; a Kubo backend gets it as its Import.* configuration.
    import_profile: str | None = None

    @classmethod
    def from_env(cls) -> IPFSConfig:
        backend = os.environ.get("TWINLEDGER_IPFS_BACKEND", "embedded")
        if backend not in ("embedded", "kubo"):
            raise InvalidInput(f"TWINLEDGER_IPFS_BACKEND={backend} is not a backend", hint="set it to embedded or kubo")
        return cls(
            backend=backend,  # type: ignore[arg-type]
            path=Path(os.environ.get("TWINLEDGER_IPFS_PATH", str(cls.path))),
            kubo_addr=os.environ.get("TWINLEDGER_IPFS_KUBO_ADDR", DEFAULT_KUBO_ADDR),
        )


def open_store(config: IPFSConfig | None = None) -> BlockStore:
    """The configured backend: the embedded FileBlockStore, or a KuboStore."""
    config = config or IPFSConfig.from_env()
    if config.backend == "kubo":
        from twinledger.ipfs.kubo import KuboStore

        profile = config.import_profile
        return KuboStore(config.kubo_addr, import_options=ImportOptions.profile(profile) if profile else None)
    return FileBlockStore(config.path)


def import_file(
    store: BlockStore, stream: BinaryIO, options: ImportOptions | None = None, *, pin: bool = True
) -> ImportResult:
    return store.add_stream(stream, options or ImportOptions(), pin=pin)


def add_path(store: BlockStore, path: Path, options: ImportOptions | None = None, *, pin: bool = True) -> ImportResult:
    return store.add_path(path, options or ImportOptions(), pin=pin)


def compute_cid(source: BinaryIO | Path | bytes, options: ImportOptions | None = None) -> ImportResult:
    """The CID Kubo would give ``source``, storing nothing (`ipfs add --only-hash`)."""
    options = options or ImportOptions()
    if isinstance(source, Path):
        return import_path(DiscardSink(), source, options)
    stream = io.BytesIO(source) if isinstance(source, bytes) else source
    return import_stream(DiscardSink(), stream, options)


def cat(store: BlockStore, cid: CID | str) -> Iterator[bytes]:
    return cat_blocks(parse_cid(cid), store.get)


def get_to_path(store: BlockStore, cid: CID | str, dest: Path) -> None:
    """Write the file, symlink or directory tree at ``cid`` to ``dest`` (which must not exist)."""
    root = parse_cid(cid)
    if dest.exists() or dest.is_symlink():
        raise InvalidInput(f"{dest} already exists", hint="choose a new output path with -o")
    _write_entry(store, root, dest)


def _write_entry(store: BlockStore, cid: CID, dest: Path) -> None:
    entries = directory_entries(cid, store.get)
    if entries is not None:
        dest.mkdir()
        for name, child in entries:
            _write_entry(store, child, dest / name)
        return
    target = symlink_target(cid, store.get)
    if target is not None:
        dest.symlink_to(target)
        return
    with dest.open("xb") as out:
        for chunk in cat_blocks(cid, store.get):
            out.write(chunk)


def export_car(store: BlockStore, root: CID | str, out: BinaryIO) -> None:
    store.export_car(parse_cid(root), out)


def import_car(store: BlockStore, stream: BinaryIO, *, pin_roots: bool = True) -> list[CID]:
    return store.import_car(stream, pin_roots=pin_roots)
