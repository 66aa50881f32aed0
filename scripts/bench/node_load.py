"""The load generator of scripts/bench/node.py, in a process of its own so its CPU never shares the server's GIL.

Every request is built and signed (RFC 9421, a fresh nonce each) before the timed window opens, then written as
raw bytes over keep-alive HTTP/1.1 connections: during the window the client only writes bytes and parses status
lines and lengths, so what is measured is the server.
"""

from __future__ import annotations

import asyncio
import os
import statistics
import time
from dataclasses import dataclass, field
from multiprocessing.connection import Connection

SIGNATURE_LIFETIME_S = 300  # the node's default signature window: pre-signed requests stay valid through a soak


@dataclass(frozen=True)
class Stream:
    """One client connection: who signs (an Ed25519 seed, hex; None: unsigned), what it sends, and to which port
    (None: the job's; replicas of one node listen on several)."""

    method: str
    path: str
    body_size: int = 0
    seed: str | None = None
    port: int | None = None


@dataclass(frozen=True)
class Job:
    host: str
    port: int
    streams: tuple[Stream, ...]
    count: int  # requests in the timed window, over all streams
    seconds: float  # the window closes after this long even if requests are left
    warmup: int = 1  # untimed requests per stream before the window (connection, caches)


@dataclass
class Result:
    done: int = 0  # 2xx answers in the window
    elapsed: float = 0.0
    latencies_ms: list[float] = field(default_factory=list)
    statuses: dict[int, int] = field(default_factory=dict)

    @property
    def rate(self) -> float:
        return self.done / self.elapsed if self.elapsed else 0.0

    @property
    def errors(self) -> dict[int, int]:
        return {s: n for s, n in self.statuses.items() if not 200 <= s < 300}

    def percentile(self, q: float) -> float:
        if not self.latencies_ms:
            return float("nan")
        if len(self.latencies_ms) < 2:
            return self.latencies_ms[0]
        return statistics.quantiles(self.latencies_ms, n=100, method="inclusive")[round(q * 100) - 1]


def build(job: Job, stream: Stream, n: int) -> list[bytes]:
    from twinledger.identity import DidKey, sign_request

    signer = DidKey(bytes.fromhex(stream.seed)) if stream.seed else None
    authority = f"{job.host}:{stream.port or job.port}"
    url = f"http://{authority}{stream.path}"
    out = []
    for _ in range(n):
        body = os.urandom(stream.body_size) if stream.body_size else b""
        headers = {"Host": authority, "User-Agent": "twinledger-bench"}
        if signer is not None:
            headers.update(sign_request(signer, stream.method, url, body, lifetime_s=SIGNATURE_LIFETIME_S))
        if stream.method != "GET":
            headers["Content-Type"] = "application/octet-stream"
            headers["Content-Length"] = str(len(body))
        head = f"{stream.method} {stream.path} HTTP/1.1\r\n" + "".join(f"{k}: {v}\r\n" for k, v in headers.items())
        out.append((head + "\r\n").encode() + body)
    return out


async def _response(reader: asyncio.StreamReader) -> tuple[int, bool]:
    """Read one response; (status, whether the server keeps the connection)."""
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split(" ", 2)[1])
    fields = {}
    for line in lines[1:]:
        if ":" in line:
            name, value = line.split(":", 1)
            fields[name.strip().lower()] = value.strip().lower()
    if fields.get("transfer-encoding") == "chunked":
        while True:
            size = int((await reader.readline()).split(b";")[0], 16)
            await reader.readexactly(size + 2)
            if size == 0:
                break
    else:
        await reader.readexactly(int(fields.get("content-length", "0")))
    return status, fields.get("connection") != "close"


class _Gate:
    """Clients report when warmed up, then all start together."""

    def __init__(self, clients: int) -> None:
        self.left, self.warmed, self.go = clients, asyncio.Event(), asyncio.Event()

    def ready(self) -> None:
        self.left -= 1
        if self.left == 0:
            self.warmed.set()


async def _client(job: Job, port: int, requests: list[bytes], warm: list[bytes], gate: _Gate, out: Result) -> None:
    reader, writer = await asyncio.open_connection(job.host, port)

    async def send(raw: bytes, *, after_idle: bool = False) -> int:
        nonlocal reader, writer
        writer.write(raw)
        try:
            status, keep = await _response(reader)
        except (asyncio.IncompleteReadError, ConnectionError):
            if not after_idle:
                raise
            # The server closed the connection while it waited for the others to warm up (keep-alive timeout):
            # the request never reached it, so it goes again on a new connection.
            writer.close()
            reader, writer = await asyncio.open_connection(job.host, port)
            writer.write(raw)
            status, keep = await _response(reader)
        if not keep:
            writer.close()
            reader, writer = await asyncio.open_connection(job.host, port)
        return status

    try:
        for raw in warm:
            await send(raw)
        gate.ready()
        await gate.go.wait()
        deadline = time.perf_counter() + job.seconds
        for i, raw in enumerate(requests):
            started = time.perf_counter()
            if started >= deadline:
                break
            status = await send(raw, after_idle=i == 0)
            out.statuses[status] = out.statuses.get(status, 0) + 1
            if 200 <= status < 300:
                out.done += 1
                out.latencies_ms.append((time.perf_counter() - started) * 1000)
    finally:
        writer.close()


async def _run(job: Job, requests: list[list[bytes]], warm: list[list[bytes]], conn: Connection) -> Result:
    result, gate = Result(), _Gate(len(requests))
    tasks = [
        asyncio.create_task(_client(job, stream.port or job.port, r, w, gate, result))
        for stream, r, w in zip(job.streams, requests, warm, strict=True)
    ]
    warmed = asyncio.create_task(gate.warmed.wait())
    await asyncio.wait([warmed, *tasks], return_when=asyncio.FIRST_COMPLETED)
    if not gate.warmed.is_set():  # a client failed during warm-up: its exception says why
        for task in (warmed, *tasks):
            task.cancel()
        raise next(t.exception() for t in tasks if t.done() and not t.cancelled() and t.exception())  # type: ignore[misc]
    # The parent reads the server's CPU time between "ready" and its answer: the window starts after that.
    conn.send("ready")
    await asyncio.get_running_loop().run_in_executor(None, conn.recv)
    started = time.perf_counter()
    gate.go.set()
    await asyncio.gather(*tasks)
    result.elapsed = time.perf_counter() - started
    return result


def worker(conn: Connection) -> None:
    """Process entry: serve jobs from the parent until it sends None."""
    while (job := conn.recv()) is not None:
        per = [job.count // len(job.streams) + (i < job.count % len(job.streams)) for i in range(len(job.streams))]
        requests = [build(job, s, n) for s, n in zip(job.streams, per, strict=True)]
        warm = [build(job, s, job.warmup) for s in job.streams]
        try:
            result = asyncio.run(_run(job, requests, warm, conn))
        except Exception as error:  # reported to the parent, which names the server and the job
            conn.send(f"{type(error).__name__}: {error}")
            continue
        conn.send(result)
