"""The Kubo backend against Kubo RPC responses replayed by a local HTTP server.

No Kubo binary can run on these machines. The responses below are written in the shapes Kubo's RPC returns
(kubo/core/commands: add, block, pin, repo gc, dag); the backend is exercised against a real daemon only
under docker-compose (see docs/ipfs.md).
"""

from __future__ import annotations

import io
import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import ClassVar
from urllib.parse import parse_qs, urlparse

import pytest

from twinledger.errors import IntegrityError, NotFound, Unavailable
from twinledger.ipfs import ImportOptions, KuboStore, cat, parse_cid

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


@pytest.fixture
def kubo() -> Iterator[tuple[KuboStore, type[_Replay]]]:
    _Replay.requests = []
    _Replay.responses = {
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
        yield KuboStore(f"/ip4/127.0.0.1/tcp/{server.server_address[1]}/http"), _Replay
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


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
    sent = {
        k: [v.lower() for v in query[k]] for k in ("cid-version", "raw-leaves", "chunker", "trickle", "max-file-links")
    }
    assert sent == {
        "cid-version": ["1"],
        "raw-leaves": ["true"],
        "chunker": ["size-1024"],
        "trickle": ["true"],
        "max-file-links": ["174"],
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
    assert replay.requests[-1][1]["pin-roots"] == ["true"]


def test_unreachable_kubo_is_unavailable() -> None:
    store = KuboStore("/ip4/127.0.0.1/tcp/9/http", timeout=5)
    with pytest.raises(Unavailable, match="did not answer"):
        store.pins()
