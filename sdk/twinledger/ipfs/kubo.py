"""The Kubo backend: the same BlockStore interface over a Kubo node's RPC API, through ipfshttpclient.

``ipfshttpclient.connect()`` refuses every Kubo newer than 0.7 by version number, so the client is constructed
directly, and only RPC calls current Kubo still serves are used: version, config, add, block get/put/stat,
pin add/rm/ls, repo gc, dag import/export. Every block read is verified against its CID here, not trusted from
the daemon. A daemon older than MIN_KUBO_VERSION is refused when the store is opened: its `ipfs add` shards a
directory exactly at the HAMT threshold (the importer does not), refuses chunks over 1 MiB and has neither the
unixfs-v1-2025 profile nor its block-based HAMT size estimation.
"""

from __future__ import annotations

import contextlib
import io
import json
import re
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any, BinaryIO

import ipfshttpclient
from ipfshttpclient import exceptions as ipfs_errors
from multiformats import CID

from twinledger.config import DEFAULT_KUBO_ADDR
from twinledger.errors import IntegrityError, InvalidInput, NotFound, TwinledgerError, Unavailable
from twinledger.ipfs.cids import codec_name, parse_cid, verify_block
from twinledger.ipfs.importer import ImportResult, check_readable
from twinledger.ipfs.options import ImportOptions
from twinledger.ipfs.store import BlockStat

# ipfshttpclient still passes urllib3 its obsolete `strict` argument, and urllib3 warns about it on every
# connection pool: a CLI user would see that line before every answer.
warnings.filterwarnings("ignore", message="The 'strict' parameter is no longer needed", category=FutureWarning)
# Kubo 0.40.0 (boxo 0.37): chunks up to 2 MiB - 256, HAMT sharding only when a directory is over (not at) the
# threshold, block-based HAMT size estimation and the IPIP-499 profiles. The importer follows exactly that.
MIN_KUBO_VERSION = (0, 40, 0)
_VERSION = re.compile(r"^v?(\d+)\.(\d+)\.(\d+)(-\S+)?$")
# go-humanize's ParseBytes units, which Kubo's OptionalBytes (Import.UnixFSHAMTDirectorySizeThreshold) accepts.
_BYTES = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([kmgt]?)(i?)(b?)\s*$", re.IGNORECASE)


class KuboStore:
    """A Kubo node as a BlockStore. ``addr`` is a multiaddr such as /ip4/127.0.0.1/tcp/5001/http.

    Opening it asks the daemon for its version and refuses one older than MIN_KUBO_VERSION. With
    ``import_options`` (the node passes its content profile) it also writes them into Kubo's ``Import.*``
    configuration, so the daemon's own defaults, and the two settings `ipfs add` has no flag for, are ours.
    """

    def __init__(
        self, addr: str = DEFAULT_KUBO_ADDR, *, timeout: float = 60.0, import_options: ImportOptions | None = None
    ) -> None:
        self.addr = addr
        try:
            self._client = ipfshttpclient.Client(addr=addr, timeout=timeout)
        except ipfs_errors.AddressError:
            raise InvalidInput(
                f"'{addr}' is not a Kubo RPC multiaddr", hint="use e.g. /ip4/127.0.0.1/tcp/5001/http"
            ) from None
        self.version = self._check_version()
        if import_options is not None:
            self.configure_imports(import_options)

    def _check_version(self) -> str:
        with self._rpc("version"):
            version = str(self._client.version().get("Version") or "unknown")
        if not kubo_version_supported(version):
            minimum = ".".join(map(str, MIN_KUBO_VERSION))
            raise Unavailable(
                f"Kubo at {self.addr} is version {version}; twinledger needs Kubo {minimum} or newer, the first "
                "whose `ipfs add` gives the same CIDs as twinledger's importer",
                hint=f"upgrade Kubo to v{minimum} or later (docker-compose.yml pins one)",
            )
        return version

    def import_config(self) -> dict[str, Any]:
        """Kubo's ``Import`` configuration section as the daemon reports it (unset keys are null or absent)."""
        with self._rpc("config show"):
            return dict(self._client.config.get().get("Import") or {})

    def configure_imports(self, options: ImportOptions) -> None:
        """Set every ``Import.*`` key to ``options`` (like `ipfs config profile apply`, for any options).

        Kubo reads the HAMT threshold only when the daemon starts: if it had another value, the daemon must be
        restarted before directories are added, and this says so instead of letting CIDs differ silently.
        """
        before = _hamt_threshold(self.import_config())
        for key, value in options.kubo_import_config().items():
            with self._rpc(f"config Import.{key}"):
                self._client.config.set(f"Import.{key}", json.dumps(value), opts={"json": "true"})
        if before != options.hamt_threshold:
            raise Unavailable(
                f"Kubo at {self.addr} had Import.UnixFSHAMTDirectorySizeThreshold={before}; it is now "
                f"{options.hamt_threshold}, but Kubo applies it only at start",
                hint="restart the Kubo daemon, then start twinledger again",
            )

    def _check_directory_settings(self, options: ImportOptions) -> None:
        """Refuse a directory add whose HAMT settings Kubo cannot be told per request and does not share."""
        config = self.import_config()
        estimation = config.get("UnixFSHAMTDirectorySizeEstimation") or "links"
        threshold = _hamt_threshold(config)
        if (estimation, threshold) != (options.hamt_size_estimation, options.hamt_threshold):
            raise InvalidInput(
                f"Kubo at {self.addr} shards directories with Import.UnixFSHAMTDirectorySizeEstimation={estimation} "
                f"and Import.UnixFSHAMTDirectorySizeThreshold={threshold}; these options need "
                f"{options.hamt_size_estimation} and {options.hamt_threshold}, and `ipfs add` has no flag for them",
                hint="apply the matching profile on the daemon (ipfs config profile apply NAME, then restart Kubo) "
                "or add with the profile the daemon has",
            )

    def __repr__(self) -> str:
        return f"KuboStore({self.addr!r})"

    @contextlib.contextmanager
    def _rpc(self, what: str) -> Iterator[None]:
        try:
            yield
        except (ipfs_errors.ConnectionError, ipfs_errors.TimeoutError) as error:
            raise Unavailable(
                f"Kubo at {self.addr} did not answer {what} ({error})",
                hint="start Kubo (docker compose up ipfs) or set TWINLEDGER_IPFS_BACKEND=embedded",
            ) from None
        except ipfs_errors.ErrorResponse as error:
            text = str(error)
            if "not found" in text or "not pinned" in text:
                raise NotFound(f"Kubo {what}: {text}", hint="add the content to Kubo first") from None
            raise InvalidInput(f"Kubo refused {what}: {text}", hint="check the CID and the flags") from None
        except ipfs_errors.Error as error:
            raise Unavailable(f"Kubo {what} failed: {error}", hint="check the Kubo daemon's log") from None

    # -- blocks -------------------------------------------------------------------------------------------
    def has(self, cid: CID) -> bool:
        try:
            self.stat(cid)
        except NotFound:
            return False
        return True

    def get(self, cid: CID) -> bytes:
        with self._rpc(f"block get {cid}"):
            data = self._client.block.get(str(cid), offline=True)
        verify_block(cid, data)
        return bytes(data)

    def put(self, cid: CID, data: bytes) -> None:
        verify_block(cid, data)
        opts = {"cid-codec": codec_name(cid), "mhtype": cid.hashfun.name}
        with self._rpc(f"block put {cid}"):
            answer = self._client.block.put(io.BytesIO(data), opts=opts)
        stored = parse_cid(answer["Key"])
        if bytes(stored.digest) != bytes(cid.digest):
            raise IntegrityError(
                f"Kubo stored block {cid} as {stored}",
                hint="the daemon hashed different bytes; check its version",
            )

    def delete(self, cid: CID) -> None:
        raise InvalidInput(
            f"the Kubo backend does not delete single blocks ({cid})",
            hint="unpin the DAG and run `twinledger ipfs gc`, which runs Kubo's repo gc",
        )

    def stat(self, cid: CID) -> BlockStat:
        with self._rpc(f"block stat {cid}"):
            answer = self._client.block.stat(str(cid), offline=True)
        return BlockStat(cid, int(answer["Size"]))

    # -- pins ---------------------------------------------------------------------------------------------
    def pin(self, cid: CID) -> None:
        with self._rpc(f"pin add {cid}"):
            self._client.pin.add(str(cid), recursive=True)

    def unpin(self, cid: CID) -> None:
        with self._rpc(f"pin rm {cid}"):
            self._client.pin.rm(str(cid), recursive=True)

    def pins(self) -> list[CID]:
        with self._rpc("pin ls"):
            answer = self._client.pin.ls(type="recursive")
        return [parse_cid(key) for key in answer["Keys"]]

    def gc(self) -> list[CID]:
        with self._rpc("repo gc"):
            answer = self._client.repo.gc()
        return [parse_cid(item["Key"]["/"]) for item in answer if item.get("Key")]

    # -- imports ------------------------------------------------------------------------------------------
    def _add(self, what: Any, options: ImportOptions, *, pin: bool, recursive: bool) -> ImportResult:
        if recursive:
            self._check_directory_settings(options)
        params = options.kubo_params()
        named = ("cid-version", "raw-leaves", "chunker", "trickle")  # the ones ipfshttpclient takes as arguments
        with self._rpc("add"):
            answer = self._client.add(
                what,
                recursive=recursive,
                trickle=options.layout == "trickle",
                chunker=params["chunker"],
                raw_leaves=options.raw_leaves,
                cid_version=options.cid_version,
                pin=pin,
                opts={name: value for name, value in params.items() if name not in named},
            )
        last = answer[-1] if isinstance(answer, list) else answer  # Kubo reports the root last
        return ImportResult(parse_cid(last["Hash"]), int(last.get("Size", 0)))

    def add_path(self, path: Path, options: ImportOptions, *, pin: bool = True) -> ImportResult:
        check_readable(path, options)
        return self._add(str(path), options, pin=pin, recursive=path.is_dir())

    def add_stream(self, stream: BinaryIO, options: ImportOptions, *, pin: bool = True) -> ImportResult:
        return self._add(stream, options, pin=pin, recursive=False)

    def import_car(self, stream: BinaryIO, *, pin_roots: bool = True) -> list[CID]:
        with self._rpc("dag import"):
            answer = self._client.dag.imprt(stream, opts={"pin-roots": str(pin_roots).lower()})
        items = answer if isinstance(answer, list) else [answer]
        roots: list[CID] = []
        for item in items:
            root = item.get("Root")
            if not root:
                continue
            if root.get("PinErrorMsg"):
                raise IntegrityError(
                    f"Kubo could not pin CAR root {root['Cid']['/']}: {root['PinErrorMsg']}",
                    hint="the CAR does not hold the whole DAG",
                )
            roots.append(parse_cid(root["Cid"]["/"]))
        if pin_roots:
            # `pin-roots` pinned them (and proved the CAR whole); pinned again through `pin/add`, which a Kubo
            # answers at once for a pinned root and IPFS Cluster's proxy turns into a cluster pin: the proxy
            # forwards `dag/import` to Kubo untouched, so its pins alone would stay on this one Kubo.
            for root in roots:
                self.pin(root)
        return roots

    def put_dag(self, root: CID, blocks: list[tuple[CID, bytes]]) -> None:
        """Store a DAG its caller has just built and pin `root`: one `dag import` of a CAR holding it."""
        from twinledger.ipfs.car import write_car

        car = io.BytesIO()
        write_car(car, [root], blocks)
        car.seek(0)
        self.import_car(car, pin_roots=True)

    def export_car(self, root: CID, out: BinaryIO) -> None:
        with self._rpc(f"dag export {root}"):
            for chunk in self._client.dag.export(str(root), stream=True):
                out.write(chunk)

    def close(self) -> None:
        with contextlib.suppress(TwinledgerError, ipfs_errors.Error):
            self._client.close()


def kubo_version_supported(version: str) -> bool:
    """Whether a Kubo version string (``0.40.1``, ``v0.41.0-dev``) is MIN_KUBO_VERSION or newer.

    A pre-release of the minimum (0.40.0-rc1) is older than it; unreadable versions are refused.
    """
    match = _VERSION.match(version)
    if match is None:
        return False
    number = tuple(int(part) for part in match.groups()[:3])
    return number > MIN_KUBO_VERSION or (number == MIN_KUBO_VERSION and not match[4])


def _hamt_threshold(config: dict[str, Any]) -> int:
    """Import.UnixFSHAMTDirectorySizeThreshold in bytes (Kubo's default 256 KiB when unset)."""
    value = config.get("UnixFSHAMTDirectorySizeThreshold")
    if value is None:
        return 256 * 1024
    match = _BYTES.match(str(value))
    if match is None:
        raise InvalidInput(
            f"Kubo's Import.UnixFSHAMTDirectorySizeThreshold={value} is not a byte size twinledger reads",
            hint="set it to a number of bytes, e.g. 262144",
        )
    number, prefix, binary, _ = match.groups()
    power = " kmgt".index(prefix.lower() or " ")
    return int(float(number) * (1024 if binary else 1000) ** power)
