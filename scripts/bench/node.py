"""Node benchmark: throughput, CPU per operation and latency of the node's reads and pushes, as ratios against
baselines this script starts itself in the same run, at several numbers of stored snapshots.

    python scripts/bench/node.py [--snapshots 0,10000,100000] [--fill-cache DIR] [--repeat 3] [--seconds 5]
                                 [--soak-seconds 60] [--quick] [--json FILE]

Every process runs apart and on a free port: anvil (LocalChain), the node (`twinledger node up`), the baselines
(uvicorn, same loop, HTTP implementation, worker count and log level as the node), the load generator
(scripts/bench/node_load.py; requests pre-signed before the timed window). Rows:

- reads of 1 KiB and 64 KiB by 1 and 16 clients: signed, consent-checked, decrypted, receipted by the node vs a
  minimal FastAPI app serving the same bytes from memory (scripts/bench/node_baseline.py);
- 1 KiB pushes from 1 and 8 devices (each a did:key bound to its twin) vs a FastAPI endpoint writing and fsyncing
  each body;
- the same at every --snapshots level (filled through the node's own ingest code in-process, cached under
  --fill-cache), with push and read rates at each level divided by the rates at the first level;
- reads with `node up --workers 2` ÷ 1 worker; start-up time (process start to /readyz 200) at each level;
- access receipts still unanchored two batch intervals after a --soak-seconds full-rate read load.

CPU per operation is the server's CPU time (utime + stime of its process and every descendant, /proc) over the
window divided by the operations answered 2xx; anvil's CPU is not counted. Each row is the median of --repeat runs.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import json
import math
import multiprocessing
import os
import re
import shutil
import signal
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from importlib.util import find_spec
from pathlib import Path
from typing import Any

import httpx
from eth_account import Account
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from rich.table import Table

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
sys.path[:0] = [str(ROOT / "sdk"), str(ROOT / "node"), str(HERE)]

from node_load import Job, Result, Stream, worker  # noqa: E402

from twinledger.chain.client import ChainClient  # noqa: E402
from twinledger.chain.deploy import Deployment, deployment_path  # noqa: E402
from twinledger.chain.ledger import GrantRequest, TwinLedger  # noqa: E402
from twinledger.chain.localchain import DEFAULT_CHAIN_ID, DEV_KEYS, LocalChain, free_port  # noqa: E402
from twinledger.identity import DidAuth, DidKey, sign_request  # noqa: E402
from twinledger.provenance import recovery_key_binding  # noqa: E402

# Wide enough for the table when the output goes to a file or a pipe.
console = Console(emoji=False, highlight=False, width=None if sys.stdout.isatty() else 200)
HOST = "127.0.0.1"
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
PURPOSE = "research"
DEVICES = 8  # push streams, each a device bound to its own twin
READS = {1: 1024, 2: 64 * 1024}  # seq on the read twin → plaintext size
CACHE_FORMAT = 1  # bump when the layout of a cached level changes
# The targets of issue 14 (docs/performance.md): row key → (comparison, bound)
TARGETS = {
    "push-8": (">=", 0.25), "read-1k-16": (">=", 0.35), "push-growth": (">=", 0.9), "workers": (">=", 1.6),
    "soak": ("==", 0), "startup-max": ("<", 2.0),
    # issue 15: the node on PostgreSQL ÷ on SQLite, two replicas ÷ one, seconds from the leader's SIGKILL
    "postgres": (">=", 0.7), "replicas": (">=", 1.6), "failover": ("<", 5.0),
}  # fmt: skip
FAILOVER_BATCH_SECONDS = 0.5  # the replicas' batch interval in the failover row: what is timed is the takeover


# ---------------------------------------------------------------------------------------------------- processes


def tree_cpu(pid: int) -> float:
    """CPU seconds (user + system) of `pid` and every process below it, from /proc."""
    total, todo, seen = 0.0, [pid], set()
    while todo:
        current = todo.pop()
        if current in seen:
            continue
        seen.add(current)
        with contextlib.suppress(OSError):
            stat = Path(f"/proc/{current}/stat").read_text()
            fields = stat[stat.rindex(")") + 2 :].split()
            total += (int(fields[11]) + int(fields[12])) / CLOCK_TICKS
            for task in Path(f"/proc/{current}/task").iterdir():
                with contextlib.suppress(OSError):
                    todo += [int(c) for c in (task / "children").read_text().split()]
    return total


def descendants(pid: int) -> list[int]:
    found, todo = [], [pid]
    while todo:
        current = todo.pop()
        with contextlib.suppress(OSError):
            for task in Path(f"/proc/{current}/task").iterdir():
                with contextlib.suppress(OSError):
                    children = [int(c) for c in (task / "children").read_text().split()]
                    found += children
                    todo += children
    return found


@dataclass
class Server:
    """A server process started here, stopped by its PID (and its children's)."""

    name: str
    process: subprocess.Popen[bytes]
    port: int
    log: Path
    startup: float = 0.0
    database_pid: int | None = None  # a PostgreSQL server the node uses: its CPU is the node's, as SQLite's is

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.port}"

    @property
    def ports(self) -> tuple[int, ...]:
        return (self.port,)

    def cpu(self) -> float:
        return tree_cpu(self.process.pid) + (tree_cpu(self.database_pid) if self.database_pid else 0.0)

    def wait_ready(self, path: str, timeout: float, started: float) -> None:
        deadline = time.monotonic() + timeout
        with httpx.Client(timeout=2) as http:
            while time.monotonic() < deadline:
                if self.process.poll() is not None:
                    raise RuntimeError(f"{self.name} exited with code {self.process.returncode}:\n{self.tail()}")
                with contextlib.suppress(httpx.HTTPError):
                    if http.get(self.url + path).status_code == 200:
                        self.startup = time.monotonic() - started
                        return
                time.sleep(0.02)
        self.stop()
        raise RuntimeError(f"{self.name} did not answer {path} with 200 within {timeout:.0f}s:\n{self.tail()}")

    def tail(self) -> str:
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-25:])

    def stop(self) -> None:
        children = descendants(self.process.pid)
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        for pid in children:  # workers a supervisor left behind
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)


@dataclass
class Replicas:
    """Replicas of one node on one database, each on its own port: the load spreads its clients over them."""

    servers: list[Server]
    database_pid: int | None = None

    @property
    def name(self) -> str:
        return f"{len(self.servers)} replicas"

    @property
    def port(self) -> int:
        return self.servers[0].port

    @property
    def ports(self) -> tuple[int, ...]:
        return tuple(server.port for server in self.servers)

    def cpu(self) -> float:
        return sum(tree_cpu(s.process.pid) for s in self.servers) + (
            tree_cpu(self.database_pid) if self.database_pid else 0.0
        )

    def tail(self) -> str:
        return "\n".join(server.tail() for server in self.servers)

    def stop(self) -> None:
        for server in self.servers:
            server.stop()


def spread(streams: list[Stream], ports: tuple[int, ...]) -> list[Stream]:
    """The streams (client connections) dealt over the ports in turn."""
    if len(ports) == 1:
        return streams
    return [dataclasses.replace(stream, port=ports[i % len(ports)]) for i, stream in enumerate(streams)]


def spawn(name: str, command: list[str], log: Path, env: dict[str, str], port: int) -> tuple[Server, float]:
    started = time.monotonic()
    with log.open("ab") as out:
        process = subprocess.Popen(
            command, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env={**os.environ, **env}
        )
    return Server(name, process, port, log), started


def twinledger_cli() -> str:
    local = Path(sys.executable).parent / "twinledger"
    return str(local) if local.exists() else (shutil.which("twinledger") or "twinledger")


def node_supports_workers() -> bool:
    help_text = subprocess.run(
        [twinledger_cli(), "node", "up", "--help"], capture_output=True, text=True, env={**os.environ, "COLUMNS": "200"}
    ).stdout
    return "--workers" in help_text


def start_node(level: Level, *, workers: int | None, batch_seconds: float, name: str = "node") -> Server:
    port = free_port()
    command = [twinledger_cli(), "node", "up", "--host", HOST, "--port", str(port), "--data-dir", str(level.data),
               "--log-level", "warning"]  # fmt: skip
    if workers is not None:
        command += ["--workers", str(workers)]
    env = {"TWINLEDGER_RPC_URL": level.rpc, "TWINLEDGER_ANCHOR_BATCH_SECONDS": str(batch_seconds)}
    if level.database is not None:
        env["TWINLEDGER_DATABASE_URL"] = level.database.url
    server, started = spawn(name, command, level.root / f"node-{port}.log", env, port)
    server.database_pid = level.database.pid if level.database is not None else None
    server.wait_ready("/readyz", 600, started)
    return server


def start_baseline(work: Path, workers: int) -> Server:
    port = free_port()
    pushes = work / f"baseline-pushes-{workers}"
    pushes.mkdir(exist_ok=True)
    reads = []
    for seq, size in READS.items():
        path = work / f"plaintext-{seq}"
        if not path.exists():
            path.write_bytes(os.urandom(size))
        reads.append(f"{seq}={path}")
    command = [sys.executable, "-m", "uvicorn", "node_baseline:app", "--app-dir", str(HERE), "--host", HOST,
               "--port", str(port), "--workers", str(workers), "--log-level", "warning", "--no-access-log"]  # fmt: skip
    env = {"BENCH_BASELINE_READS": ",".join(reads), "BENCH_BASELINE_DIR": str(pushes)}
    server, started = spawn(f"baseline ({workers} worker)", command, work / "baseline.log", env, port)
    server.wait_ready("/docs", 60, started)
    return server


class LoadGenerator:
    """One long-lived process running node_load jobs; the server's CPU is read around each timed window."""

    def __init__(self) -> None:
        ctx = multiprocessing.get_context("spawn")
        self.conn, child = ctx.Pipe()
        self.process = ctx.Process(target=worker, args=(child,), name="bench-load", daemon=True)
        self.process.start()

    def run(self, server: Server | Replicas, streams: list[Stream], count: int, seconds: float) -> Measure:
        self.conn.send(Job(HOST, server.port, tuple(streams), count, seconds))
        ready = self.conn.recv()
        if ready != "ready":
            raise RuntimeError(f"load generator against {server.name}: {ready}\n{server.tail()}")
        cpu = server.cpu()
        self.conn.send("go")
        result = self.conn.recv()
        cpu = server.cpu() - cpu
        if not isinstance(result, Result):
            raise RuntimeError(f"load generator against {server.name}: {result}\n{server.tail()}")
        return Measure.of(result, cpu)

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.conn.send(None)
        self.process.join(timeout=10)
        if self.process.is_alive():
            self.process.kill()


# ---------------------------------------------------------------------------------------------------- measures


@dataclass(frozen=True)
class Measure:
    rate: float
    cpu_ms: float  # per answered operation
    p50: float
    p99: float
    errors: dict[int, int]
    done: int = 0
    seconds: float = 0.0

    @classmethod
    def of(cls, result: Result, cpu: float) -> Measure:
        per_op = cpu * 1000 / result.done if result.done else float("nan")
        return cls(result.rate, per_op, result.percentile(0.5), result.percentile(0.99), result.errors, result.done,
                   result.elapsed)  # fmt: skip

    @staticmethod
    def median(runs: list[Measure]) -> Measure:
        errors: dict[int, int] = {}
        for run in runs:
            for status, n in run.errors.items():
                errors[status] = errors.get(status, 0) + n

        def med(name: str) -> float:
            values = [getattr(r, name) for r in runs if not math.isnan(getattr(r, name))]
            return statistics.median(values) if values else float("nan")

        return Measure(med("rate"), med("cpu_ms"), med("p50"), med("p99"), errors, sum(r.done for r in runs),
                       sum(r.seconds for r in runs))  # fmt: skip

    def __str__(self) -> str:
        text = f"{self.rate:,.1f}/s · {self.cpu_ms:,.2f} ms CPU · p50 {self.p50:,.1f} / p99 {self.p99:,.1f} ms"
        if self.errors:
            text += " · errors " + ", ".join(f"{n}×{s}" for s, n in sorted(self.errors.items()))
        return text


@dataclass
class Sizer:
    """How many requests to pre-sign for a window: the last rate seen for the row × the window, with headroom."""

    seconds: float
    guesses: dict[str, float] = field(default_factory=dict)

    def count(self, key: str, streams: int, seconds: float | None = None) -> int:
        first = (3000.0, 1500.0) if key.startswith("baseline") else (1000.0, 200.0)  # until a rate is seen
        rate = self.guesses.get(key, first[0] if "read" in key else first[1])
        return max(20 * streams, min(200_000, math.ceil(rate * (seconds or self.seconds) * 1.3)))

    def saw(self, key: str, measure: Measure) -> None:
        if measure.rate > 0:
            self.guesses[key] = measure.rate


# ---------------------------------------------------------------------------------------------------- levels


@dataclass
class Level:
    """A data directory holding `stored` snapshots, with the anvil state and keys it belongs to."""

    root: Path
    meta: dict[str, Any]
    chain: LocalChain | None = None
    database: Any = None  # a LocalPostgres holding the node's databases; None: SQLite files in the data directory

    @property
    def data(self) -> Path:
        return self.root / "data"

    @property
    def stored(self) -> int:
        return int(self.meta["stored"])

    @property
    def rpc(self) -> str:
        assert self.chain is not None
        return f"http://{self.chain.host}:{self.chain.port}"

    def up(self) -> None:
        self.chain = LocalChain(self.root / "chain", port=free_port())
        self.chain.up()

    def down(self) -> None:
        if self.chain is not None:
            self.chain.down()
            self.chain = None

    def save(self) -> None:
        (self.root / "bench.json").write_text(json.dumps(self.meta))

    def read_streams(self, seq: int, clients: int) -> list[Stream]:
        path = f"/v1/twins/{self.meta['read_twin']}/snapshots/{seq}?purpose={PURPOSE}"
        return [Stream("GET", path, seed=self.meta["reader"])] * clients

    def push_streams(self, devices: int) -> list[Stream]:
        return [
            Stream("POST", f"/v1/twins/{twin}/snapshots", 1024, seed=seed)
            for twin, seed in self.meta["devices"][:devices]
        ]

    def unanchored_receipts(self, node: Server) -> tuple[int, str]:
        """From the node's state DB; from its metrics (snapshots and receipts) if the DB has no such table."""
        path = self.data / "node" / "state.sqlite"
        try:
            with contextlib.closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=30)) as db:
                return int(
                    db.execute("SELECT COUNT(*) FROM receipts WHERE anchor_tx IS NULL").fetchone()[0]
                ), "state DB"
        except sqlite3.Error:
            text = httpx.get(node.url + "/metrics", timeout=10).text
            found = re.search(r"^twinledger_anchor_queue_depth\s+([0-9.e+]+)$", text, re.MULTILINE)
            if not found:
                raise RuntimeError("neither the state DB nor /metrics tells the unanchored receipts") from None
            return int(float(found.group(1))), "metrics (snapshots + receipts)"


def setup_level(root: Path, batch_seconds: float, database: Any = None) -> Level:
    """Chain, contracts, twins, grant, recovery key and the two read snapshots, all through the node's API."""
    root.mkdir(parents=True)
    owner = Account.from_key(DEV_KEYS[1])
    reader_seed, recovery, read_device = os.urandom(32).hex(), DidKey(os.urandom(32)), os.urandom(32).hex()
    reader = DidKey(bytes.fromhex(reader_seed))
    devices = [os.urandom(32).hex() for _ in range(DEVICES)]
    level = Level(root, {"format": CACHE_FORMAT, "stored": 0, "reader": None, "devices": []}, database=database)
    level.up()
    try:
        node = start_node(level, workers=None, batch_seconds=batch_seconds)
    except BaseException:
        level.down()
        raise
    try:
        deployment = Deployment.load(deployment_path(level.data / "deployments", DEFAULT_CHAIN_ID))
        ledger = TwinLedger(ChainClient(level.rpc, owner), deployment.twin_ledger)
        twins = [ledger.register("asset", device_did=DidKey(bytes.fromhex(s)).did)[0] for s in [read_device, *devices]]
        expiry = ledger.client.chain_time() + 5 * 365 * 86_400
        ledger.grant(GrantRequest.of(twins[0], reader.did, PURPOSE, "read", expiry))
        wait_indexed(node, twins[-1])
        binding = recovery_key_binding(owner, recovery.did, ledger.client.chain_id)
        with httpx.Client(base_url=node.url, auth=DidAuth(recovery), timeout=30) as http:
            http.put("/v1/owners/recovery-key", json=binding).raise_for_status()
        with httpx.Client(base_url=node.url, auth=DidAuth(DidKey(bytes.fromhex(read_device))), timeout=30) as http:
            for seq, size in READS.items():
                info = http.post(f"/v1/twins/{twins[0]}/snapshots", content=os.urandom(size))
                info.raise_for_status()
                assert info.json()["seq"] == seq, info.text
        level.meta.update(
            reader=reader_seed,
            read_twin=twins[0],
            devices=[[twin, seed] for twin, seed in zip(twins[1:], devices, strict=True)],
            fill_devices=[[twins[0], read_device]] + [[t, s] for t, s in zip(twins[1:], devices, strict=True)],
        )
    except BaseException:
        level.down()
        raise
    finally:
        node.stop()
    return level


def wait_indexed(node: Server, twin: int) -> None:
    """Until the node's index has the twin (and so every earlier event of the setup)."""
    for _ in range(600):
        if httpx.get(f"{node.url}/v1/twins/{twin}", timeout=10).status_code == 200:
            return
        time.sleep(0.05)
    raise RuntimeError(f"the node did not index twin {twin} within 30 s:\n{node.tail()}")


def fill(level: Level, target: int) -> None:
    """Add snapshots until `target` are stored, through the node's own ingest code in-process, then anchor them all
    so the benchmark's node starts with an empty queue."""
    from twinledger_node.auth import Caller
    from twinledger_node.runtime import NodeRuntime
    from twinledger_node.settings import NodeSettings

    runtime = NodeRuntime(NodeSettings(data_dir=level.data, rpc_url=level.rpc, anchor_batch_size=1024))
    runtime.start(workers=False)
    loop = asyncio.new_event_loop()
    producers = [(int(twin), DidKey(bytes.fromhex(seed))) for twin, seed in level.meta["fill_devices"]]
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
               TimeRemainingColumn())  # fmt: skip
    try:
        with Progress(*columns, console=console) as progress:
            task = progress.add_task(f"filling {level.root.name}", total=target, completed=level.stored)
            while level.stored < target:
                twin, device = producers[level.stored % len(producers)]
                body = os.urandom(1024)
                url = f"http://{HOST}/v1/twins/{twin}/snapshots"
                headers = sign_request(device, "POST", url, body)
                params = dict(re.findall(r";(\w+)=([^;]+)", headers["Signature-Input"]))
                caller = Caller(
                    did=device.did, key_id=device.did_url, algorithm="ed25519", created=int(params["created"]),
                    expires=int(params["expires"]), nonce=params["nonce"].strip('"'),
                    signature_input=headers["Signature-Input"], signature=headers["Signature"],
                    content_digest=headers["Content-Digest"], signature_base=b"", method="POST", target_uri=url,
                )  # fmt: skip
                loop.run_until_complete(
                    runtime.snapshots.ingest(
                        twin, body, caller, None, runtime.chain_now(), require_fresh=runtime.require_fresh
                    )
                )
                level.meta["stored"] = level.stored + 1
                progress.advance(task)
            pending = runtime.anchors.queue_depth()
            anchoring = progress.add_task("anchoring the fill", total=pending)
            while runtime.anchors.queue_depth():
                runtime.anchors.tick(force=True)
                progress.update(anchoring, completed=pending - runtime.anchors.queue_depth())
        # The index follows the fill's own anchor transactions: the measured node starts as a restarted node
        # would, not catching up on the blocks the fill added.
        if runtime.indexer is not None:
            runtime.indexer.sync_once()
    finally:
        loop.close()
        runtime.stop()


def prepare(level_target: int, work: Path, cache: Path | None, batch_seconds: float) -> Level:
    """A working copy of a level holding `level_target` snapshots: from the cache, else set up and filled (from
    the largest smaller cached level when there is one) and then cached."""
    key = f"snapshots-{level_target}"
    root = work / key

    def cached(path: Path) -> dict[str, Any] | None:
        with contextlib.suppress(OSError, ValueError):
            meta = json.loads((path / "bench.json").read_text())
            if meta.get("format") == CACHE_FORMAT and (path / "complete").exists():
                return dict(meta)
        return None

    if cache is not None and cached(cache / key):
        copy_tree(cache / key, root)
        return Level(root, json.loads((root / "bench.json").read_text()))
    bases = sorted(
        (int(p.name.split("-")[1]), p) for p in (cache.glob("snapshots-*") if cache else []) if cached(p)
    )  # fmt: skip
    smaller = [p for n, p in bases if n < level_target]
    if smaller:
        copy_tree(smaller[-1], root)
        level = Level(root, json.loads((root / "bench.json").read_text()))
        (root / "complete").unlink()
    else:
        level = setup_level(root, batch_seconds)
    try:
        if level_target > level.stored:
            if level.chain is None:
                level.up()
            fill(level, level_target)
    finally:
        level.down()
    level.save()
    (root / "complete").touch()
    if cache is not None:
        cache.mkdir(parents=True, exist_ok=True)
        shutil.rmtree(cache / key, ignore_errors=True)
        copy_tree(root, cache / key)
    return level


def copy_tree(src: Path, dst: Path) -> None:
    """Copy a level (reflinks where the filesystem has them); every run works on its own copy."""
    subprocess.run(["cp", "-a", "--reflink=auto", str(src), str(dst)], check=True)
    for stale in ("chain/anvil.pid",):
        (dst / stale).unlink(missing_ok=True)
    # The copy's dirty pages (a gigabyte at 100,000 snapshots) are written back now, not during the timed windows:
    # the node's own syncs would otherwise pay for the benchmark's setup.
    os.sync()


# ---------------------------------------------------------------------------------------------------- the run


@dataclass(frozen=True)
class Spec:
    key: str
    label: str
    streams: Callable[[Level], list[Stream]]


SPECS = (
    Spec("read-1k-1", "1 KiB reads, 1 client", lambda lv: lv.read_streams(1, 1)),
    Spec("read-1k-16", "1 KiB reads, 16 clients", lambda lv: lv.read_streams(1, 16)),
    Spec("read-64k-1", "64 KiB reads, 1 client", lambda lv: lv.read_streams(2, 1)),
    Spec("read-64k-16", "64 KiB reads, 16 clients", lambda lv: lv.read_streams(2, 16)),
    Spec("push-1", "1 KiB pushes, 1 device", lambda lv: lv.push_streams(1)),
    Spec("push-8", f"1 KiB pushes, {DEVICES} devices", lambda lv: lv.push_streams(DEVICES)),
)
GROWTH = ("push-1", "push-8", "read-1k-16")


@dataclass
class Row:
    key: str
    measure: str
    stored: str
    node: str
    baseline: str
    ratio: float | None
    target: str = ""


def target_cell(key: str, value: float | None) -> str:
    op, bound = TARGETS[key]
    shown = f"{op.replace('>=', '≥').replace('==', '=')} {bound:g}"
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return f"{shown} ?"
    met = {">=": value >= bound, "==": value == bound, "<": value < bound}[op]
    return f"{shown} {'✓' if met else '✗'}"


def ratio(a: float, b: float) -> float:
    return a / b if b else float("nan")


def measure_into(load: LoadGenerator, sizer: Sizer, server: Server | Replicas, level: Level, spec: Spec,
                 runs: dict[str, list[Measure]], key: str) -> None:  # fmt: skip
    streams = spread(spec.streams(level), server.ports)
    result = load.run(server, streams, sizer.count(key, len(streams)), sizer.seconds)
    sizer.saw(key, result)
    runs.setdefault(spec.key, []).append(result)
    console.print(f"  {server.name}, {level.stored:,} stored, {spec.label}: {result}")


@dataclass
class Pair:
    """The node and its baseline, measured back to back row by row, so both see the same load on the machine."""

    load: LoadGenerator
    sizer: Sizer
    baseline: Server
    dummy: Level  # the baseline's streams: same paths, headers and body sizes, its own keys
    node_runs: dict[str, list[Measure]] = field(default_factory=dict)
    base_runs: dict[str, list[Measure]] = field(default_factory=dict)

    def one(self, server: Server, level: Level, spec: Spec, runs: dict[str, list[Measure]], key: str) -> None:
        measure_into(self.load, self.sizer, server, level, spec, runs, key)

    def measure(self, node: Server, level: Level, specs: tuple[Spec, ...], tag: str = "") -> None:
        for spec in specs:
            self.one(self.baseline, self.dummy, spec, self.base_runs, f"baseline{tag}-{spec.key}")
            self.one(node, level, spec, self.node_runs, f"node{tag}-{spec.key}")

    def medians(self) -> tuple[dict[str, Measure], dict[str, Measure]]:
        return ({k: Measure.median(v) for k, v in self.node_runs.items()},
                {k: Measure.median(v) for k, v in self.base_runs.items()})  # fmt: skip


def run(args: argparse.Namespace) -> list[Row]:
    levels = sorted({int(x) for x in args.snapshots.split(",") if x.strip()})
    work = Path(tempfile.mkdtemp(prefix="twinledger-bench-", dir=args.work_dir))
    has_workers = node_supports_workers()
    one = 1 if has_workers else None
    sizer, load = Sizer(args.seconds), LoadGenerator()
    dummy = Level(work, {"stored": 0, "read_twin": 1, "reader": os.urandom(32).hex(),
                         "devices": [[i + 2, os.urandom(32).hex()] for i in range(DEVICES)]})  # fmt: skip
    rows: list[Row] = []
    baseline = start_baseline(work, 1)
    try:
        first: dict[str, Measure] = {}
        first_base: dict[str, Measure] = {}
        for index, target in enumerate(levels):
            last = index == len(levels) - 1
            started = time.monotonic()
            # Without --fill-cache, levels still build on each other within the run.
            level = prepare(target, work, args.fill_cache or work / "cache", args.batch_seconds)
            console.print(f"level {target:,}: ready in {time.monotonic() - started:.1f}s")
            level.up()
            node: Server | None = None
            try:
                pair = Pair(load, sizer, baseline, dummy)
                startups: list[float] = []
                for r in range(args.repeat):
                    node = start_node(level, workers=one, batch_seconds=args.batch_seconds)
                    startups.append(node.startup)
                    try:
                        pair.measure(node, level, SPECS)
                    finally:
                        if not (last and r == args.repeat - 1):
                            node.stop()
                medians, base = pair.medians()
                stored = f"{level.stored:,}"
                for spec in SPECS:
                    node_m, base_m = medians[spec.key], base[spec.key]
                    value = ratio(node_m.rate, base_m.rate)
                    rows.append(Row(spec.key, spec.label, stored, str(node_m), str(base_m), value,
                                    target_cell(spec.key, value) if spec.key in TARGETS else ""))  # fmt: skip
                startup = statistics.median(startups)
                rows.append(Row("startup", "start-up (process start → /readyz 200)", stored, f"{startup:.2f} s",
                                "", None, target_cell("startup-max", startup) if last else ""))  # fmt: skip
                if index == 0:
                    first, first_base = medians, base
                else:
                    for key in GROWTH:
                        value = ratio(medians[key].rate, first[key].rate)
                        label = next(s.label for s in SPECS if s.key == key)
                        # The baseline stores nothing: its own change between levels is the machine's drift.
                        drift = ratio(base[key].rate, first_base[key].rate)
                        rows.append(Row(f"growth-{key}", f"{label}: at {stored} ÷ at {levels[0]:,} stored", stored,
                                        f"{medians[key].rate:,.1f}/s", f"{first[key].rate:,.1f}/s at {levels[0]:,}"
                                        f" (the baseline's own change: {drift:.2f}×)",
                                        value, target_cell("push-growth", value) if last and key.startswith("push")
                                        else ""))  # fmt: skip
                if last:
                    assert node is not None
                    try:
                        rows.append(soak(load, sizer, node, level, args))
                    finally:
                        node.stop()
                if index == 0:
                    rows.append(scale(load, sizer, level, dummy, work, args, has_workers, medians, base))
                    if not args.no_postgres:
                        rows += engines(load, sizer, level, work, args)
            finally:
                if node is not None:
                    node.stop()  # no-op unless a failure skipped it
                level.down()
                shutil.rmtree(level.root, ignore_errors=True)
    finally:
        baseline.stop()
        load.close()
        shutil.rmtree(work, ignore_errors=True)
    order = [s.key for s in SPECS] + ["startup"] + [f"growth-{k}" for k in GROWTH] + ["workers", "soak"]
    order += [f"postgres-{s.key}" for s in ENGINE_SPECS] + ["replicas", "failover"]
    return sorted(rows, key=lambda row: order.index(row.key))


def scale(load: LoadGenerator, sizer: Sizer, level: Level, dummy: Level, work: Path, args: argparse.Namespace,
          has_workers: bool, node_one: dict[str, Measure], base_one: dict[str, Measure]) -> Row:  # fmt: skip
    """1 KiB reads by 16 clients with 2 workers, node and baseline back to back, against the 1-worker rows."""
    label, stored = "1 KiB reads, 16 clients: 2 workers ÷ 1", f"{level.stored:,}"
    if not has_workers:
        return Row("workers", label, stored, "n/a (node up has no --workers)", "", None, target_cell("workers", None))
    baseline = start_baseline(work, 2)
    try:
        pair = Pair(load, sizer, baseline, dummy)
        for _ in range(args.repeat):
            node = start_node(level, workers=2, batch_seconds=args.batch_seconds)
            try:
                pair.measure(node, level, SPECS[1:2], "2")
            finally:
                node.stop()
    finally:
        baseline.stop()
    medians, base = pair.medians()
    two, single = medians["read-1k-16"].rate, node_one["read-1k-16"].rate
    base_two, base_single = base["read-1k-16"].rate, base_one["read-1k-16"].rate
    value = ratio(two, single)
    return Row("workers", label, stored, f"{two:,.1f}/s ÷ {single:,.1f}/s",
               f"FastAPI {base_two:,.1f}/s ÷ {base_single:,.1f}/s = {ratio(base_two, base_single):.2f}", value,
               target_cell("workers", value))  # fmt: skip


ENGINE_SPECS = tuple(s for s in SPECS if s.key in ("read-1k-1", "read-1k-16", "push-1", "push-8"))
READS_16 = next(s for s in SPECS if s.key == "read-1k-16")


def engines(load: LoadGenerator, sizer: Sizer, sqlite_level: Level, work: Path, args: argparse.Namespace) -> list[Row]:
    """The node on PostgreSQL beside the same node on SQLite (each repeat runs one then the other, so both see the
    same machine), then one PostgreSQL replica against two, then a failover. The PostgreSQL server runs with fsync
    on, as durable as the SQLite node's commits, and its CPU counts as the node's (SQLite's is in the node's own)."""
    from twinledger_node.db.local_postgres import LocalPostgres

    postgres = LocalPostgres()
    postgres.up()
    try:
        level = setup_level(work / "postgres", args.batch_seconds, database=postgres)  # its chain left running
        try:
            runs: dict[str, dict[str, list[Measure]]] = {"sqlite": {}, "postgres": {}}
            for _ in range(args.repeat):
                for engine, lv in (("sqlite", sqlite_level), ("postgres", level)):
                    node = start_node(lv, workers=1, batch_seconds=args.batch_seconds, name=f"node on {engine}")
                    try:
                        for spec in ENGINE_SPECS:
                            measure_into(load, sizer, node, lv, spec, runs[engine], f"{engine}-{spec.key}")
                    finally:
                        node.stop()
            rows = []
            for spec in ENGINE_SPECS:
                pg, lite = Measure.median(runs["postgres"][spec.key]), Measure.median(runs["sqlite"][spec.key])
                value = ratio(pg.rate, lite.rate)
                target = target_cell("postgres", value) if spec.key in ("read-1k-16", "push-8") else ""
                rows.append(Row(f"postgres-{spec.key}", f"{spec.label}: PostgreSQL ÷ SQLite", "setup", str(pg),
                                f"the node on SQLite: {lite}", value, target))  # fmt: skip
            rows.append(replica_scaling(load, sizer, level, args))
            rows.append(failover(level))
            return rows
        finally:
            level.down()
    finally:
        postgres.down()


def start_replicas(level: Level, count: int, batch_seconds: float) -> Replicas:
    """`count` replicas (one API worker each) on the level's database and data directory; the first leads."""
    group = Replicas([], database_pid=level.database.pid if level.database is not None else None)
    try:
        for i in range(count):
            group.servers.append(start_node(level, workers=1, batch_seconds=batch_seconds, name=f"replica {i}"))
    except BaseException:
        group.stop()
        raise
    return group


def replica_scaling(load: LoadGenerator, sizer: Sizer, level: Level, args: argparse.Namespace) -> Row:
    """1 KiB reads by 16 clients through one replica, then through two (clients dealt over both), each repeat."""
    runs: dict[int, dict[str, list[Measure]]] = {1: {}, 2: {}}
    for _ in range(args.repeat):
        for count in (1, 2):
            group = start_replicas(level, count, args.batch_seconds)
            try:
                measure_into(load, sizer, group, level, READS_16, runs[count], f"replicas-{count}")
            finally:
                group.stop()
    one, two = Measure.median(runs[1][READS_16.key]), Measure.median(runs[2][READS_16.key])
    value = ratio(two.rate, one.rate)
    return Row("replicas", "1 KiB reads, 16 clients: 2 replicas ÷ 1 (PostgreSQL, 1 worker each)", "setup",
               f"{two}", f"1 replica: {one}", value, target_cell("replicas", value))  # fmt: skip


def failover(level: Level) -> Row:
    """SIGKILL the leading replica, push 20 snapshots through the other at once, and time from the kill until all
    are anchored: the standby's takeover plus one batch interval and the anchor's block."""
    group = start_replicas(level, 2, FAILOVER_BATCH_SECONDS)
    leader, standby = group.servers
    twin, seed = level.meta["devices"][0]
    try:
        killed = time.monotonic()
        leader.process.kill()  # the supervisor; its children die with it (PR_SET_PDEATHSIG)
        with httpx.Client(base_url=standby.url, auth=DidAuth(DidKey(bytes.fromhex(seed))), timeout=30) as http:
            for _ in range(20):
                http.post(f"/v1/twins/{twin}/snapshots", content=os.urandom(1024)).raise_for_status()
            while (depth := queue_depth(http)) and time.monotonic() - killed < 120:
                time.sleep(0.02)
        seconds = time.monotonic() - killed
        if depth:
            raise RuntimeError(f"the standby did not anchor after the leader's SIGKILL:\n{standby.tail()}")
    finally:
        group.stop()
    console.print(f"  failover: all 20 pushes anchored {seconds:.2f}s after the leader's SIGKILL")
    return Row("failover", "failover: the leader SIGKILLed, 20 pushes through the standby, until all anchored",
               "setup", f"{seconds:.2f} s", f"batch interval {FAILOVER_BATCH_SECONDS:g} s", seconds,
               target_cell("failover", seconds))  # fmt: skip


def queue_depth(http: httpx.Client) -> int:
    found = re.search(r"^twinledger_anchor_queue_depth\s+([0-9.e+]+)$", http.get("/metrics").text, re.MULTILINE)
    if not found:
        raise RuntimeError("the node's /metrics has no twinledger_anchor_queue_depth")
    return int(float(found.group(1)))


def soak(load: LoadGenerator, sizer: Sizer, node: Server, level: Level, args: argparse.Namespace) -> Row:
    streams = level.read_streams(1, 16)
    count = sizer.count("read-1k-16", len(streams), args.soak_seconds)
    result = load.run(node, streams, count, args.soak_seconds)
    at_end, source = level.unanchored_receipts(node)
    time.sleep(2 * args.batch_seconds)
    pending, source = level.unanchored_receipts(node)
    console.print(f"  soak: {result}; receipts unanchored: {at_end} at its end, {pending} after 2 intervals ({source})")
    label = f"receipts unanchored 2 batch intervals ({2 * args.batch_seconds:g} s) after the read soak"
    detail = (f"{pending} ({at_end:,} when the load ended; {source}; {result.seconds:.0f} s load, 16 clients, "
              f"{result.done:,} reads at {result.rate:,.1f}/s)")  # fmt: skip
    return Row("soak", label, f"{level.stored:,}", detail, "", float(pending), target_cell("soak", pending))


def print_table(rows: list[Row], args: argparse.Namespace, seconds: float) -> None:
    table = Table(title=f"twinledger node benchmark (median of {args.repeat}, {os.cpu_count()} cores)")
    for column, justify in (("measure", "left"), ("stored", "right"), ("node", "left"), ("baseline (same run)", "left"),
                            ("ratio", "right"), ("target", "left")):  # fmt: skip
        table.add_column(column, justify=justify, no_wrap=column == "measure")  # type: ignore[arg-type]
    for row in rows:
        table.add_row(row.measure, row.stored, row.node, row.baseline,
                      "" if row.ratio is None else f"{row.ratio:.3f}" if row.key != "soak" else f"{row.ratio:g}",
                      row.target)  # fmt: skip
    loop = "uvloop" if find_spec("uvloop") else "asyncio"
    http = "httptools" if find_spec("httptools") else "h11"
    table.caption = (
        f"uvicorn loop=auto ({loop}), http=auto ({http}), log level warning, 1 worker unless said, for node and "
        f"baselines alike · {args.seconds:g} s windows, requests pre-signed, load generator in its own process · "
        f"CPU: server process tree, anvil not counted · commit {commit()} · took {seconds / 60:.1f} min"
    )
    console.print(table)


def commit() -> str:
    found = subprocess.run(["git", "-C", str(ROOT), "describe", "--always", "--dirty"], capture_output=True, text=True)
    return found.stdout.strip() or "unknown"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--snapshots", default="0,10000,100000", help="stored-snapshot levels, comma-separated")
    parser.add_argument("--fill-cache", type=Path, help="keep filled levels here and reuse them on later runs")
    parser.add_argument("--repeat", type=int, default=3, help="runs per row (the median is shown)")
    parser.add_argument("--seconds", type=float, default=5.0, help="timed window of each measurement")
    parser.add_argument("--soak-seconds", type=float, default=60.0, help="full-rate read load before counting")
    parser.add_argument("--batch-seconds", type=float, default=None, help="the node's anchor batch interval")
    parser.add_argument("--work-dir", type=Path, default=None, help="where working copies go (a real disk)")
    parser.add_argument("--json", type=Path, help="also write the rows here")
    parser.add_argument("--no-postgres", action="store_true", help="leave out the PostgreSQL and replica rows")
    parser.add_argument("--quick", action="store_true", help="a seconds-long smoke run (levels 0,10; 1 repeat)")
    args = parser.parse_args()
    if args.quick:
        defaults = {"snapshots": "0,10000,100000", "repeat": 3, "seconds": 5.0, "soak_seconds": 60.0}
        quick = {"snapshots": "0,10", "repeat": 1, "seconds": 0.4, "soak_seconds": 1.0, "batch_seconds": 0.5}
        for name, value in quick.items():
            if getattr(args, name) == defaults.get(name):
                setattr(args, name, value)
    if args.batch_seconds is None:
        from twinledger_node.settings import NodeSettings

        args.batch_seconds = float(NodeSettings.model_fields["anchor_batch_seconds"].default)
    started = time.monotonic()
    rows = run(args)
    print_table(rows, args, time.monotonic() - started)
    if args.json:
        args.json.write_text(json.dumps([row.__dict__ for row in rows], indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
