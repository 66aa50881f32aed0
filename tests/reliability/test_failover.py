"""Failover between replicas: exactly one replica's background process indexes and anchors (the leader, holding a
lease in the shared database); SIGKILL it and a standby takes over, with no acknowledged write lost and no batch
anchored twice or left behind. On both engines (flock on SQLite, an advisory lock on PostgreSQL)."""

from __future__ import annotations

import re
import threading
import time
from pathlib import Path

import pytest

from tests.node.test_node_workers import anchored_batches, children, receipt_counts
from tests.reliability.conftest import NodeProcess, Stack, start_replicas, twin_with_reader, until
from twinledger.chain.types import BatchKind
from twinledger_node.db.postgres import connect

pytestmark = pytest.mark.reliability


def lease_holders(replica: NodeProcess) -> set[int]:
    """The PIDs of the processes holding the leader lease of the replicas' database."""
    url = replica.env.get("TWINLEDGER_DATABASE_URL")
    if url is None:  # an flock on node/leader.lock, as /proc/locks lists it (by inode)
        inode = (replica.data_dir / "node" / "leader.lock").stat().st_ino
        lines = [line.split() for line in Path("/proc/locks").read_text().splitlines()]
        return {int(f[4]) for f in lines if f[1] == "FLOCK" and int(f[5].rsplit(":", 1)[1]) == inode}
    with connect(url) as conn:
        rows = conn.execute(
            "SELECT a.application_name FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid "
            "WHERE l.locktype = 'advisory' AND l.granted AND a.application_name LIKE 'twinledger leader lease%%'"
        ).fetchall()
    return {int(re.search(r"pid (\d+)", row[0]).group(1)) for row in rows}  # type: ignore[union-attr]


def background_of(replica: NodeProcess) -> int:
    assert replica.process is not None
    (pid,) = [p for p, cmd in children(replica.process.pid).items() if " background " in cmd]
    return pid


def snapshot_rows(replica: NodeProcess) -> set[str]:
    state = replica.state()
    try:
        return {row[0] for row in state.connection().execute("SELECT manifest_cid FROM snapshots").fetchall()}
    finally:
        state.close()


def test_the_leader_is_sigkilled_and_a_standby_takes_over(stack: Stack, tmp_path):
    device, reader, twin = twin_with_reader(stack)
    first, second = start_replicas(stack, tmp_path)
    try:
        first.register_recovery()
        assert lease_holders(first) == {background_of(first)}  # one leader: the replica that started first

        # Pushes and reads through the standby the whole time; the leader dies in the middle.
        acknowledged: list[str] = []
        stop = threading.Event()

        def write_and_read() -> None:
            with second.client(device) as push, second.client(reader) as read:
                while not stop.is_set():
                    pushed = push.post(f"/v1/twins/{twin}/snapshots", content=b"reading %d" % len(acknowledged))
                    assert pushed.status_code == 202, pushed.text
                    acknowledged.append(pushed.json()["manifestCid"])
                    assert (
                        read.get(f"/v1/twins/{twin}/snapshots/latest", params={"purpose": "research"}).status_code
                        == 200
                    )

        worker = threading.Thread(target=write_and_read)
        worker.start()
        try:
            until(lambda: len(acknowledged) >= 20, "20 pushes through the standby")
            killed_at = time.monotonic()
            first.kill()  # the supervisor, and with it (PR_SET_PDEATHSIG) its background process
            until(lambda: lease_holders(second) == {background_of(second)}, "the standby to take over", seconds=30)
            took_over = time.monotonic() - killed_at
            count = len(acknowledged)
            until(lambda: len(acknowledged) >= count + 20, "20 more pushes after the failover")
        finally:
            stop.set()
            worker.join(timeout=60)
        print(f"failover: the standby took over {took_over:.2f}s after the leader's SIGKILL")

        # Nothing acknowledged is lost; everything ends anchored exactly once by the new leader.
        assert set(acknowledged) <= snapshot_rows(second)
        until(lambda: receipt_counts(second)[1] == 0 and second.metric("twinledger_anchor_queue_depth") == 0,
              "every snapshot and receipt to be anchored after the failover")  # fmt: skip
        assert sum(anchored_batches(stack, BatchKind.SNAPSHOTS)) == len(snapshot_rows(second)) >= len(acknowledged)
        assert sum(anchored_batches(stack, BatchKind.ACCESS_RECEIPTS)) == receipt_counts(second)[0]

        # The old leader comes back as a standby; kill the new leader and it leads again.
        first.start()
        assert lease_holders(first) == {background_of(second)}
        second.kill()
        until(lambda: lease_holders(first) == {background_of(first)}, "the restarted replica to take over")
        with first.client(device) as http:
            assert http.post(f"/v1/twins/{twin}/snapshots", content=b"after the second failover").status_code == 202
        until(lambda: first.metric("twinledger_anchor_queue_depth") == 0, "the last snapshot to be anchored")
        assert sum(anchored_batches(stack, BatchKind.SNAPSHOTS)) == len(snapshot_rows(first))
    finally:
        second.stop()
        first.stop()
