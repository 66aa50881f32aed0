"""Take the data home: `twinledger export`, then the node stops and its data directory and key are deleted, and
`twinledger snapshot open --car` recovers every plaintext byte for byte with the wallet alone. All as subprocesses."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from eth_account.signers.local import LocalAccount

from tests.cli.test_cli import tl
from tests.node.conftest import RunningNode, start_node
from tests.sdk.conftest import PASSPHRASE
from twinledger.chain.deploy import Deployment
from twinledger.chain.localchain import rpc_call
from twinledger.ipfs.dag import cat_blocks, walk_dag
from twinledger.verify.checks import RECEIPT_TYPE
from twinledger.verify.export import ExportCar
from twinledger.wallet import WalletStore

REPO_ROOT = Path(__file__).resolve().parents[2]
CAR_INTEROP = REPO_ROOT / "tests" / "ipfs" / "car_interop.mjs"
IPFS_CAR = REPO_ROOT / "node_modules" / ".bin" / "ipfs-car"
# Three small readings and one of 2.5 MiB: three 1 MiB UnixFS chunks under a dag-pb root (the node's profile).
READINGS = [b'{"temperature": 21}', b'{"temperature": 22}', os.urandom(2_621_440), b'{"temperature": 23}']


@dataclass
class Home:
    node: RunningNode
    data_dir: Path
    env: dict[str, str]
    twin: str
    others_twin: str


def _anchored(node: RunningNode) -> None:
    deadline = time.monotonic() + 30
    while node.runtime.anchors.queue_depth() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert node.runtime.anchors.queue_depth() == 0, "not all anchored"


def _receipts(node: RunningNode) -> int:
    """Access receipts recorded (a refused export is a denial record in the same table: not counted here)."""
    rows = node.runtime.state.connection().execute("SELECT body FROM receipts").fetchall()
    return sum(json.loads(row["body"])["type"] == RECEIPT_TYPE for row in rows)


@pytest.fixture(scope="module")
def home(
    anvil: str, deployment: Deployment, accounts: list[LocalAccount], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Home]:
    monkey = pytest.MonkeyPatch()
    monkey.setenv("TWINLEDGER_KDF_N", "1024")  # test-only scrypt work factor
    snapshot = rpc_call(anvil, "evm_snapshot")
    data_dir = tmp_path_factory.mktemp("node")
    node = start_node(data_dir, anvil, deployment, accounts[7])
    wallets = tmp_path_factory.mktemp("home")
    store = WalletStore(wallets)
    env = {
        **os.environ, "TWINLEDGER_HOME": str(wallets), "TWINLEDGER_NODE_URL": node.url, "TWINLEDGER_RPC_URL": anvil,
        "TWINLEDGER_PASSPHRASE": PASSPHRASE, "TWINLEDGER_WALLET": "owner", "COLUMNS": "300",
    }  # fmt: skip
    store.create("owner", PASSPHRASE, private_key=bytes(accounts[6].key))
    store.create("other", PASSPHRASE, private_key=bytes(accounts[5].key))
    try:
        twins = []
        for name in ("owner", "other"):
            registered = tl(env, "twin", "register", "--name", name, "--kind", "asset", "--json")
            assert registered.returncode == 0, registered.stderr
            twins.append(str(json.loads(registered.stdout)["twin_id"]))
        files = data_dir / "readings"
        files.mkdir()
        for i, reading in enumerate(READINGS):
            (files / f"{i}.bin").write_bytes(reading)
            pushed = tl(env, "snapshot", "push", twins[0], str(files / f"{i}.bin"), "--name", "owner", "--json")
            assert pushed.returncode == 0 and json.loads(pushed.stdout)["seq"] == i + 1, pushed.stderr
        assert tl(env, "snapshot", "push", twins[1], str(files / "0.bin"), "--name", "other").returncode == 0
        got = tl(env, "snapshot", "get", twins[0], "2", "--name", "owner", "-o", str(files / "got.bin"))
        assert got.returncode == 0, got.stderr  # a read: its receipt is in the export
        _anchored(node)
        yield Home(node, data_dir, env, twins[0], twins[1])
    finally:
        node.stop()
        rpc_call(anvil, "evm_revert", [snapshot])
        monkey.undo()


def _export(home: Home, path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return tl(home.env, "export", home.twin, "-o", str(path), *args)


def test_export_refusals_send_nothing(home: Home, tmp_path: Path):
    receipts = _receipts(home.node)
    existing = tmp_path / "twin.car"
    existing.write_bytes(b"keep me")
    taken = _export(home, existing, "--name", "owner")
    assert taken.returncode == 2 and f"{existing} exists" in taken.stderr and existing.read_bytes() == b"keep me"
    nowhere = _export(home, tmp_path / "no" / "twin.car", "--name", "owner")
    assert nowhere.returncode == 3 and "no directory" in nowhere.stderr
    stranger = _export(home, tmp_path / "theirs.car", "--name", "other", "--json")
    assert stranger.returncode == 6, stranger.stdout
    problem = json.loads(stranger.stdout)
    assert "only its owner may export it" in problem["detail"] and not (tmp_path / "theirs.car").exists()
    assert list(tmp_path.iterdir()) == [existing]  # no partial file either
    assert _receipts(home.node) == receipts


def _log_records(node: RunningNode, twin: str) -> int:
    """The twin's receipt chain: access receipts and denial records (the other test's refused export is one)."""
    query = "SELECT COUNT(*) AS n FROM receipts WHERE twin_id = ?"
    return int(node.runtime.state.connection().execute(query, (int(twin),)).fetchone()["n"])


def test_the_data_comes_home_after_the_node_and_its_key_are_gone(home: Home, tmp_path: Path):
    car = tmp_path / "twin.car"
    before = _log_records(home.node, home.twin)
    exported = _export(home, car, "--name", "owner", "--json")
    assert exported.returncode == 0, exported.stderr
    facts = json.loads(exported.stdout)
    assert facts["snapshots"] == len(READINGS) and facts["bytes"] == car.stat().st_size
    assert facts["receipts"] == before  # the log as it stood: the export's own receipt is the next record
    theirs = tmp_path / "theirs.car"
    assert tl(home.env, "export", home.others_twin, "-o", str(theirs), "--name", "other").returncode == 0
    provenance = tmp_path / "provenance.car"
    assert tl(home.env, "verify", home.twin, "--name", "owner", "--save-car", str(provenance)).returncode == 0
    assert tl(home.env, "verify", home.twin, "--car", str(car)).returncode == 0  # an export is a provenance CAR
    _interop(car, tmp_path)
    trail = tl(home.env, "audit", home.twin)
    assert "export of snapshots #1-#4 by the owner" in trail.stdout, trail.stdout

    # the node stops; its data directory (block store, databases, node key) is deleted
    home.node.stop()
    assert (home.data_dir / "node" / "node-key.json").is_file()
    shutil.rmtree(home.data_dir)
    offline = {**home.env, "TWINLEDGER_NODE_URL": "http://127.0.0.1:9"}  # nothing answers there

    latest = tl(offline, "snapshot", "open", "--car", str(car), "-o", str(tmp_path / "latest.bin"), "--name", "owner")
    assert latest.returncode == 0, latest.stderr
    assert (tmp_path / "latest.bin").read_bytes() == READINGS[-1]
    assert "Merkle proof to root" in latest.stdout and "anchored on chain" in latest.stdout
    big = tl(offline, "snapshot", "open", "3", "--car", str(car), "-o", str(tmp_path / "big.bin"), "--json")
    assert big.returncode == 0, big.stdout
    assert (tmp_path / "big.bin").read_bytes() == READINGS[2]
    assert json.loads(big.stdout)["opened"][0]["size"] == len(READINGS[2])
    every = tl(offline, "snapshot", "open", "--all", "--car", str(car), "-o", str(tmp_path / "all"), "--json")
    assert every.returncode == 0, every.stdout
    opened = json.loads(every.stdout)
    assert opened["anchorsChecked"] is True and opened["skipped"] == []
    for seq, reading in enumerate(READINGS, start=1):
        assert (tmp_path / "all" / f"{seq:06d}").read_bytes() == reading
    assert [o["seq"] for o in opened["opened"]] == [1, 2, 3, 4]

    # the chain unreachable: said, and --no-anchors opens it saying the anchors were not checked
    no_chain = {**offline, "TWINLEDGER_RPC_URL": "http://127.0.0.1:9"}
    unreachable = tl(no_chain, "snapshot", "open", "--car", str(car), "-o", str(tmp_path / "x.bin"))
    assert unreachable.returncode == 5 and "--no-anchors" in unreachable.stderr and "anchors" in unreachable.stderr
    assert not (tmp_path / "x.bin").exists()
    unanchored = tl(no_chain, "snapshot", "open", "--car", str(car), "-o", str(tmp_path / "x.bin"), "--no-anchors")
    assert unanchored.returncode == 0 and "anchors NOT checked" in unanchored.stdout, unanchored.stderr
    assert (tmp_path / "x.bin").read_bytes() == READINGS[-1]

    # refused, each with its exit code and what to do, nothing written
    with car.open("rb") as file:
        export = ExportCar(file)
        leaf = list(walk_dag(export.index.snapshots[2].content, export.blocks.get))[1][0]
        offset, _ = export.blocks.places[bytes(leaf)]
    tampered = tmp_path / "tampered.car"
    raw = bytearray(car.read_bytes())
    raw[offset + 100] ^= 0x01
    tampered.write_bytes(bytes(raw))
    flipped = tl(offline, "snapshot", "open", "--all", "--car", str(tampered), "-o", str(tmp_path / "t"))
    assert flipped.returncode == 4 and str(leaf) in flipped.stderr and "Traceback" not in flipped.stderr
    foreign = tl(offline, "snapshot", "open", "--car", str(theirs), "-o", str(tmp_path / "f.bin"), "--name", "owner")
    assert foreign.returncode == 6 and "not to your wallet's" in foreign.stderr, foreign.stderr
    other_twin = tl(offline, "snapshot", "open", "--car", str(theirs), "--twin", home.twin, "-o", str(tmp_path / "g"))
    assert (
        other_twin.returncode == 2 and f"export of twin {home.others_twin}, not twin {home.twin}" in other_twin.stderr
    )
    unexported = tl(offline, "snapshot", "open", "--car", str(provenance), "-o", str(tmp_path / "p.bin"))
    assert unexported.returncode == 2 and f"twinledger export {home.twin}" in unexported.stderr
    (tmp_path / "junk.car").write_bytes(b"not a car at all")
    junk = tl(offline, "snapshot", "open", "--car", str(tmp_path / "junk.car"), "-o", str(tmp_path / "j.bin"))
    assert junk.returncode == 4 and "CAR" in junk.stderr
    missing = tl(offline, "snapshot", "open", "--car", str(tmp_path / "none.car"), "-o", str(tmp_path / "n.bin"))
    assert missing.returncode == 3 and "twinledger export" in missing.stderr
    beyond = tl(offline, "snapshot", "open", "9", "--car", str(car), "-o", str(tmp_path / "b.bin"), "--json")
    assert beyond.returncode == 3 and "1..4" in json.loads(beyond.stdout)["detail"]
    for name in ("t", "f.bin", "g", "p.bin", "j.bin", "n.bin", "b.bin"):
        assert not (tmp_path / name).exists(), name
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temporary file left


def _interop(car: Path, tmp_path: Path) -> None:
    """The export read by the JS IPLD stack (what `ipfs dag import` is built on): @ipld/car re-hashes every block,
    and ipfs-car's UnixFS exporter unpacks the 2.5 MiB snapshot's content DAG to the ciphertext we read."""
    node = shutil.which("node")
    assert node and IPFS_CAR.exists(), "node and the npm dev dependencies are required (make install)"
    listing = json.loads(subprocess.run([node, str(CAR_INTEROP), "read", str(car)], capture_output=True, text=True,
                                        cwd=REPO_ROOT, check=True).stdout)  # fmt: skip
    with car.open("rb") as file:
        export = ExportCar(file)
        root = export.blocks  # every block our reader kept
        content = export.index.snapshots[2].content
        assert content is not None
        ciphertext = b"".join(cat_blocks(content, root.get))
        assert len(listing["blocks"]) == len(root) and len(listing["roots"]) == 1
    unpacked = tmp_path / "ciphertext.bin"
    subprocess.run([str(IPFS_CAR), "unpack", str(car), "--root", str(content), "--output", str(unpacked)], check=True)
    assert unpacked.read_bytes() == ciphertext
    unpacked.unlink()
