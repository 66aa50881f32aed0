"""`twinledger node up --workers N`: the HTTP API in N processes and the indexer and anchor worker in one
background process, all sharing the node's SQLite files (WAL) and block store.

The supervisor (the process `node up` runs in) binds the listening socket and starts the background process and the
API processes together. The background process connects to the chain (starting the local anvil and deploying the
contracts if needed) and syncs the index; only then does the supervisor let the API processes, their imports done
meanwhile, connect and listen, each on its own socket bound to the port with SO_REUSEPORT (see `reuseport_socket`),
so they find the deployment and a fresh head. The supervisor holds the port with a
bound socket that never listens, so a port in use is an error before any child starts. A child that dies is
restarted; SIGTERM or
SIGINT stops every child by its PID and waits for it; the children die with the supervisor (PR_SET_PDEATHSIG), so a
SIGKILLed node leaves no process behind and loses what a single SIGKILLed process would lose: nothing acknowledged.

Children run in their own sessions, so a Ctrl-C (or a signal to the node's process group) reaches the supervisor
alone, which stops them in order, each once. Each child is a fresh interpreter (`python -m twinledger_node.workers
ROLE ...`) that resolves the same settings from the same config file, environment and options as the supervisor.
"""

from __future__ import annotations

import argparse
import gc
import json
import logging
import os
import select
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from twinledger.errors import Unavailable
from twinledger.libc import libc

log = logging.getLogger("twinledger.node")
PR_SET_PDEATHSIG = 1
READY_TIMEOUT = 120.0  # seconds the background process may take to connect (and deploy) and sync once
STOP_TIMEOUT = 20.0  # seconds children get to finish after SIGTERM before they are killed
RESTART_BACKOFF_MAX = 5.0
LEADER_POLL = 0.5  # seconds between a standby's bids for leadership, and the leader's checks that it still leads


@dataclass
class Child:
    role: str
    slot: int
    process: subprocess.Popen[bytes]
    started: float = field(default_factory=time.monotonic)
    failures: int = 0  # quick deaths in a row: each one doubles the wait before the next restart


class Supervisor:
    def __init__(
        self, settings_spec: dict[str, Any], *, workers: int, log_level: str, host: str, port: int, metrics_dir: Path
    ) -> None:
        self.spec, self.workers, self.log_level = settings_spec, workers, log_level
        self.host, self.port, self.metrics_dir = host, port, metrics_dir
        self.stopping = threading.Event()
        self.children: list[Child] = []
        self.sock: socket.socket | None = None

    def _command(self, role: str, *extra: str) -> list[str]:
        return [sys.executable, "-m", "twinledger_node.workers", role, "--parent", str(os.getpid()),
                "--settings", json.dumps(self.spec), "--log-level", self.log_level, *extra]  # fmt: skip

    def _spawn(self, role: str) -> tuple[subprocess.Popen[bytes], int]:
        """Start a child and return it with our end of its pipe: the background process writes to it once it is
        ready; an API process waits on it before it accepts connections (the supervisor writes or closes it)."""
        read_end, write_end = os.pipe()
        if role == "api":
            assert self.sock is not None
            ours, theirs = write_end, read_end
            extra = ["--port", str(self.sock.getsockname()[1]), "--go-fd", str(theirs)]
            passed: tuple[int, ...] = (theirs,)
        else:
            ours, theirs = read_end, write_end
            extra = ["--ready-fd", str(theirs)]
            passed = (theirs,)
        try:
            process = subprocess.Popen(self._command(role, *extra), pass_fds=passed, start_new_session=True)
        except BaseException:
            os.close(ours)
            raise
        finally:
            os.close(theirs)
        return process, ours

    def _start_background(self) -> subprocess.Popen[bytes]:
        process, ready = self._spawn("background")
        try:
            self._await_ready(process, ready)
        finally:
            os.close(ready)
        return process

    def _start_api(self) -> subprocess.Popen[bytes]:
        process, go = self._spawn("api")
        os.write(go, b"go")
        os.close(go)
        return process

    def _await_ready(self, process: subprocess.Popen[bytes], read_end: int) -> None:
        deadline = time.monotonic() + READY_TIMEOUT
        while time.monotonic() < deadline and not self.stopping.is_set():
            readable, _, _ = select.select([read_end], [], [], 0.2)
            if readable:
                if os.read(read_end, 16):
                    return
                break  # end of file: the process exited before it was ready
            if process.poll() is not None:
                break
        if self.stopping.is_set():
            return
        try:
            code = process.wait(timeout=5)
        except subprocess.TimeoutExpired:  # not ready in time
            process.kill()
            code = process.wait()
        raise Unavailable(
            f"the node's background process did not start (exit code {code})",
            hint="see its log lines above; the chain or the data directory may be unreachable",
        )

    def run(self) -> int:
        from twinledger_node.metrics import MULTIPROC_DIR
        from twinledger_node.private import private_dir

        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, lambda *_: self.stopping.set())
        # The children's counters go to files in a directory of this supervisor's own (summed by whichever of its
        # API processes is scraped; replicas on one data directory keep theirs apart); a new node starts from zero,
        # as a restarted single process would, and clears what dead supervisors left.
        ours = self.metrics_dir / str(os.getpid())
        for left in self.metrics_dir.glob("*"):
            if left.name.isdigit() and left != ours and Path(f"/proc/{left.name}").exists():
                continue  # another live supervisor's
            if left.is_dir():
                shutil.rmtree(left, ignore_errors=True)
            else:
                left.unlink(missing_ok=True)
        os.environ[MULTIPROC_DIR] = str(private_dir(ours))
        try:
            # First without SO_REUSEPORT, which fails if anything listens on the port (another node's API
            # processes included, which would otherwise share it silently), then hold it, bound, never listening.
            with reuseport_socket(self.host, self.port, reuse_port=False) as probe:
                port = probe.getsockname()[1]
            self.sock = reuseport_socket(self.host, port)
        except OSError as error:
            raise Unavailable(
                f"cannot listen on {self.host}:{self.port}: {error.strerror or error}",
                hint="stop what uses the port or pass another --port",
            ) from None
        try:
            # The API processes start (imports, settings, databases) while the background process connects to the
            # chain (deploying on a local one) and syncs the index, and accept connections only once it is done.
            background, ready = self._spawn("background")
            self.children.append(Child("background", 0, background))
            gates = []
            for slot in range(self.workers):
                process, go = self._spawn("api")
                self.children.append(Child("api", slot, process))
                gates.append(go)
            try:
                self._await_ready(background, ready)
                if self.stopping.is_set():
                    return 0
                for go in gates:
                    os.write(go, b"go")
            finally:
                os.close(ready)
                for go in gates:
                    os.close(go)  # an API process that did not get "go" reads end-of-file and exits
            log.info("node serving on %s:%d with %d API processes", self.host, self.port, self.workers)
            while not self.stopping.wait(0.2):
                self._restart_dead()
            return 0
        finally:
            self._stop_children()
            self.sock.close()
            shutil.rmtree(ours, ignore_errors=True)

    def _restart_dead(self) -> None:
        for child in self.children:
            code = child.process.poll()
            if code is None:
                continue
            quick = time.monotonic() - child.started < 10
            child.failures = child.failures + 1 if quick else 0
            wait = min(RESTART_BACKOFF_MAX, 0.25 * 2**child.failures) if child.failures else 0.0
            log.warning("%s process %d exited with %s; restarting in %.2fs", child.role, child.process.pid, code, wait)
            if self.stopping.wait(wait):
                return
            try:
                child.process = self._start_api() if child.role == "api" else self._start_background()
            except Unavailable as error:
                log.warning("restarting the %s process failed: %s", child.role, error.message)
            child.started = time.monotonic()

    def _stop_children(self) -> None:
        alive = [c.process for c in self.children if c.process.poll() is None]
        for process in alive:
            process.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + STOP_TIMEOUT
        for process in alive:
            try:
                process.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                log.warning("process %d did not stop in %.0fs; killing it", process.pid, STOP_TIMEOUT)
                process.kill()
                process.wait()


# ---------------------------------------------------------------------------------------------------- children


def _die_with_parent(parent: int) -> None:
    """SIGKILL this process when the supervisor dies, whatever kills it (a SIGKILL included)."""
    libc().prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    if os.getppid() != parent:  # the supervisor died before the line above
        os._exit(1)


def _settings(spec: dict[str, Any]) -> Any:
    from twinledger_node.settings import resolve_settings

    config = spec.get("config")
    return resolve_settings(Path(config) if config else None, **spec.get("overrides", {}))


def reuseport_socket(host: str, port: int, *, listen: bool = False, reuse_port: bool = True) -> socket.socket:
    """A TCP socket bound with SO_REUSEPORT: every API process listens on its own, and the kernel spreads new
    connections over them (a listening socket shared by the processes lets whichever wakes first take every
    pending connection, so a burst of keep-alive clients can all land on one process)."""
    family, kind, proto, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)[
        0
    ]
    sock = socket.socket(family, kind, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, int(reuse_port))
        sock.bind(address)
        if listen:
            sock.listen(2048)
    except BaseException:
        sock.close()
        raise
    return sock


def _settle_garbage_collector() -> None:
    """Move what start-up built (modules, the app, its routes) out of the collector's sight and collect young
    objects less often: a request allocates thousands of short-lived, mostly acyclic objects, and with the default
    threshold (700) the cyclic collector ran every few requests, rescanning the same long-lived objects each time.
    The full collection of the imports' garbage ran before (`_run_api`, while it waits for the go-ahead)."""
    gc.collect(1)
    gc.freeze()
    gc.set_threshold(10_000, 20, 20)


def _run_api(settings: Any, port: int, go_fd: int) -> None:
    from twinledger_node.app import create_app, node_server
    from twinledger_node.runtime import NodeRuntime

    # Imports done; the chain connection waits for the background process, which deploys the contracts if needed.
    gc.collect()
    if not os.read(go_fd, 2):  # the supervisor gave up on starting the node
        sys.exit(1)
    os.close(go_fd)
    app = create_app(NodeRuntime(settings, role="api"))
    _settle_garbage_collector()
    sock = reuseport_socket(settings.host, port, listen=True)
    node_server(app, settings).run(sockets=[sock])


def _run_background(settings: Any, ready_fd: int) -> None:
    from twinledger_node.runtime import NodeRuntime

    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    runtime = NodeRuntime(settings, role="background")
    # One indexer writer and one anchor worker among the replicas on the node's database: the leader. The others
    # stand by (their API processes serve from the head the leader publishes) and one takes over when it dies.
    leadership = runtime.state.lease("leader")
    leading = leadership.acquire(wait=False)
    if leading:
        runtime.start(workers=True)
        log.info("background process %d: indexing and anchoring", os.getpid())
    else:
        log.info("background process %d: standing by while another replica indexes and anchors", os.getpid())
    os.write(ready_fd, b"ready\n")
    os.close(ready_fd)
    while not leading and not stop.wait(LEADER_POLL):
        try:
            leading = leadership.acquire(wait=False)
        except sqlite3.OperationalError as error:  # the database is away: try again at the next poll
            log.warning("cannot ask for leadership: %s", error)
        if leading:
            log.info("background process %d: took over indexing and anchoring", os.getpid())
            runtime.start(workers=True)
    while not stop.wait(LEADER_POLL):
        if not leadership.held():
            # Another replica may lead already: stop at once (the supervisor restarts us, as a standby).
            log.error("background process %d lost its database session, and leadership with it", os.getpid())
            os._exit(1)
    runtime.stop()
    leadership.release()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m twinledger_node.workers")
    parser.add_argument("role", choices=["api", "background"])
    parser.add_argument("--parent", type=int, required=True)
    parser.add_argument("--settings", required=True)
    parser.add_argument("--log-level", default="info")
    parser.add_argument("--port", type=int)
    parser.add_argument("--ready-fd", type=int)
    parser.add_argument("--go-fd", type=int)
    args = parser.parse_args(argv)
    _die_with_parent(args.parent)

    from twinledger_node import logs

    logs.configure(args.log_level)
    try:
        settings = _settings(json.loads(args.settings))
        if args.role == "api":
            _run_api(settings, args.port, args.go_fd)
        else:
            _run_background(settings, args.ready_fd)
    except Exception as error:  # logged as one line (secrets never in settings errors); the supervisor restarts us
        log.error("%s process failed: %s: %s", args.role, error.__class__.__name__, str(error)[:500])
        sys.exit(1)


if __name__ == "__main__":
    main()
