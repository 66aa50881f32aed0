"""The Kubo backend: the same BlockStore interface over a Kubo node's RPC API, through ipfshttpclient.

``ipfshttpclient.connect()`` refuses every Kubo newer than 0.7 by version number, so the client is constructed
directly, and only RPC calls current Kubo still serves are used: add, block get/put/stat, pin add/rm/ls,
repo gc, dag import/export. Every block read is verified against its CID here, not trusted from the daemon.
"""

from __future__ import annotations

import contextlib
import io
from collections.abc import Iterator
from pathlib import Path
from typing import Any, BinaryIO

import ipfshttpclient
from ipfshttpclient import exceptions as ipfs_errors
from multiformats import CID

from twinledger.errors import IntegrityError, InvalidInput, NotFound, TwinledgerError, Unavailable
from twinledger.ipfs.cids import codec_name, parse_cid, verify_block
from twinledger.ipfs.importer import ImportResult, check_readable
from twinledger.ipfs.options import ImportOptions
from twinledger.ipfs.store import BlockStat

DEFAULT_KUBO_ADDR = "/ip4/127.0.0.1/tcp/5001/http"


class KuboStore:
    """A Kubo node as a BlockStore. ``addr`` is a multiaddr such as /ip4/127.0.0.1/tcp/5001/http."""

    def __init__(self, addr: str = DEFAULT_KUBO_ADDR, *, timeout: float = 60.0) -> None:
        self.addr = addr
        try:
            self._client = ipfshttpclient.Client(addr=addr, timeout=timeout)
        except ipfs_errors.AddressError:
            raise InvalidInput(
                f"'{addr}' is not a Kubo RPC multiaddr", hint="use e.g. /ip4/127.0.0.1/tcp/5001/http"
            ) from None

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
        params = options.kubo_params()
        with self._rpc("add"):
            answer = self._client.add(
                what,
                recursive=recursive,
                trickle=options.layout == "trickle",
                chunker=params["chunker"],
                raw_leaves=options.raw_leaves,
                cid_version=options.cid_version,
                pin=pin,
                opts={"max-file-links": params["max-file-links"], "hidden": params["hidden"]},
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
        return roots

    def export_car(self, root: CID, out: BinaryIO) -> None:
        with self._rpc(f"dag export {root}"):
            for chunk in self._client.dag.export(str(root), stream=True):
                out.write(chunk)

    def close(self) -> None:
        with contextlib.suppress(TwinledgerError, ipfs_errors.Error):
            self._client.close()
