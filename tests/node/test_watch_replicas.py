"""Watching a twin through replicas (`node up` processes on one database, block store and chain): a snapshot pushed
through one replica is delivered on a stream opened on the other, a replica stopped by SIGTERM ends its streams
cleanly at once, and the SDK's watch resumes on the restarted replica with Last-Event-ID, each snapshot read once."""

from __future__ import annotations

import json
import threading

import httpx

from tests.node.test_watch import STREAM, EventStream
from tests.reliability import conftest as reliability
from tests.reliability.conftest import NodeProcess, Stack, start_replicas, twin_with_reader, until
from twinledger.client import Client
from twinledger.identity import DidAuth, DidKey

stack = reliability.stack  # the fixture: a node's own anvil with the contracts deployed


def receipt_seqs(replica: NodeProcess, twin: int, reader: str) -> list[int]:
    state = replica.state()
    try:
        rows = state.connection().execute(
            "SELECT seq FROM receipts WHERE twin_id = ? AND reader = ? ORDER BY id", (twin, reader)
        )
        return [int(row["seq"]) for row in rows.fetchall()]
    finally:
        state.close()


def push(replica: NodeProcess, device: DidKey, twin: int, body: bytes) -> None:
    with replica.client(device) as http:
        assert http.post(f"/v1/twins/{twin}/snapshots", content=body).status_code == 202


def test_a_push_through_one_replica_reaches_a_stream_on_the_other(stack: Stack, tmp_path):
    device, reader, twin = twin_with_reader(stack)
    first, second = start_replicas(stack, tmp_path)
    try:
        first.register_recovery()
        with (
            httpx.Client(base_url=second.url, auth=DidAuth(reader), timeout=60) as http,
            http.stream("GET", STREAM.format(twin), params={"purpose": "research"}) as response,
        ):
            assert response.status_code == 200
            events = EventStream(response)
            push(first, device, twin, b"through the first")
            delivered = events.next_event()
            assert (delivered.event, delivered.id) == ("snapshot", "1")
            assert json.loads(delivered.data)["producer"] == device.did

            # SIGTERM with the stream open: the replica ends it (the body completes, no problem event) and exits.
            second.stop()
            assert events.rest() == []
        assert second.process is not None and second.process.returncode == 0  # a clean exit, not the SIGKILL fallback
    finally:
        second.stop()
        first.stop()


def test_the_sdk_watch_resumes_on_a_restarted_replica_after_the_last_snapshot(stack: Stack, tmp_path):
    device, reader, twin = twin_with_reader(stack)
    first, second = start_replicas(stack, tmp_path)
    got: list[tuple[int, bytes | None]] = []
    failure: list[BaseException] = []

    def watch() -> None:
        try:
            with Client(second.url, stack.rpc_url, signer=reader) as tl:
                for snapshot in tl.watch(twin, purpose="research", after=1):
                    got.append((snapshot.seq, snapshot.data))
                    if len(got) == 2:
                        return
        except BaseException as error:  # reported by the test below
            failure.append(error)

    try:
        first.register_recovery()
        push(first, device, twin, b"before the watch")  # seq 1: the watch starts after it
        watcher = threading.Thread(target=watch, daemon=True)
        watcher.start()
        push(first, device, twin, b"one")
        until(lambda: len(got) == 1 or bool(failure), "the first snapshot")
        # The stream ends; the watch reconnects with Last-Event-ID: 2 (its ?after=1 would send #2 again) once the
        # replica is back.
        second.stop()
        push(first, device, twin, b"two")
        second.start()
        watcher.join(timeout=120)
        assert not failure, failure
        assert got == [(2, b"one"), (3, b"two")]
        assert receipt_seqs(first, twin, reader.did) == [2, 3]  # each snapshot read (and receipted) once
    finally:
        second.stop()
        first.stop()
