"""A local EVM chain: anvil on 127.0.0.1 with its state kept in a data directory across restarts."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

from twinledger import config
from twinledger.errors import InvalidInput, NotFound, Unavailable

DEFAULT_PORT = 8545
DEFAULT_CHAIN_ID = 31337
PORT_RELEASE_WAIT = 15.0  # seconds an explicitly requested port may take to be released
# anvil's well-known development keys (mnemonic "test test ... junk"): funded on every anvil chain, worthless
# anywhere else. Used only when talking to a local chain and no key is configured.
DEV_KEYS = (
    "0xac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80",
    "0x59c6995e998f97a5a0044966f0945389dc9e86dae88c7a8412f4603b6b78690d",
    "0x5de4111afa1a4b94908f83103eb1f1706367c2e68ca870fc3fb9a804cdab365a",
    "0x7c852118294e51e653712a81e05800f419141751be58f605c371e15141b007a6",
    "0x47e179ec197488593b187f80a00eb0da91f1b9d0b13f8733639f19c30a34926a",
    "0x8b3a350cf5c34c9194ca85829a2df0ec3153be0318b5e2d3348e872092edffba",
    "0x92db14e403b83dfe3df233f83dfa3a0d7096f21ca9b0d6d6b8d88b2b4ec1564e",
    "0x4bbbf85ce3377467afe5d46f804f221813b2bb87f24d81f60f1fcdbf7cbf4356",
    "0xdbda1821b80551c9d65939329250298aa3472ba22feea921c0cf5d620ea67b97",
    "0x2a871d0798f97d79848a013d4936a73bf4cc922c825d33c1cf7073dff6d409c6",
)


@dataclass(frozen=True)
class ChainStatus:
    running: bool
    rpc_url: str | None = None
    pid: int | None = None
    chain_id: int | None = None
    block_number: int | None = None
    data_dir: str | None = None
    reused: bool = False

    def as_dict(self) -> dict[str, object]:
        return asdict(self)


def find_anvil() -> Path:
    """anvil from `TWINLEDGER_ANVIL`, PATH, or the npm package installed in the checkout."""
    candidates = [os.environ.get("TWINLEDGER_ANVIL"), shutil.which("anvil")]
    root = config.repo_root()
    if root is not None:
        candidates.append(str(root / "node_modules" / ".bin" / "anvil"))
    for candidate in candidates:
        if candidate and os.access(candidate, os.X_OK):
            return Path(candidate)
    raise NotFound(
        "anvil is not installed",
        hint="run `make install` (npm package @foundry-rs/anvil-linux-amd64) or set TWINLEDGER_ANVIL",
    )


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def rpc_call(url: str, method: str, params: list[object] | None = None, timeout: float = 2.0) -> object:
    import httpx  # here, not at the top: `twinledger chain --help` imports this module for its defaults

    response = httpx.post(
        url, json={"jsonrpc": "2.0", "id": 1, "method": method, "params": params or []}, timeout=timeout
    )
    response.raise_for_status()
    body = response.json()
    if "error" in body:
        raise Unavailable(f"{method} failed at {url}: {body['error']}")
    return body["result"]


class LocalChain:
    """anvil managed through a data directory: `anvil.pid` (JSON), `anvil-state.json`, `anvil.log`, and
    `anvil.port`, the port it last served on, which the next `up` takes again when free (so that a node or wallet
    configured with the chain's URL finds it again after a restart)."""

    def __init__(
        self,
        data_dir: Path | None = None,
        *,
        host: str = "127.0.0.1",
        port: int | None = None,
        chain_id: int = DEFAULT_CHAIN_ID,
        state_interval: int = 1,
        anvil_args: Sequence[str] = (),
        die_with_parent: bool = False,
    ) -> None:
        # `chain up` leaves anvil running for the commands after it; a test's anvil must not outlive a test run that
        # was killed before its teardown (the kernel kills it with the process that started it)
        self.die_with_parent = die_with_parent
        self.data_dir = Path(data_dir) if data_dir else config.data_dir() / "chain"
        self.anvil_args = tuple(anvil_args)  # e.g. ("--steps-tracing",) for opcode traces
        self.host = host
        self.port = port
        self.chain_id = chain_id
        self.state_interval = state_interval
        self.pid_file = self.data_dir / "anvil.pid"
        self.state_file = self.data_dir / "anvil-state.json"
        self.log_file = self.data_dir / "anvil.log"
        self.port_file = self.data_dir / "anvil.port"
        # anvil offloads old block states to $HOME/.foundry/anvil/tmp and never removes them (foundry-rs/foundry
        # #4251): ~0.5 GB per long run, 66 GB on this machine before this. Its $HOME is made the chain's own, and
        # that directory is emptied whenever no anvil of this chain can be using it.
        self.anvil_home = self.data_dir / "anvil-home"

    # ------------------------------------------------------------------ queries

    def _record(self) -> dict[str, object] | None:
        try:
            return dict(json.loads(self.pid_file.read_text()))
        except (FileNotFoundError, json.JSONDecodeError):
            return None

    @staticmethod
    def _is_anvil(pid: int) -> bool:
        # A PID file can outlive its process and the PID be reused: only signal a process that is anvil.
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
        except OSError:
            return False
        return b"anvil" in cmdline and Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"

    def status(self) -> ChainStatus:
        import httpx

        record = self._record()
        if not record or not self._is_anvil(int(str(record["pid"]))):
            return ChainStatus(running=False, data_dir=str(self.data_dir))
        url = str(record["rpc_url"])
        try:
            chain_id = int(str(rpc_call(url, "eth_chainId")), 16)
            block = int(str(rpc_call(url, "eth_blockNumber")), 16)
        except (httpx.HTTPError, Unavailable):
            return ChainStatus(running=False, pid=int(str(record["pid"])), rpc_url=url, data_dir=str(self.data_dir))
        return ChainStatus(True, url, int(str(record["pid"])), chain_id, block, str(self.data_dir))

    # ------------------------------------------------------------------ lifecycle

    def up(self, timeout: float = 30.0) -> ChainStatus:
        """Start anvil, or reuse the one this data directory already runs."""
        current = self.status()
        if current.running:
            if self.port is not None and current.rpc_url and not current.rpc_url.endswith(f":{self.port}"):
                raise InvalidInput(
                    f"a chain for {self.data_dir} already runs at {current.rpc_url}",
                    hint="stop it first with `twinledger chain down`, or drop --port",
                )
            return ChainStatus(**{**current.as_dict(), "reused": True})  # type: ignore[arg-type]
        if current.pid is not None and self._is_anvil(current.pid):
            self._stop(current.pid, 5.0)  # running but not answering: replace it
        self.data_dir.mkdir(parents=True, exist_ok=True)
        last = self._last_port()
        port = self.port or last or DEFAULT_PORT
        # this chain's own port (asked for, or the one it last had) may be held a moment by the anvil that stopped;
        # the default port, when taken, is someone else's: a free one at once
        if not _port_free(self.host, port) and not (
            (self.port is not None or port == last) and _wait_port_free(self.host, port, PORT_RELEASE_WAIT)
        ):
            if self.port is not None:
                raise InvalidInput(f"port {port} on {self.host} is in use", hint="pick another with --port")
            port = free_port()
        command = [
            str(find_anvil()),
            "--host", self.host,
            "--port", str(port),
            "--chain-id", str(self.chain_id),
            "--state", str(self.state_file),
            "--state-interval", str(self.state_interval),
            *self.anvil_args,
        ]  # fmt: skip
        shutil.rmtree(self.anvil_home, ignore_errors=True)  # a killed anvil's leftovers: none of ours runs now
        self.anvil_home.mkdir()
        with self.log_file.open("ab") as log:
            process = subprocess.Popen(
                command,
                env={**os.environ, "HOME": str(self.anvil_home)},
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
                preexec_fn=_die_with_parent if self.die_with_parent else None,
            )
        url = f"http://{self.host}:{port}"
        self.port_file.write_text(f"{port}\n")
        record = {"pid": process.pid, "rpc_url": url, "started": time.time()}
        tmp = self.pid_file.with_suffix(".tmp")
        tmp.write_text(json.dumps(record))
        tmp.replace(self.pid_file)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if process.poll() is not None:
                self.pid_file.unlink(missing_ok=True)
                raise Unavailable(f"anvil exited with code {process.returncode}", hint=self._log_tail())
            status = self.status()
            if status.running:
                return status
            time.sleep(0.05)
        self._stop(process.pid, 5.0)
        raise Unavailable(f"anvil did not answer at {url} within {timeout:.0f}s", hint=self._log_tail())

    def _last_port(self) -> int | None:
        try:
            port = int(self.port_file.read_text())
        except (OSError, ValueError):
            return None
        return port if 0 < port < 65536 else None

    def down(self, timeout: float = 15.0) -> bool:
        """Stop anvil (it writes its state file on the way out). False when nothing was running."""
        record = self._record()
        if not record:
            return False
        pid = int(str(record["pid"]))
        stopped = self._is_anvil(pid)
        if stopped:
            self._stop(pid, timeout)
        self.pid_file.unlink(missing_ok=True)
        shutil.rmtree(self.anvil_home, ignore_errors=True)
        return stopped

    def _stop(self, pid: int, timeout: float) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and self._is_anvil(pid):
            _reap(pid)
            time.sleep(0.05)
        if self._is_anvil(pid):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
            time.sleep(0.1)
        _reap(pid)

    def _log_tail(self, lines: int = 5) -> str:
        try:
            tail = self.log_file.read_text(errors="replace").strip().splitlines()[-lines:]
        except FileNotFoundError:
            return f"no log at {self.log_file}"
        return f"anvil log ({self.log_file}): " + " | ".join(tail)

    def __enter__(self) -> ChainStatus:
        return self.up()

    def __exit__(self, *exc: object) -> None:
        self.down()


def _port_free(host: str, port: int) -> bool:
    with socket.socket() as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError:
            return False
        return True


def _wait_port_free(host: str, port: int, seconds: float) -> bool:
    # The connections of an anvil that just stopped can hold its port for a moment after the process is gone.
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if _port_free(host, port):
            return True
        time.sleep(0.1)
    return False


def _reap(pid: int) -> None:
    # Collect the exit status when anvil is our own child, so it does not linger as a zombie.
    with contextlib.suppress(ChildProcessError, OSError):
        os.waitpid(pid, os.WNOHANG)


def _die_with_parent() -> None:
    """In the child before exec: SIGKILL when the process that started it dies (PR_SET_PDEATHSIG survives exec)."""
    from twinledger.libc import libc

    libc().prctl(1, signal.SIGKILL, 0, 0, 0)  # 1: PR_SET_PDEATHSIG
