"""`twinledger snapshot watch` as a real process against a live node: one line per snapshot, each written to
DIR/<seq>, and the end of consent ends it with its reason and exit code 7; Ctrl-C ends it with 0."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from tests.cli.test_cli import tl
from tests.sdk.conftest import PASSPHRASE, Stack, client_for
from twinledger.client import parse_expiry
from twinledger.identity import DidKey


@pytest.fixture(scope="module")
def env(stack: Stack) -> dict[str, str]:
    return {
        **os.environ,
        "TWINLEDGER_HOME": str(stack.home),  # the stack's wallets: owner (funded) and researcher
        "TWINLEDGER_NODE_URL": stack.node.url,
        "TWINLEDGER_RPC_URL": stack.rpc_url,
        "TWINLEDGER_PASSPHRASE": PASSPHRASE,
        "COLUMNS": "200",
    }


def watch(env: dict[str, str], *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "twinledger.cli", "snapshot", "watch", *args],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip


def shared_twin(stack: Stack) -> tuple[int, DidKey, str]:
    """A twin of the owner with a device, and READ for "research" granted to the researcher's did:key."""
    device = DidKey.generate()
    researcher = stack.store.unlock("researcher", PASSPHRASE).did_key.did
    with client_for(stack, "owner") as owner:
        twin = owner.register_twin("asset", device_did=device.did).twin_id
        owner.grant(twin, researcher, purpose="research", scopes="read", expiry=parse_expiry("1d"))
    return twin, device, researcher


def test_watch_prints_and_writes_each_snapshot_until_the_grant_is_revoked(env, stack: Stack, tmp_path: Path):
    twin, device, researcher = shared_twin(stack)
    with client_for(stack, "owner") as owner:
        owner.push_snapshot(twin, b"first", as_device=device)
        out = tmp_path / "snapshots"
        out.mkdir()
        args = (str(twin), "--name", "researcher", "--purpose", "research", "-o", str(out), "--after", "0", "--json")
        process = watch(env, *args)
        try:
            assert process.stdout is not None
            first = json.loads(process.stdout.readline())  # the backlog after --after 0: the stream is open
            assert first["seq"] == 1 and first["twinId"] == twin and first["path"] == str(out / "1")
            owner.push_snapshot(twin, b"second", as_device=device)
            second = json.loads(process.stdout.readline())
            assert second["seq"] == 2 and second["verification"]["producer"] == device.did
            owner.revoke(twin, researcher, purpose="research")
            rest, _ = process.communicate(timeout=120)
        finally:
            process.kill()
    assert process.returncode == 7  # consent denied, as the README's table says
    problem = json.loads(rest.strip().splitlines()[-1])  # under --json the reason is a problem object on stdout
    assert "revoked" in problem["detail"] and problem["exitCode"] == 7 and problem["hint"]
    assert (out / "1").read_bytes() == b"first" and (out / "2").read_bytes() == b"second"


def test_watch_as_text_ends_with_the_reason_and_ctrl_c_ends_it_cleanly(env, stack: Stack, tmp_path: Path):
    twin, device, researcher = shared_twin(stack)
    with client_for(stack, "owner") as owner:
        owner.push_snapshot(twin, b"first", as_device=device)
        process = watch(env, str(twin), "--name", "researcher", "--purpose", "research", "--after", "0")
        assert process.stdout is not None
        line = process.stdout.readline()
        assert f"snapshot #1 of twin {twin}: 5 bytes" in line and "verified" in line, line
        process.send_signal(signal.SIGINT)
        _, err = process.communicate(timeout=60)
        assert process.returncode == 0 and "Traceback" not in err, err

        process = watch(env, str(twin), "--name", "researcher", "--purpose", "research")
        owner.revoke(twin, researcher, purpose="research")
        _, err = process.communicate(timeout=120)
    assert process.returncode == 7 and "revoked" in err and "hint:" in err and "Traceback" not in err, err


def test_watch_refuses_a_missing_directory_before_reading(env, tmp_path: Path):
    missing = tmp_path / "nowhere"
    refused = tl(env, "snapshot", "watch", "1", "--name", "researcher", "--purpose", "research", "-o", str(missing))
    assert refused.returncode == 3 and f"no directory {missing}" in refused.stderr and "hint:" in refused.stderr
