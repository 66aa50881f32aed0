"""The README's captured session, run for real: prints each command, its output and its exit code.

    .venv/bin/python scripts/readme_session.py > session.txt

A local chain and a node of its own in a temporary directory (one-second anchor batches), two people (alice owns a
twin, bob reads it for research) and a device: consent given and watched live until it is revoked; consent revoked
with the node stopped; the data exported, the node's data directory and key deleted, and every snapshot recovered
from the export with alice's wallet alone. Everything it starts is stopped by PID at the end.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx

from twinledger.chain.localchain import DEV_KEYS, free_port

ROOT = Path(__file__).resolve().parents[1]


class Session:
    def __init__(self, work: Path) -> None:
        self.work = work
        self.env = {
            **{k: v for k, v in os.environ.items() if not k.startswith("TWINLEDGER_")},
            "TWINLEDGER_HOME": str(work / "home"), "TWINLEDGER_PASSPHRASE": "correct horse battery staple",
            "COLUMNS": "118", "NO_COLOR": "1", "TWINLEDGER_KDF_N": "16384",
        }  # fmt: skip

    def shown(self, text: str) -> str:
        return text.replace(str(self.work / "home"), "~/.twinledger").replace(str(self.work) + "/", "")

    def run(self, *args: str, quiet: bool = False) -> subprocess.CompletedProcess[str]:
        done = subprocess.run(
            [sys.executable, "-m", "twinledger.cli", *args], env=self.env, cwd=self.work, capture_output=True,
            text=True, timeout=300,
        )  # fmt: skip
        if not quiet:
            self.echo(args, done.stdout + done.stderr, done.returncode)
        return done

    def echo(self, args: tuple[str, ...] | list[str], output: str, code: int) -> None:
        print(self.shown(f"$ twinledger {' '.join(args)}"))
        if output.strip():
            print(self.shown(output.rstrip("\n")))
        print(f"[exit {code}]")

    def say(self, line: str) -> None:
        print(f"# {line}")

    def start(self, *args: str, env: dict[str, str] | None = None) -> subprocess.Popen[str]:
        return subprocess.Popen(
            [sys.executable, "-m", "twinledger.cli", *args], env={**self.env, **(env or {})}, cwd=self.work,
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True,
        )  # fmt: skip


def wait_ready(url: str, node: subprocess.Popen[str], timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if node.poll() is not None:
            raise SystemExit(f"the node exited with {node.returncode}: {node.stdout.read() if node.stdout else ''}")
        try:
            if httpx.get(f"{url}/readyz", timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    raise SystemExit(f"the node at {url} was not ready within {timeout:.0f} s")


def stop(process: subprocess.Popen[str]) -> None:
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


def main() -> None:
    work = Path(tempfile.mkdtemp(prefix="twinledger-session-"))
    s = Session(work)
    port = free_port()
    node_url = f"http://127.0.0.1:{port}"
    chain_dir, node_dir = work / "chain-data", work / "node-data"
    node: subprocess.Popen[str] | None = None
    try:
        chain = s.run("chain", "up", "--data-dir", str(chain_dir), "--json", quiet=True)
        rpc = json.loads(chain.stdout)["rpc_url"]
        node_env = {
            "TWINLEDGER_RPC_URL": rpc, "TWINLEDGER_PUBLIC_RPC_URL": rpc, "TWINLEDGER_ANCHOR_BATCH_SECONDS": "1",
        }  # fmt: skip

        def node_up() -> subprocess.Popen[str]:
            started = s.start("node", "up", "--workers", "0", "--port", str(port), "--data-dir", str(node_dir),
                              env=node_env)  # fmt: skip
            wait_ready(node_url, started)
            return started

        node = node_up()
        s.say(f"a node runs at {node_url} on a local chain; the CLI learns both from it")
        s.run("config", "set", "--node", node_url)
        (work / "alice.key").write_text(DEV_KEYS[3] + "\n")
        (work / "alice.key").chmod(0o600)
        s.run("wallet", "import", "--name", "alice", "--private-key-file", "alice.key")
        s.run("wallet", "create", "--name", "bob")
        bob = s.run("wallet", "export-did", "--name", "bob", quiet=True).stdout.strip()
        device = s.run("did", "new", "--out", "device.jwk", "--json", quiet=True)
        device_did = json.loads(device.stdout)["did"]
        s.run("did", "show", "device.jwk")
        registered = s.run("twin", "register", "--name", "alice", "--kind", "asset", "--device", device_did, "--json")
        twin = str(json.loads(registered.stdout)["twin_id"])
        (work / "reading.json").write_text('{"temperature": 21.5}')
        s.run("snapshot", "push", twin, "reading.json", "--device-key", "device.jwk")
        s.run("snapshot", "get", twin, "--name", "bob", "--purpose", "research")
        s.run("consent", "grant", twin, bob, "--scope", "read,audit", "--purpose", "research", "--expires", "30d",
              "--name", "alice", "--relay")  # fmt: skip

        s.say("bob watches the twin live; the device pushes; alice revokes: the watch ends")
        (work / "from-bob").mkdir()
        print("$ mkdir from-bob")
        watch = s.start("snapshot", "watch", twin, "--purpose", "research", "--name", "bob", "-o", "from-bob")
        lines: list[str] = []
        reader = threading.Thread(target=lambda: lines.extend(watch.stdout or []), daemon=True)
        reader.start()
        time.sleep(3)
        (work / "reading.json").write_text('{"temperature": 22.0}')
        s.run("snapshot", "push", twin, "reading.json", "--device-key", "device.jwk")
        time.sleep(3)
        s.run("consent", "revoke", twin, bob, "--purpose", "research", "--name", "alice")
        try:
            watch.wait(timeout=60)
        except subprocess.TimeoutExpired:
            stop(watch)
        reader.join(timeout=5)
        s.say("bob's terminal, where the watch was started before that push:")
        s.echo(["snapshot", "watch", twin, "--purpose", "research", "--name", "bob", "-o", "from-bob"], "".join(lines),
               watch.returncode)  # fmt: skip

        s.run("consent", "grant", twin, bob, "--scope", "read", "--purpose", "research", "--expires", "7d",
              "--name", "alice")  # fmt: skip
        s.say("the node stops; alice withdraws consent with the chain alone")
        stop(node)
        s.run("consent", "revoke", twin, bob, "--purpose", "research", "--name", "alice")
        s.run("consent", "check", twin, bob, "--purpose", "research")
        s.run("consent", "list", twin)
        s.say("the node comes back and applies what the chain says")
        node = node_up()
        s.run("snapshot", "get", twin, "--name", "bob", "--purpose", "research")
        time.sleep(2)  # the refused read's denial record into the next batch
        s.run("audit", twin, "--name", "alice")

        s.say("alice takes her data home; the node's data directory and its key are deleted")
        s.run("export", twin, "-o", "twin.car", "--name", "alice")
        stop(node)
        node = None
        shutil.rmtree(node_dir)
        print(f"$ rm -rf {s.shown(str(node_dir))}")
        s.run("snapshot", "open", "--car", "twin.car", "--all", "-o", "recovered", "--name", "alice")
        same = (work / "recovered" / "000002").read_bytes() == b'{"temperature": 22.0}'
        print(f"$ cat recovered/000002\n{(work / 'recovered' / '000002').read_text()}\n[exit {0 if same else 1}]")
        s.run("verify", twin, "--car", "twin.car")
    finally:
        if node is not None:
            stop(node)
        subprocess.run([sys.executable, "-m", "twinledger.cli", "chain", "down", "--data-dir", str(chain_dir)],
                       env=s.env, capture_output=True, timeout=60)  # fmt: skip
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
