"""SIGKILL during ingest and during anchoring: every acknowledged snapshot survives, readable and anchored exactly
once; nothing unacknowledged is half-visible."""

from __future__ import annotations

import random
import threading
import time

import httpx
import pytest

from tests.reliability.conftest import NodeProcess, Stack, anchored_snapshot_leaves, until
from twinledger.identity import DidKey

pytestmark = pytest.mark.reliability


def test_sigkill_during_ingest_and_anchoring_loses_nothing_acknowledged(stack: Stack, tmp_path):
    devices = [DidKey.generate() for _ in range(3)]
    twins = [stack.owner.register("asset", device_did=d.did)[0] for d in devices]
    # small, quick batches so that kills land while batches are being cut and sent
    node = NodeProcess(stack, tmp_path / "node", anchor_batch_size=3, anchor_batch_seconds=0.2).start()
    node.register_recovery()
    acknowledged: dict[tuple[int, int], tuple[str, bytes]] = {}
    lock = threading.Lock()
    stop = threading.Event()
    attempts = {"sent": 0, "failed": 0}

    def writer(twin: int, device: DidKey) -> None:
        n = 0
        while not stop.is_set():
            payload = f"twin {twin} reading {n} {random.random()}".encode()
            n += 1
            try:
                with node.client(device, timeout=10) as http:
                    response = http.post(f"/v1/twins/{twin}/snapshots", content=payload)
            except httpx.HTTPError:
                attempts["failed"] += 1  # the node died mid-request: unacknowledged
                time.sleep(0.05)
                continue
            attempts["sent"] += 1
            if response.status_code == 202:
                body = response.json()
                with lock:
                    acknowledged[(twin, body["seq"])] = (body["manifestCid"], payload)

    threads = [threading.Thread(target=writer, args=(t, d), daemon=True) for t, d in zip(twins, devices, strict=True)]
    for thread in threads:
        thread.start()
    try:
        for _ in range(4):  # kill -9 at arbitrary moments, restart on the same data directory
            time.sleep(random.uniform(0.8, 1.6))
            node.kill()
            time.sleep(0.2)
            node.start()
        time.sleep(1.0)
    finally:
        stop.set()
        for thread in threads:
            thread.join(timeout=30)
    node.stop()
    node.start()  # a clean last start: the anchor worker finishes what the kills interrupted
    try:
        until(lambda: node.metric("twinledger_anchor_queue_depth") == 0, "every snapshot to be anchored")
        assert len(acknowledged) >= 10 and attempts["failed"] >= 1, (len(acknowledged), attempts)
        with node.client(stack.recovery) as http:
            for (twin, seq), (manifest_cid, payload) in sorted(acknowledged.items()):
                read = http.get(f"/v1/twins/{twin}/snapshots/{seq}")
                assert read.status_code == 200, (twin, seq, read.text)
                assert read.content == payload and read.headers["twinledger-manifest-cid"] == manifest_cid
            stored = 0
            for twin in twins:
                history = http.get(f"/v1/twins/{twin}/snapshots", params={"limit": 1000}).json()["snapshots"]
                seqs = [s["seq"] for s in history]
                assert seqs == list(range(1, len(seqs) + 1)), f"gaps or duplicates in twin {twin}: {seqs}"
                assert all(s["anchor"]["tx"] for s in history)
                stored += len(history)
        # Every stored snapshot (acknowledged, or stored just before a kill lost its answer) is in exactly one
        # anchored batch, and no batch root was anchored twice (checked inside).
        assert stored >= len(acknowledged)
        assert anchored_snapshot_leaves(stack) == stored
    finally:
        node.stop()
