"""A JSON-RPC proxy in front of anvil that limits eth_getLogs the way public providers do."""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx

MAX_RANGE = 1000  # blocks per eth_getLogs
MAX_RESULTS = 1000  # logs per eth_getLogs


@dataclass
class Limits:
    upstream: str
    refused: list[str] = field(default_factory=list)  # why each refused eth_getLogs was refused
    served: list[tuple[int, int, int]] = field(default_factory=list)  # (from, to, logs) of each one answered
    lock: threading.Lock = field(default_factory=threading.Lock)

    def _block(self, tag: Any, http: httpx.Client) -> int:
        if tag in (None, "latest", "pending", "safe", "finalized"):
            return int(self._call(http, "eth_blockNumber", [])["result"], 16)
        return 0 if tag == "earliest" else int(tag, 16)

    def _call(self, http: httpx.Client, method: str, params: Any, ident: Any = 1) -> dict[str, Any]:
        body = {"jsonrpc": "2.0", "id": ident, "method": method, "params": params}
        return dict(http.post(self.upstream, json=body).json())

    def answer(self, request: dict[str, Any], http: httpx.Client) -> dict[str, Any]:
        if request.get("method") != "eth_getLogs":
            return self._call(http, request["method"], request.get("params", []), request.get("id"))
        (query,) = request["params"]
        ident = request.get("id")
        if "blockHash" not in query:
            low, high = self._block(query.get("fromBlock"), http), self._block(query.get("toBlock"), http)
            if high - low + 1 > MAX_RANGE:
                return self._refuse(ident, f"block range too large: {low}..{high} exceeds {MAX_RANGE} blocks")
        answer = self._call(http, "eth_getLogs", [query], ident)
        logs = answer.get("result") or []
        if len(logs) > MAX_RESULTS:
            return self._refuse(ident, f"query returned more than {MAX_RESULTS} results")
        if "blockHash" not in query:
            with self.lock:
                self.served.append((low, high, len(logs)))
        return answer

    def _refuse(self, ident: Any, message: str) -> dict[str, Any]:
        with self.lock:
            self.refused.append(message)
        return {"jsonrpc": "2.0", "id": ident, "error": {"code": -32005, "message": message}}


class LimitedRpc:
    """`with LimitedRpc(anvil_url) as proxy:` serves `proxy.url` on loopback until the block ends."""

    def __init__(self, upstream: str) -> None:
        self.limits = Limits(upstream)
        limits = self.limits

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                request = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                with httpx.Client(timeout=30) as http:
                    if isinstance(request, list):
                        answer: Any = [limits.answer(r, http) for r in request]
                    else:
                        answer = limits.answer(request, http)
                data = json.dumps(answer).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> LimitedRpc:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=10)
