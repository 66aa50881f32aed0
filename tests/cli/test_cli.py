"""The CLI through typer's runner and as real subprocesses against a live node: success and main failures."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from tests.sdk.conftest import PASSPHRASE, Stack
from twinledger.cli.main import app
from twinledger.errors import Declined, InvalidInput
from twinledger.identity import DidKey

DEV_KEY_5 = "0x8b3a350cf5c34c9194ca85829a2df0ec3153be0318b5e2d3348e872092edffba"  # anvil's funded dev key #5


@pytest.fixture(scope="module")
def env(stack: Stack, tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    home = tmp_path_factory.mktemp("cli-home")
    return {
        **os.environ,
        "TWINLEDGER_HOME": str(home),
        "TWINLEDGER_NODE_URL": stack.node.url,
        "TWINLEDGER_RPC_URL": stack.rpc_url,
        "TWINLEDGER_PASSPHRASE": PASSPHRASE,
        "TWINLEDGER_KDF_N": "1024",
        "COLUMNS": "200",
    }


def tl(env: dict[str, str], *args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    """`twinledger ARGS` as a real process."""
    return subprocess.run(
        [sys.executable, "-m", "twinledger.cli", *args],
        env=env,
        capture_output=True,
        text=True,
        input=stdin,
        timeout=300,
    )


def _key_file(directory: Path, name: str, text: str) -> Path:
    path = directory / name
    path.write_text(text)
    path.chmod(0o600)
    return path


def test_wallet_commands(env: dict[str, str], tmp_path: Path):
    created = tl(env, "wallet", "create", "--name", "w1", "--json")
    assert created.returncode == 0, created.stderr
    info = json.loads(created.stdout)
    assert info["did"].startswith("did:key:z6Mk") and "registered" in info["recoveryKey"]
    wallet_dir = Path(env["TWINLEDGER_HOME"]) / "wallets" / "w1"
    for file in ("ethereum.json", "didkey.json", "wallet.json"):
        assert stat.S_IMODE((wallet_dir / file).stat().st_mode) == 0o600
    assert stat.S_IMODE(wallet_dir.stat().st_mode) == 0o700
    assert json.loads((wallet_dir / "ethereum.json").read_text())["crypto"]["kdf"] == "scrypt"
    shown = json.loads(tl(env, "wallet", "show", "--name", "w1", "--json").stdout)
    assert shown["address"] == info["address"] and shown["pkh"].endswith(info["address"])
    assert "privateKey" not in shown
    assert tl(env, "wallet", "export-did", "--name", "w1").stdout.strip() == info["did"]
    listed = json.loads(tl(env, "wallet", "list", "--json").stdout)
    assert [w["name"] for w in listed] == ["w1"]
    # secrets: refused without confirmation, printed only with the flag and the confirmation
    revealed = json.loads(
        tl(env, "wallet", "show", "--name", "w1", "--private-key", "--yes-i-understand", "--json").stdout
    )
    assert len(revealed["privateKey"]) == 66
    refused = tl(env, "wallet", "show", "--name", "w1", "--private-key", stdin="n\n")
    assert refused.returncode == 1 and revealed["privateKey"][2:] not in refused.stdout + refused.stderr
    # passwd, then the old passphrase is wrong
    new = _key_file(tmp_path, "new.pass", "another long passphrase\n")
    assert tl(env, "wallet", "passwd", "--name", "w1", "--new-passphrase-file", str(new)).returncode == 0
    wrong = tl(env, "wallet", "export-did", "--name", "w1", "--private", "--yes-i-understand")
    assert wrong.returncode == 6 and "wrong passphrase" in wrong.stderr
    ok = tl(
        env, "wallet", "export-did", "--name", "w1", "--private", "--yes-i-understand", "--passphrase-file", str(new)
    )
    assert ok.returncode == 0 and DidKey.from_jwk(ok.stdout.strip()).did == info["did"]
    # a keystore others can read is refused before decrypting
    (wallet_dir / "ethereum.json").chmod(0o644)
    loose = tl(
        env, "wallet", "show", "--name", "w1", "--private-key", "--yes-i-understand", "--passphrase-file", str(new)
    )
    assert loose.returncode == 6 and "chmod 600" in loose.stderr
    duplicate = tl(env, "wallet", "create", "--name", "w1")
    assert duplicate.returncode == 2 and "exists already" in duplicate.stderr
    missing = tl(env, "wallet", "show", "--name", "nobody")
    assert missing.returncode == 3 and "wallet create --name nobody" in missing.stderr


def test_owner_to_audit_and_verify_as_subprocesses(env: dict[str, str], tmp_path: Path, stack: Stack):
    key = _key_file(tmp_path, "dev.key", DEV_KEY_5)
    assert tl(env, "wallet", "import", "--name", "owner", "--private-key-file", str(key)).returncode == 0
    assert tl(env, "wallet", "create", "--name", "reader").returncode == 0
    reader = tl(env, "wallet", "export-did", "--name", "reader").stdout.strip()
    device = DidKey.generate()
    device_file = _key_file(tmp_path, "device.jwk", device.to_jwk())
    registered = tl(env, "twin", "register", "--name", "owner", "--device", device.did, "--json")
    assert registered.returncode == 0, registered.stderr
    twin = str(json.loads(registered.stdout)["twin_id"])
    data = tmp_path / "reading.json"
    data.write_bytes(b'{"temperature": 21}')
    pushed = tl(env, "snapshot", "push", twin, str(data), "--device-key", str(device_file), "--json")
    assert pushed.returncode == 0 and json.loads(pushed.stdout)["seq"] == 1
    denied = tl(env, "snapshot", "get", twin, "--name", "reader", "--purpose", "research")
    assert denied.returncode == 7 and f"twinledger consent grant {twin} {reader}" in denied.stderr
    check_no = tl(env, "consent", "check", twin, reader, "--purpose", "research")
    assert check_no.returncode == 1 and "not authorized" in check_no.stdout
    granted = tl(
        env,
        "consent",
        "grant",
        twin,
        reader,
        "--scope",
        "read,audit",
        "--purpose",
        "research",
        "--expires",
        "30d",
        "--name",
        "owner",
        "--relay",
        "--json",
    )
    assert granted.returncode == 0, granted.stderr
    assert tl(env, "consent", "check", twin, reader, "--purpose", "research").returncode == 0
    out = tmp_path / "got.json"
    got = tl(env, "snapshot", "get", twin, "--name", "reader", "--purpose", "research", "-o", str(out))
    assert got.returncode == 0 and out.read_bytes() == b'{"temperature": 21}' and "signature verified" in got.stdout
    history = json.loads(tl(env, "snapshot", "history", twin, "--name", "owner", "--json").stdout)
    assert [s["seq"] for s in history] == [1]
    receipt = tl(
        env,
        "consent",
        "receipt",
        twin,
        reader,
        "--purpose",
        "research",
        "--tx",
        json.loads(granted.stdout)["tx_hash"],
        "--name",
        "owner",
        "--json",
    )
    assert receipt.returncode == 0 and "ConsentReceipt" in receipt.stdout
    audit = tl(env, "audit", twin, "--name", "owner")
    assert audit.returncode == 0 and "read of snapshot #1" in audit.stdout and "grant to" in audit.stdout
    as_auditor = tl(env, "audit", twin, "--name", "reader", "--purpose", "research", "--json")
    assert as_auditor.returncode == 0 and {"snapshot", "read"} <= {e["kind"] for e in json.loads(as_auditor.stdout)}
    stack.node.runtime.anchors.tick(force=True)
    car = tmp_path / "twin.car"
    verified = tl(env, "verify", twin, "--name", "owner", "--save-car", str(car))
    assert verified.returncode == 0, verified.stderr
    assert "verified twin" in verified.stdout and "1 snapshots, 1 access receipts" in verified.stdout
    offline = tl(env, "verify", twin, "--car", str(car), "--json")
    assert offline.returncode == 0 and json.loads(offline.stdout)["verified"] is True
    checks = {c["check"]: c for c in json.loads(offline.stdout)["checks"]}  # one object per check, not prose
    assert checks["snapshot"]["seq"] == 1 and checks["snapshot"]["anchored"] is True and checks["snapshot"]["passed"]
    assert checks["receipt"]["reader"] == reader and checks["twin"]["twinId"] == int(twin)
    corrupt = tmp_path / "corrupt.car"
    raw = bytearray(car.read_bytes())
    raw[-5] ^= 0xFF
    corrupt.write_bytes(bytes(raw))
    broken = tl(env, "verify", twin, "--car", str(corrupt))
    assert broken.returncode == 4 and "error:" in broken.stderr
    revoked = tl(env, "consent", "revoke", twin, reader, "--purpose", "research", "--name", "owner")
    assert revoked.returncode == 0
    listed = json.loads(tl(env, "consent", "list", twin, "--json").stdout)
    assert [g["live"] for g in listed] == [False]
    own = tl(env, "snapshot", "get", twin, "--name", "owner", "-o", str(tmp_path / "own.json"))
    assert own.returncode == 0, own.stderr
    trail = tl({**env, "COLUMNS": "400"}, "audit", twin, "--name", "owner")
    # whom a revocation ended by DID (the chain has only its hash), an owner's read as such, no purpose hash
    assert f"revoked grant of {reader} for research" in trail.stdout, trail.stdout
    assert "read of snapshot #1 by the owner" in trail.stdout and "0x" + "0" * 64 not in trail.stdout
    assert "first owner 0x" in trail.stdout  # the mint, not a transfer from the zero address


def test_bad_input_sends_nothing(env: dict[str, str], stack: Stack):
    # A DID typo, a twin the wallet does not own, a bad expiry: refused before any transaction.
    assert tl(env, "wallet", "create", "--name", "poor").returncode == 0
    owner = tl(env, "twin", "register", "--name", "owner", "--json")
    twin = str(json.loads(owner.stdout)["twin_id"])
    address = json.loads(tl(env, "wallet", "show", "--name", "owner", "--json").stdout)["address"]
    nonce = stack.node.runtime.client.w3.eth.get_transaction_count(address)
    typo = tl(env, "consent", "grant", twin, DidKey.generate().did[:-2], "--purpose", "research", "--name", "owner")
    assert typo.returncode == 2 and "did:key" in typo.stderr
    bad_expiry = tl(
        env,
        "consent",
        "grant",
        twin,
        DidKey.generate().did,
        "--purpose",
        "research",
        "--expires",
        "soon",
        "--name",
        "owner",
    )
    assert bad_expiry.returncode == 2 and "30d" in bad_expiry.stderr
    bad_scope = tl(
        env,
        "consent",
        "grant",
        twin,
        DidKey.generate().did,
        "--purpose",
        "research",
        "--scope",
        "rea",
        "--name",
        "owner",
    )
    assert bad_scope.returncode == 2 and "unknown scope" in bad_scope.stderr
    assert stack.node.runtime.client.w3.eth.get_transaction_count(address) == nonce
    not_owner = tl(env, "twin", "transfer", twin, address, "--name", "poor")
    assert not_owner.returncode == 6 and "does not own twin" in not_owner.stderr
    down = tl({**env, "TWINLEDGER_NODE_URL": "http://127.0.0.1:9"}, "twin", "show", twin)
    assert down.returncode == 5 and "cannot reach the node" in down.stderr and "twinledger node up" in down.stderr
    no_file = tl(env, "snapshot", "push", twin, "/nonexistent/file")
    assert no_file.returncode == 2 and "no file" in no_file.stderr


def test_device_keys_without_a_wallet(env: dict[str, str], tmp_path: Path, stack: Stack):
    """`did new` writes a device key only its owner can read; `push` refuses one others can read, a missing one and
    a malformed one, each with its exit code and no traceback, and pushes nothing."""
    key = tmp_path / "device.jwk"
    made = tl(env, "did", "new", "--out", str(key), "--json")
    assert made.returncode == 0, made.stderr
    did = json.loads(made.stdout)["did"]
    assert stat.S_IMODE(key.stat().st_mode) == 0o600 and DidKey.from_jwk(key.read_text()).did == did
    assert json.loads(tl(env, "did", "show", str(key), "--json").stdout)["did"] == did
    again = tl(env, "did", "new", "--out", str(key))
    assert again.returncode == 2 and "already exists" in again.stderr and "--force" in again.stderr
    assert DidKey.from_jwk(key.read_text()).did == did  # the key in it is kept
    nowhere = tl(env, "did", "new", "--out", str(tmp_path / "no" / "such" / "dir.jwk"))
    assert nowhere.returncode == 3 and "no directory" in nowhere.stderr

    registered = tl(env, "twin", "register", "--name", "owner", "--device", did, "--json")
    twin = str(json.loads(registered.stdout)["twin_id"])
    data = tmp_path / "reading.json"
    data.write_bytes(b'{"rpm": 1200}')
    pushed = tl(env, "snapshot", "push", twin, str(data), "--device-key", str(key), "--json")
    assert pushed.returncode == 0 and json.loads(pushed.stdout)["seq"] == 1, pushed.stderr
    key.chmod(0o644)
    loose = tl(env, "snapshot", "push", twin, str(data), "--device-key", str(key))
    assert loose.returncode == 6 and f"chmod 600 {key}" in loose.stderr
    missing = tl(env, "snapshot", "push", twin, str(data), "--device-key", str(tmp_path / "nope.jwk"))
    assert missing.returncode == 3 and "no key file" in missing.stderr
    garbled = _key_file(tmp_path, "garbled.jwk", '{"kty": "OKP"')
    malformed = tl(env, "snapshot", "push", twin, str(data), "--device-key", str(garbled))
    assert malformed.returncode == 2 and "did new" in malformed.stderr
    for refused in (loose, missing, malformed):
        assert "Traceback" not in refused.stderr
    assert [s.seq for s in stack.node.runtime.snapshots.history(int(twin))] == [1]  # the refused pushes sent nothing
    key.chmod(0o600)
    replaced = tl(env, "did", "new", "--out", str(key), "--force", "--json")
    assert replaced.returncode == 0 and json.loads(replaced.stdout)["did"] != did


def test_damaged_files_get_their_name_and_exit_code_not_a_traceback(env: dict[str, str], tmp_path: Path, stack: Stack):
    home = Path(env["TWINLEDGER_HOME"]) / "wallets"
    assert tl(env, "wallet", "create", "--name", "broken").returncode == 0
    (home / "broken" / "wallet.json").write_text('{"name": "broken", "addr')
    listed = tl(env, "wallet", "list", "--json")
    assert listed.returncode == 0 and "broken" not in [w["name"] for w in json.loads(listed.stdout)]
    assert "wallet 'broken' is damaged" in listed.stderr and "owner" in [w["name"] for w in json.loads(listed.stdout)]
    shown = tl(env, "wallet", "show", "--name", "broken")
    assert shown.returncode == 2 and "is damaged" in shown.stderr and "backup" in shown.stderr

    assert tl(env, "wallet", "create", "--name", "truncated").returncode == 0
    keystore = home / "truncated" / "ethereum.json"
    keystore.write_text(keystore.read_text()[:100])
    opened = tl(env, "wallet", "export-did", "--name", "truncated", "--private", "--yes-i-understand")
    assert opened.returncode == 2 and "not JSON" in opened.stderr and "wrong passphrase" not in opened.stderr

    foreign = _key_file(tmp_path, "not-a-keystore.json", '{"address": "90f79bf6eb2c4f870365e785982e1f101e93b906"}')
    imported = tl(env, "wallet", "import", "--name", "imported", "--keystore", str(foreign))
    assert imported.returncode == 2 and "no complete 'crypto'" in imported.stderr

    twin = str(json.loads(tl(env, "twin", "register", "--name", "owner", "--json").stdout)["twin_id"])
    data = tmp_path / "plain.txt"
    data.write_bytes(b"owner's own reading")
    assert tl(env, "snapshot", "push", twin, str(data), "--name", "owner").returncode == 0
    receipts = "SELECT COUNT(*) FROM receipts WHERE twin_id = ?"
    before = stack.node.runtime.state.connection().execute(receipts, (int(twin),)).fetchone()[0]
    nowhere = tl(env, "snapshot", "get", twin, "--name", "owner", "-o", str(tmp_path / "no" / "dir" / "x"))
    assert nowhere.returncode == 3 and "no directory" in nowhere.stderr
    after = stack.node.runtime.state.connection().execute(receipts, (int(twin),)).fetchone()[0]
    assert after == before  # refused before the read: no access receipt for data never written
    for result in (listed, shown, opened, imported, nowhere):
        assert "Traceback" not in result.stderr


def test_version_and_errors_as_json(env: dict[str, str]):
    version = tl(env, "--version")
    assert version.returncode == 0 and version.stdout.startswith("twinledger ")
    missing = tl(env, "wallet", "show", "--name", "nobody-here", "--json")
    problem = json.loads(missing.stdout)  # the error, as a problem object where --json output goes
    assert missing.returncode == problem["exitCode"] == 3 and problem["type"] == "not-found"
    assert "nobody-here" in problem["detail"] and "wallet create" in problem["hint"]
    plain = tl(env, "wallet", "show", "--name", "nobody-here")
    assert plain.stdout == "" and plain.stderr.startswith("error: no wallet named")
    zero = tl(env, "snapshot", "get", "0")  # refused by the CLI itself, not in the node's HTTP words
    assert zero.returncode == 2 and "twin_id" in zero.stderr and "path." not in zero.stderr


def test_runner_covers_twin_commands(env: dict[str, str], monkeypatch: pytest.MonkeyPatch):
    for name, value in env.items():
        if name.startswith("TWINLEDGER_"):
            monkeypatch.setenv(name, value)
    runner = CliRunner()
    registered = runner.invoke(app, ["twin", "register", "--name", "owner", "--kind", "system", "--json"])
    assert registered.exit_code == 0, registered.output
    twin = str(json.loads(registered.output)["twin_id"])
    device = DidKey.generate().did
    bound = runner.invoke(app, ["twin", "bind-device", twin, device, "--name", "owner", "--json"])
    assert bound.exit_code == 0 and json.loads(bound.output)["details"]["deviceDid"] == device
    shown = runner.invoke(app, ["twin", "show", twin, "--json"])
    assert json.loads(shown.output)["device_did"] == device and json.loads(shown.output)["kind"] == "system"
    listed = runner.invoke(app, ["twin", "list", "--name", "owner", "--json"])
    assert twin in [str(t["twin_id"]) for t in json.loads(listed.output)]
    other = json.loads(runner.invoke(app, ["wallet", "show", "--name", "reader", "--json"]).output)["address"]
    mine = json.loads(runner.invoke(app, ["wallet", "show", "--name", "owner", "--json"]).output)["address"]
    # Transfers that would lose the twin are refused before anything is sent: one character of the address
    # mistyped (its EIP-55 checksum fails), the zero address, the owner itself.
    flipped = next(i for i, c in enumerate(other) if i > 1 and c.isalpha())
    typo = other[:flipped] + other[flipped].swapcase() + other[flipped + 1 :]
    for target, reason in ((typo, "EIP-55 checksum"), ("0x" + "0" * 40, "zero address"), (mine, "already owns")):
        refused = runner.invoke(app, ["twin", "transfer", twin, target, "--name", "owner"])
        # the runner calls the typer app itself: the error reaches it as raised (`twinledger` prints it, hint included)
        assert isinstance(refused.exception, InvalidInput) and reason in refused.exception.message, (target, refused)
    assert json.loads(runner.invoke(app, ["twin", "show", twin, "--json"]).output)["owner"] == mine
    unknown = runner.invoke(app, ["twin", "transfer", twin, "nobody-such", "--name", "owner"])
    assert isinstance(unknown.exception, InvalidInput) and "neither an address nor" in unknown.exception.message
    # What ends is shown first, and only a yes sends it; the new owner may be named by wallet.
    reader_did = runner.invoke(app, ["wallet", "export-did", "--name", "reader"]).output.strip()
    grant = ["consent", "grant", twin, reader_did, "--purpose", "maintenance", "--scope", "read", "--name", "owner"]
    assert runner.invoke(app, grant).exit_code == 0
    declined = runner.invoke(app, ["twin", "transfer", twin, "reader", "--name", "owner"], input="n\n")
    assert declined.exit_code == 1 and "maintenance" in declined.output and "1 consent ends" in declined.output
    assert isinstance(declined.exception, Declined)
    assert json.loads(runner.invoke(app, ["twin", "show", twin, "--json"]).output)["owner"] == mine
    moved = runner.invoke(app, ["twin", "transfer", twin, "reader", "--name", "owner"], input="y\n")
    assert moved.exit_code == 0 and f"transferred to {other}" in moved.output, moved.output
    table = runner.invoke(app, ["twin", "show", twin])
    assert other in table.output
