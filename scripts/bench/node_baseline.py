"""The baselines of scripts/bench/node.py: the least a FastAPI app can do for the node's reads and pushes.

Run by uvicorn with the node's server settings. Routes have the node's paths, so the load generator sends both the
very same request bytes (the signature headers are ignored here).

- GET  /v1/twins/{twin}/snapshots/{seq}: the plaintext of that snapshot, from memory (files named by
  BENCH_BASELINE_READS, "seq=path,seq=path", loaded at start);
- POST /v1/twins/{twin}/snapshots: the body written to a new file under BENCH_BASELINE_DIR and fsynced, off the
  event loop like the node's ingest; 202 once it is durable.
"""

from __future__ import annotations

import os
import uuid
from pathlib import Path

from fastapi import FastAPI, Request, Response
from starlette.concurrency import run_in_threadpool

app = FastAPI()
READS = {
    int(seq): Path(path).read_bytes()
    for seq, path in (item.split("=", 1) for item in os.environ.get("BENCH_BASELINE_READS", "").split(",") if item)
}
PUSH_DIR = Path(os.environ.get("BENCH_BASELINE_DIR", "."))


@app.get("/v1/twins/{twin_id}/snapshots/{seq}")
async def read(twin_id: int, seq: int) -> Response:
    return Response(READS[seq], media_type="application/octet-stream")


def _write_durably(body: bytes) -> str:
    name = uuid.uuid4().hex
    fd = os.open(PUSH_DIR / name, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        os.write(fd, body)
        os.fsync(fd)
    finally:
        os.close(fd)
    return name


@app.post("/v1/twins/{twin_id}/snapshots", status_code=202)
async def push(twin_id: int, request: Request) -> dict[str, object]:
    body = await request.body()
    return {"twinId": twin_id, "file": await run_in_threadpool(_write_durably, body), "size": len(body)}
