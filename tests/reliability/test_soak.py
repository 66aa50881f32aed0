"""200 concurrent readers and 20 concurrent writers against one node on loopback: no error, no lost write.

The duration is TWINLEDGER_SOAK_SECONDS (default 60); the request loops stop by themselves at the deadline.
"""

from __future__ import annotations

import hashlib
import os
import random
import threading
import time
from collections import Counter

import pytest

from tests.reliability.conftest import NodeProcess, Stack, until
from twinledger.chain.ledger import GrantRequest
from twinledger.identity import DidKey

pytestmark = pytest.mark.reliability
READERS, WRITERS = 200, 20


def test_concurrent_readers_and_writers(stack: Stack, tmp_path):
    seconds = float(os.environ.get("TWINLEDGER_SOAK_SECONDS", "60"))
    devices = [DidKey.generate() for _ in range(WRITERS)]
    twins = [stack.owner.register("asset", device_did=d.did)[0] for d in devices]
    reader_keys = [DidKey.generate() for _ in range(10)]
    expiry = stack.owner.client.chain_time() + 86_400
    stack.owner.grant_batch([GrantRequest.of(t, r.did, "research", "read", expiry) for t in twins for r in reader_keys])
    node = NodeProcess(stack, tmp_path / "node", anchor_batch_size=256, anchor_batch_seconds=2).start()
    outcomes: Counter[str] = Counter()
    failures: list[str] = []
    acknowledged: dict[int, dict[int, str]] = {t: {} for t in twins}
    lock = threading.Lock()
    try:
        node.register_recovery()
        for twin, device in zip(twins, devices, strict=True):  # every twin has a snapshot before reading starts
            with node.client(device) as http:
                first = http.post(f"/v1/twins/{twin}/snapshots", content=b"first").json()
                acknowledged[twin][first["seq"]] = hashlib.sha256(b"first").hexdigest()
        deadline = time.monotonic() + seconds

        def record(kind: str, ok: bool, detail: str) -> None:
            with lock:
                outcomes[kind + (" ok" if ok else " failed")] += 1
                if not ok and len(failures) < 20:
                    failures.append(f"{kind}: {detail}")

        def writer(twin: int, device: DidKey) -> None:
            n = 0
            with node.client(device, timeout=120) as http:
                while time.monotonic() < deadline:
                    payload = f"{twin}:{n}".encode()
                    n += 1
                    try:
                        response = http.post(f"/v1/twins/{twin}/snapshots", content=payload)
                    except Exception as error:  # any transport failure is a failure of the run
                        record("write", False, repr(error))
                        continue
                    ok = response.status_code == 202
                    record("write", ok, f"{response.status_code} {response.text[:200]}")
                    if ok:
                        with lock:
                            acknowledged[twin][response.json()["seq"]] = hashlib.sha256(payload).hexdigest()

        def reader(key: DidKey) -> None:
            rng = random.Random(id(key))
            with node.client(key, timeout=120) as http:
                while time.monotonic() < deadline:
                    twin = rng.choice(twins)
                    try:
                        response = http.get(f"/v1/twins/{twin}/snapshots/latest", params={"purpose": "research"})
                    except Exception as error:  # any transport failure is a failure of the run
                        record("read", False, repr(error))
                        continue
                    ok = response.status_code == 200 and (
                        hashlib.sha256(response.content).hexdigest() == response.headers["twinledger-content-sha256"]
                    )
                    record("read", ok, f"{response.status_code} {response.text[:200]}")

        threads = [threading.Thread(target=writer, args=(t, d)) for t, d in zip(twins, devices, strict=True)]
        threads += [threading.Thread(target=reader, args=(reader_keys[i % len(reader_keys)],)) for i in range(READERS)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=seconds + 180)
        assert not any(t.is_alive() for t in threads), "request loops did not stop"
        print(f"\nsoak {seconds:.0f}s, {READERS} readers, {WRITERS} writers: {dict(outcomes)}")
        assert not failures, failures
        assert outcomes["read ok"] > READERS and outcomes["write ok"] > WRITERS
        with node.client(stack.recovery) as http:  # no lost write: every acknowledged snapshot is stored, in order
            for twin in twins:
                history = http.get(f"/v1/twins/{twin}/snapshots", params={"limit": 1000}).json()["snapshots"]
                stored = {s["seq"]: s["sha256"] for s in history}
                assert stored == acknowledged[twin], (
                    f"twin {twin}: stored {len(stored)}, acknowledged {len(acknowledged[twin])}"
                )
        until(lambda: node.metric("twinledger_anchor_queue_depth") == 0, "the anchor queue to drain", seconds=120)
    finally:
        node.stop()
