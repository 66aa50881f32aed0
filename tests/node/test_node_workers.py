"""`twinledger node up --workers 2` as a real process tree: two API processes on one port and one background
process that alone indexes and anchors; supervised (a dead child comes back) and stopped as a whole."""

from __future__ import annotations

import os
import signal
import threading
from pathlib import Path

import httpx

from tests.reliability import conftest as reliability
from tests.reliability.conftest import NodeProcess, Stack, twin_with_reader, until
from twinledger.chain.ledger import GrantRequest
from twinledger.chain.types import BatchKind
from twinledger.identity import DidAuth, DidKey

stack = reliability.stack  # the fixture: a node's own anvil with the contracts deployed


def children(pid: int) -> dict[int, str]:
    """The live child processes of `pid` and their command lines (from /proc)."""
    found = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2 :].split()
        if int(fields[1]) == pid and fields[0] != "Z":
            found[int(entry.name)] = cmdline
    return found


def alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat[stat.rindex(")") + 2] != "Z"


def read_until_both_workers(url: str, reader: DidKey, twin: int, payload: bytes, workers: set[int]) -> set[int]:
    """Read the snapshot on fresh connections until every worker in `workers` has served it (each read checked)."""
    seen: set[int] = set()
    for _ in range(400):
        with httpx.Client(base_url=url, auth=DidAuth(reader), timeout=30) as http:  # a new connection per read
            response = http.get(f"/v1/twins/{twin}/snapshots/latest", params={"purpose": "research"})
        assert response.status_code == 200, response.text
        assert response.content == payload
        seen.add(int(response.headers["twinledger-worker"]))
        if workers <= seen:
            return seen
    raise AssertionError(f"only workers {seen} of {workers} answered")


def receipt_counts(node: NodeProcess) -> tuple[int, int]:
    state = node.state()
    try:
        db = state.connection()
        total = db.execute("SELECT COUNT(*) FROM receipts").fetchone()[0]
        unanchored = db.execute("SELECT COUNT(*) FROM receipts WHERE anchor_tx IS NULL").fetchone()[0]
    finally:
        state.close()
    return total, unanchored


def anchored_batches(stack: Stack, kind: BatchKind) -> list[int]:
    """The leaf counts of the batches of `kind` on chain; a root anchored twice fails."""
    logs = stack.owner.contract.events.BatchAnchored().get_logs(from_block=stack.deployment.deploy_block)
    roots = [bytes(log["args"]["root"]) for log in logs]
    assert len(roots) == len(set(roots)), "a batch root was anchored twice"
    return [int(log["args"]["count"]) for log in logs if int(log["args"]["kind"]) == int(kind)]


def test_two_api_processes_one_background_process_supervised(stack: Stack, tmp_path):
    device, reader, twin = twin_with_reader(stack)
    node = NodeProcess(stack, tmp_path / "node", workers=2, freshness_window=2, anchor_batch_seconds=0.3).start()
    try:
        assert node.process is not None
        tree = children(node.process.pid)
        background = [pid for pid, cmd in tree.items() if " background " in cmd]
        api = {pid for pid, cmd in tree.items() if " api " in cmd}
        assert len(background) == 1 and len(api) == 2, tree
        node.register_recovery()

        with node.client(device) as http:  # a push through whichever worker accepts it
            pushed = http.post(f"/v1/twins/{twin}/snapshots", content=b"reading 1")
        assert pushed.status_code == 202, pushed.text
        assert int(pushed.headers["twinledger-worker"]) in api
        # the same data, served by both API processes
        read_until_both_workers(node.url, reader, twin, b"reading 1", api)

        # Only the background process anchors: every snapshot and receipt ends in exactly one anchored batch.
        until(lambda: node.metric("twinledger_anchor_queue_depth") == 0, "the reads' receipts to be anchored")
        total, unanchored = receipt_counts(node)
        assert unanchored == 0 and sum(anchored_batches(stack, BatchKind.ACCESS_RECEIPTS)) == total >= 2
        assert sum(anchored_batches(stack, BatchKind.SNAPSHOTS)) == 1
        # Counters add up over the API processes, whichever of them is scraped.
        scraped: dict[int, float] = {}
        for _ in range(200):
            with httpx.Client(base_url=node.url, timeout=30) as http:
                metrics = http.get("/metrics")
            lines = [line for line in metrics.text.splitlines() if line.startswith("twinledger_access_receipts_total")]
            scraped[int(metrics.headers["twinledger-worker"])] = float(lines[0].split()[1])
            if len(scraped) == 2:
                break
        assert list(scraped.values()) == [total, total], scraped

        # Only the background process follows the chain: with it frozen, the API processes' index goes stale and
        # consent decisions are refused (fail closed); once it runs again, they are served.
        os.kill(background[0], signal.SIGSTOP)
        try:
            with node.client(reader) as http:
                until(lambda: http.get(f"/v1/twins/{twin}/snapshots/latest", params={"purpose": "research"})
                      .status_code == 503, "reads to be refused while the index cannot follow the chain")  # fmt: skip
        finally:
            os.kill(background[0], signal.SIGCONT)
        until(node.ready, "the index to be fresh again")

        # A SIGKILLed API process is replaced; the node keeps answering.
        victim = next(iter(api))
        os.kill(victim, signal.SIGKILL)
        until(lambda: len({p for p, c in children(node.process.pid).items() if " api " in c} - api) == 1,
              "a new API process to replace the killed one")  # fmt: skip
        replaced = {p for p, c in children(node.process.pid).items() if " api " in c}
        read_until_both_workers(node.url, reader, twin, b"reading 1", replaced)

        # A SIGKILLed background process is replaced too, and the new one anchors what arrives after it.
        os.kill(background[0], signal.SIGKILL)
        until(lambda: [p for p, c in children(node.process.pid).items() if " background " in c and p != background[0]],
              "a new background process")  # fmt: skip
        with node.client(device) as http:
            assert http.post(f"/v1/twins/{twin}/snapshots", content=b"reading 2").status_code == 202
        until(lambda: node.metric("twinledger_anchor_queue_depth") == 0, "the new snapshot to be anchored")
        assert sum(anchored_batches(stack, BatchKind.SNAPSHOTS)) == 2

        # SIGTERM to the supervisor stops every child.
        everyone = set(children(node.process.pid))
        node.process.send_signal(signal.SIGTERM)
        assert node.process.wait(timeout=60) == 0
        assert not [pid for pid in everyone if alive(pid)]

        # A SIGKILLed supervisor takes its children with it: nothing is left holding the port or the data.
        node.start()
        everyone = set(children(node.process.pid))
        assert len(everyone) == 3
        node.kill()
        until(lambda: not [pid for pid in everyone if alive(pid)], "the children to die with the supervisor")
        node.start()  # the port and the data directory are free again
        read_until_both_workers(node.url, reader, twin, b"reading 2", {p for p, c in children(node.process.pid).items()
                                                                       if " api " in c})  # fmt: skip
    finally:
        node.stop()


def test_receipt_batches_grow_with_the_queue_and_drain(stack: Stack, tmp_path):
    """Blocks every second (not one per transaction): a batch of the configured size per block could not keep up
    with this many reads, so the batches must grow; every receipt still ends up anchored, exactly once."""
    device, readers = DidKey.generate(), [DidKey.generate() for _ in range(4)]
    twin = stack.owner.register("asset", device_did=device.did)[0]
    expiry = stack.owner.client.chain_time() + 86_400
    stack.owner.grant_batch([GrantRequest.of(twin, r.did, "research", "read", expiry) for r in readers])
    w3 = stack.owner.client.w3
    w3.provider.make_request("evm_setAutomine", [False])  # type: ignore[arg-type]
    w3.provider.make_request("evm_setIntervalMining", [1])  # type: ignore[arg-type]
    node = NodeProcess(stack, tmp_path / "node", workers=2, anchor_batch_size=2, anchor_batch_seconds=0.5).start()
    try:
        node.register_recovery()
        with node.client(device) as http:
            assert http.post(f"/v1/twins/{twin}/snapshots", content=b"reading").status_code == 202
        stop = threading.Event()
        served: list[int] = []

        def read(reader: DidKey) -> None:
            with node.client(reader) as http:
                while not stop.is_set():
                    response = http.get(f"/v1/twins/{twin}/snapshots/latest", params={"purpose": "research"})
                    assert response.status_code == 200, response.text
                    served.append(1)

        threads = [threading.Thread(target=read, args=(r,)) for r in readers]
        for thread in threads:
            thread.start()
        until(lambda: len(served) >= 60, "60 reads", seconds=120)
        stop.set()
        for thread in threads:
            thread.join(timeout=60)
        until(lambda: receipt_counts(node)[1] == 0, "every receipt to be anchored", seconds=120)
        total, _ = receipt_counts(node)
        batches = anchored_batches(stack, BatchKind.ACCESS_RECEIPTS)
        assert sum(batches) == total >= 60
        assert max(batches) > 2, batches  # the batches grew past the configured size to drain the queue
    finally:
        node.stop()
