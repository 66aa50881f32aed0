"""The Kubo backend against Kubo RPC responses replayed by a local HTTP server.

No Kubo binary can run on these machines. The responses below are written in the shapes Kubo's RPC returns
(kubo/core/commands: version, config, add, block, pin, repo gc, dag; the version fields and numbers are those of
Kubo's version.go at the tags named); the backend is exercised against a real daemon only under docker-compose
(see docs/ipfs.md).
"""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import ClassVar
from urllib.parse import parse_qs, urlparse

import pytest
from eth_account.signers.local import LocalAccount

from twinledger.chain.client import ChainClient
from twinledger.chain.deploy import Deployment
from twinledger.errors import IntegrityError, InvalidInput, NotFound, Unavailable
from twinledger.ipfs import ImportOptions, IPFSConfig, KuboStore, cat, open_store, parse_cid
from twinledger_node.runtime import ChainSetup, NodeRuntime
from twinledger_node.services.snapshots import CONTENT_PROFILE
from twinledger_node.settings import NodeSettings

HELLO_V0 = "Qmf412jQZiuVUtdgnB36FXFX7xg5V6KEbSJ4dpQuhkLyfD"
HELLO_V0_BLOCK = bytes.fromhex("0a110802120b68656c6c6f20776f726c64180b")
HELLO_V1 = "bafkreifzjut3te2nhyekklss27nh3k72ysco7y32koao5eei66wof36n5e"
MISSING = "bafkreihdwdcefgh4dqkjv67uzcmw7ojee6xedzdetojuzjevtenxquvyku"
NOT_FOUND = {"Message": f"block was not found locally (offline): ipld: could not find {MISSING}", "Code": 0}


class _Replay(BaseHTTPRequestHandler):
    responses: ClassVar[dict[str, tuple[int, str, bytes]]] = {}
    requests: ClassVar[list[tuple[str, dict[str, list[str]]]]] = []

    def do_POST(self) -> None:
        url = urlparse(self.path)
        query = parse_qs(url.query)
        length = int(self.headers.get("Content-Length") or 0)
        if length:
            self.rfile.read(length)
        elif self.headers.get("Transfer-Encoding") == "chunked":
            while (size := int(self.rfile.readline().strip(), 16)) > 0:
                self.rfile.read(size + 2)
            self.rfile.readline()
        self.requests.append((url.path, query))
        key = url.path + "?" + ",".join(query.get("arg", []))
        status, kind, body = self.responses.get(key) or self.responses[url.path]
        self.send_response(status)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        return None


def _json(value: object, status: int = 200) -> tuple[int, str, bytes]:
    return status, "application/json", json.dumps(value).encode()


def _ndjson(*values: object) -> tuple[int, str, bytes]:
    return 200, "application/json", b"".join(json.dumps(v).encode() + b"\n" for v in values)


def _version(number: str) -> tuple[int, str, bytes]:
    # kubo/version.go GetVersionInfo at that tag (repo version 18 from 0.38 to 0.40)
    return _json({"Version": number, "Commit": "", "Repo": "18", "System": "amd64/linux", "Golang": "go1.25.7"})


@pytest.fixture
def replay() -> Iterator[tuple[str, type[_Replay]]]:
    """A replaying Kubo 0.40.1 with a fresh configuration (no Import.* key set); tests may change responses."""
    _Replay.requests = []
    _Replay.responses = {
        "/api/v0/version": _version("0.40.1"),
        "/api/v0/config/show": _json({"Import": {}, "Identity": {"PeerID": "12D3KooWtest"}}),
        "/api/v0/config": _json({"Key": "Import", "Value": None}),
        "/api/v0/add": _ndjson({"Name": "h.txt", "Hash": HELLO_V1, "Size": "11"}),
        f"/api/v0/block/get?{HELLO_V0}": (200, "text/plain", HELLO_V0_BLOCK),
        f"/api/v0/block/get?{HELLO_V1}": (200, "text/plain", b"hello w0rld"),  # a lying daemon
        f"/api/v0/block/stat?{HELLO_V1}": _json({"Key": HELLO_V1, "Size": 11}),
        f"/api/v0/block/stat?{MISSING}": _json(NOT_FOUND | {"Type": "error"}, 500),
        "/api/v0/block/put": _json({"Key": HELLO_V1, "Size": 11}),
        "/api/v0/pin/add": _json({"Pins": [HELLO_V0]}),
        "/api/v0/pin/rm": _json({"Pins": [HELLO_V0]}),
        "/api/v0/pin/ls": _json({"Keys": {HELLO_V0: {"Type": "recursive"}}}),
        "/api/v0/repo/gc": _ndjson({"Key": {"/": MISSING}}),
        "/api/v0/dag/import": _ndjson({"Root": {"Cid": {"/": HELLO_V0}, "PinErrorMsg": ""}}),
    }
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Replay)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"/ip4/127.0.0.1/tcp/{server.server_address[1]}/http", _Replay
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


@pytest.fixture
def kubo(replay: tuple[str, type[_Replay]]) -> tuple[KuboStore, type[_Replay]]:
    addr, server = replay
    return KuboStore(addr), server


def test_add_passes_kubo_import_flags(kubo: tuple[KuboStore, type[_Replay]], tmp_path: Path) -> None:
    store, replay = kubo
    source = tmp_path / "h.txt"
    source.write_bytes(b"hello world")
    options = ImportOptions.from_kubo_flags(["--cid-version=1", "--chunker=size-1024", "--trickle"])
    result = store.add_path(source, options)
    assert str(result.cid) == HELLO_V1
    path, query = replay.requests[-1]
    assert path == "/api/v0/add"
    # ipfshttpclient sends Python's "True"; Kubo parses flags with Go's strconv.ParseBool, which accepts it
    # Every parameter that decides the CID is sent, so the daemon's Import.* configuration cannot change it.
    ignored = ("pin", "only-hash", "nocopy", "stream-channels", "wrap-with-directory")  # do not decide the CID
    sent = {k: [v.lower() for v in values] for k, values in query.items() if k not in ignored}
    assert sent == {
        "cid-version": ["1"],
        "raw-leaves": ["true"],
        "chunker": ["size-1024"],
        "hash": ["sha2-256"],
        "trickle": ["true"],
        "max-file-links": ["174"],
        "max-directory-links": ["0"],
        "max-hamt-fanout": ["256"],
        "hidden": ["false"],
    }


def test_blocks_are_verified(kubo: tuple[KuboStore, type[_Replay]]) -> None:
    store, _ = kubo
    assert b"".join(cat(store, HELLO_V0)) == b"hello world"
    with pytest.raises(IntegrityError, match=HELLO_V1):
        store.get(parse_cid(HELLO_V1))


def test_stat_has_and_missing(kubo: tuple[KuboStore, type[_Replay]]) -> None:
    store, _ = kubo
    assert store.stat(parse_cid(HELLO_V1)).size == 11
    assert store.has(parse_cid(HELLO_V1))
    assert not store.has(parse_cid(MISSING))
    with pytest.raises(NotFound, match=MISSING):
        store.stat(parse_cid(MISSING))


def test_put_pins_gc_and_car(kubo: tuple[KuboStore, type[_Replay]]) -> None:
    store, replay = kubo
    store.put(parse_cid(HELLO_V1), b"hello world")
    assert replay.requests[-1][1]["cid-codec"] == ["raw"]
    with pytest.raises(IntegrityError):
        store.put(parse_cid(HELLO_V1), b"not hello")
    store.pin(parse_cid(HELLO_V0))
    assert [str(c) for c in store.pins()] == [HELLO_V0]
    assert replay.requests[-1][1]["type"] == ["recursive"]
    store.unpin(parse_cid(HELLO_V0))
    assert [str(c) for c in store.gc()] == [MISSING]
    assert [str(c) for c in store.import_car(io.BytesIO(b"car bytes"))] == [HELLO_V0]
    imported, pinned = replay.requests[-2:]
    assert imported[0].endswith("/dag/import") and imported[1]["pin-roots"] == ["true"]
    # ...and the roots through pin/add as well: what an IPFS Cluster proxy makes cluster pins (it passes dag/import)
    assert pinned[0].endswith("/pin/add") and pinned[1]["arg"] == [HELLO_V0] and pinned[1]["recursive"] == ["True"]


def test_unreachable_kubo_is_unavailable() -> None:
    with pytest.raises(Unavailable, match="did not answer version"):
        KuboStore("/ip4/127.0.0.1/tcp/9/http", timeout=5)


@pytest.mark.parametrize("version", ["0.38.1", "0.39.0", "0.40.0-rc2"])
def test_a_kubo_older_than_0_40_is_refused_when_opened(replay: tuple[str, type[_Replay]], version: str) -> None:
    addr, server = replay
    server.responses["/api/v0/version"] = _version(version)
    with pytest.raises(Unavailable, match=rf"is version {version}; twinledger needs Kubo 0.40.0 or newer"):
        KuboStore(addr)
    assert [path for path, _ in server.requests] == ["/api/v0/version"]  # refused before anything else


@pytest.mark.parametrize("version", ["0.40.0", "0.40.1", "0.41.0-dev", "1.0.0"])
def test_kubo_0_40_and_newer_are_accepted(replay: tuple[str, type[_Replay]], version: str) -> None:
    addr, server = replay
    server.responses["/api/v0/version"] = _version(version)
    assert KuboStore(addr).version == version


def test_the_cli_refuses_an_old_kubo_in_one_line(replay: tuple[str, type[_Replay]], tmp_path: Path) -> None:
    addr, server = replay
    server.responses["/api/v0/version"] = _version("0.38.1")
    env = os.environ | {"TWINLEDGER_IPFS_BACKEND": "kubo", "TWINLEDGER_IPFS_KUBO_ADDR": addr, "COLUMNS": "300"}
    code = "from twinledger.cli.main import main; main()"
    done = subprocess.run([sys.executable, "-c", code, "ipfs", "pin", "ls"], capture_output=True, text=True, env=env)
    assert done.returncode == 5
    first = done.stderr.splitlines()[0]
    assert "is version 0.38.1" in first and "needs Kubo 0.40.0 or newer" in first, done.stderr


def test_the_nodes_profile_is_written_into_kubos_import_config(replay: tuple[str, type[_Replay]]) -> None:
    addr, server = replay
    store = open_store(IPFSConfig(backend="kubo", kubo_addr=addr, import_profile="unixfs-v1-2025"))
    assert isinstance(store, KuboStore)
    written = {
        q["arg"][0]: (json.loads(q["arg"][1]), q["json"]) for path, q in server.requests if path == "/api/v0/config"
    }
    assert written == {
        f"Import.{key}": (value, ["true"])
        for key, value in ImportOptions.profile("unixfs-v1-2025").kubo_import_config().items()
    }


def test_a_changed_hamt_threshold_asks_for_a_kubo_restart(replay: tuple[str, type[_Replay]]) -> None:
    addr, server = replay
    server.responses["/api/v0/config/show"] = _json({"Import": {"UnixFSHAMTDirectorySizeThreshold": "1MiB"}})
    with pytest.raises(Unavailable, match=r"had Import\.UnixFSHAMTDirectorySizeThreshold=1048576.*only at start"):
        KuboStore(addr, import_options=ImportOptions.profile("unixfs-v1-2025"))


def test_directory_add_needs_kubos_hamt_settings(replay: tuple[str, type[_Replay]], tmp_path: Path) -> None:
    addr, server = replay
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "a.txt").write_text("a")
    server.responses["/api/v0/add"] = _ndjson({"Name": "d", "Hash": HELLO_V0, "Size": "1"})
    store = KuboStore(addr)
    # a fresh Kubo estimates HAMT size from links (unixfs-v0-2015); unixfs-v1-2025 needs "block", which no
    # `ipfs add` flag can ask for: refused before anything is sent
    with pytest.raises(InvalidInput, match=r"UnixFSHAMTDirectorySizeEstimation=links.*need block"):
        store.add_path(tmp_path / "d", ImportOptions.profile("unixfs-v1-2025"))
    assert "/api/v0/add" not in [path for path, _ in server.requests]
    assert str(store.add_path(tmp_path / "d", ImportOptions()).cid) == HELLO_V0
    server.responses["/api/v0/config/show"] = _json(
        {"Import": {"UnixFSHAMTDirectorySizeEstimation": "block", "UnixFSHAMTDirectorySizeThreshold": "256KiB"}}
    )
    assert str(store.add_path(tmp_path / "d", ImportOptions.profile("unixfs-v1-2025")).cid) == HELLO_V0


@pytest.mark.chain
@pytest.mark.parametrize("version", ["0.38.1", "0.40.1"])
def test_the_node_checks_kubo_and_writes_its_profile_at_start(
    replay: tuple[str, type[_Replay]], anvil: str, deployment: Deployment, accounts: list[LocalAccount],
    tmp_path: Path, version: str,
) -> None:  # fmt: skip
    addr, server = replay
    server.responses["/api/v0/version"] = _version(version)
    settings = NodeSettings(data_dir=tmp_path, rpc_url=anvil, ipfs_backend="kubo", ipfs_kubo_addr=addr)
    chain = ChainSetup(ChainClient(anvil, accounts[9]), deployment, None)
    if version == "0.38.1":
        with pytest.raises(Unavailable, match=r"is version 0\.38\.1; twinledger needs Kubo 0\.40\.0 or newer"):
            NodeRuntime(settings, chain)
        assert "/api/v0/config" not in [path for path, _ in server.requests]
        return
    runtime = NodeRuntime(settings, chain)
    assert isinstance(runtime.store, KuboStore) and runtime.store.version == "0.40.1"
    written = {q["arg"][0] for path, q in server.requests if path == "/api/v0/config"}
    assert written == {f"Import.{key}" for key in ImportOptions.profile(CONTENT_PROFILE).kubo_import_config()}
