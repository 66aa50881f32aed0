"""Oversized bodies, sent chunked (no Content-Length) and unsigned or signed, are refused as they stream: the node
answers 413 (or 401 before reading anything, for an unsigned request to a signed route) and its memory does not
grow with the body. The node runs as its own process (`twinledger node up`), so its RSS is its own."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.conftest import node_database_env
from tests.security._http_helpers import problem_slug
from twinledger.chain.deploy import Deployment
from twinledger.chain.localchain import free_port
from twinledger.identity import DidKey
from twinledger.identity.http_signatures import sign_request

MiB = 1024 * 1024
ATTACK = 200 * MiB  # each oversized body
UPLOAD_LIMIT = 1 * MiB  # the node's limit for snapshot pushes in this test (the default is 64 MiB)
GROWTH = 8 * MiB  # the node's peak RSS may grow by less than this while refusing all the bodies


def _chunks(total: int, size: int = 64 * 1024) -> Iterator[bytes]:
    block = b"\x00" * size
    for _ in range(total // size):
        yield block


def _status(pid: int, field: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) * 1024
    raise AssertionError(f"no {field} for process {pid}")


@pytest.fixture
def node_process(anvil: str, deployment: Deployment, accounts, tmp_path: Path) -> Iterator[tuple[str, int]]:
    deployments = tmp_path / "deployment.json"
    deployments.write_text(deployment.to_json())
    port = free_port()
    env = {
        **os.environ, "TWINLEDGER_DATA_DIR": str(tmp_path / "data"), "TWINLEDGER_PORT": str(port),
        "TWINLEDGER_RPC_URL": anvil, "TWINLEDGER_DEPLOYMENTS_FILE": str(deployments),
        "TWINLEDGER_PRIVATE_KEY": accounts[8].key.hex(), "TWINLEDGER_MAX_BODY_BYTES": str(UPLOAD_LIMIT),
        **node_database_env(tmp_path / "data"),
    }  # fmt: skip
    with (tmp_path / "node.log").open("w") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "twinledger.cli", "node", "up"], env=env, stdout=log, stderr=subprocess.STDOUT
        )
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(600):
            assert process.poll() is None, (tmp_path / "node.log").read_text()
            try:
                if httpx.get(f"{url}/healthz", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            time.sleep(0.1)
        yield url, process.pid
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def test_oversized_chunked_bodies_are_refused_while_they_stream(node_process: tuple[str, int]) -> None:
    url, pid = node_process
    stranger = DidKey.generate()
    push = f"{url}/v1/twins/1/snapshots"

    def attack() -> dict[str, httpx.Response]:
        with httpx.Client(timeout=120) as http:
            return {
                # unauthenticated JSON routes: limited to max_json_body_bytes
                "consent": http.post(f"{url}/v1/consents", content=_chunks(ATTACK)),
                "recovery-key": http.put(f"{url}/v1/owners/recovery-key", content=_chunks(ATTACK)),
                # a signed route, unsigned: refused before a byte of the body is read
                "unsigned push": http.post(push, content=_chunks(ATTACK)),
                # signed by some did:key: its body is refused once it passes the upload limit
                "signed push": http.post(
                    push, content=_chunks(ATTACK), headers=sign_request(stranger, "POST", push, b"")
                ),
            }

    with httpx.Client(timeout=30) as http:  # warm every code path up with small bodies first
        http.post(f"{url}/v1/consents", content=b"{}")
        http.post(push, content=b"x", headers=sign_request(stranger, "POST", push, b"x"))
    before = _status(pid, "VmRSS")
    Path(f"/proc/{pid}/clear_refs").write_text("5")  # reset the peak (VmHWM) to the current RSS
    answers = attack()
    peak = _status(pid, "VmHWM")
    print(f"node RSS {before / MiB:.1f} MiB before, peak {peak / MiB:.1f} MiB while refusing 4 x {ATTACK // MiB} MiB")

    assert peak - before < GROWTH, f"the node's RSS peaked {(peak - before) / MiB:.1f} MiB above {before / MiB:.1f}"
    expected = {"consent": 413, "recovery-key": 413, "unsigned push": 401, "signed push": 413}
    assert {name: r.status_code for name, r in answers.items()} == expected, {n: r.text for n, r in answers.items()}
    for name in ("consent", "recovery-key", "signed push"):
        assert problem_slug(answers[name]) == "body-too-large"
    assert str(UPLOAD_LIMIT) in answers["signed push"].json()["detail"]
    assert str(64 * 1024) in answers["consent"].json()["detail"]
    with httpx.Client(timeout=10) as http:  # and it still serves
        assert http.get(f"{url}/healthz").status_code == 200
