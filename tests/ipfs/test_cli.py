"""`twinledger ipfs` through the real entry point (a subprocess), as a user runs it."""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
from pathlib import Path

from ipfs_helpers import store_snapshot

from twinledger.ipfs import FileBlockStore


def _run(repo: Path, *args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = os.environ | {
        "TWINLEDGER_IPFS_PATH": str(repo),
        "TWINLEDGER_IPFS_BACKEND": "embedded",
        "COLUMNS": "300",
    }
    code = "from twinledger.cli.main import main; main()"
    return subprocess.run([sys.executable, "-c", code, "ipfs", *args], capture_output=True, text=True, env=env, cwd=cwd)


def test_add_cat_pin_car_gc(tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    (tmp_path / "h.txt").write_text("hello world")
    added = _run(repo, "add", "-Q", "h.txt", cwd=tmp_path)
    assert added.stdout.strip() == "Qmf412jQZiuVUtdgnB36FXFX7xg5V6KEbSJ4dpQuhkLyfD", added.stderr
    v1 = _run(repo, "add", "-Q", "--cid-version=1", "h.txt", cwd=tmp_path).stdout.strip()
    assert v1 == "bafkreifzjut3te2nhyekklss27nh3k72ysco7y32koao5eei66wof36n5e"
    assert _run(repo, "cat", v1, cwd=tmp_path).stdout == "hello world"
    as_json = json.loads(_run(repo, "cat", v1, "--json", cwd=tmp_path).stdout)
    assert as_json == {"cid": v1, "base64": base64.b64encode(b"hello world").decode(), "size": 11}
    (tmp_path / "big.bin").write_bytes(bytes(range(256)) * 5000)  # several blocks, lengths not multiples of 3
    big = _run(repo, "add", "-Q", "--chunker=size-1000", "big.bin", cwd=tmp_path).stdout.strip()
    streamed = json.loads(_run(repo, "cat", big, "--json", cwd=tmp_path).stdout)
    assert base64.b64decode(streamed["base64"]) == bytes(range(256)) * 5000 and streamed["size"] == 1_280_000
    assert _run(repo, "car", "export", v1, "-o", "h.car", cwd=tmp_path).returncode == 0
    assert _run(repo, "pin", "rm", v1, cwd=tmp_path).returncode == 0
    assert "1 blocks removed" in _run(repo, "gc", cwd=tmp_path).stdout
    assert _run(repo, "car", "import", "h.car", cwd=tmp_path).stdout.strip() == f"imported root {v1}"
    assert v1 in _run(repo, "pin", "ls", cwd=tmp_path).stdout
    assert "Size: 11" in _run(repo, "stat", v1, cwd=tmp_path).stdout
    assert _run(repo, "get", v1, "-o", "copy.txt", cwd=tmp_path).returncode == 0
    assert (tmp_path / "copy.txt").read_text() == "hello world"


def test_every_ipfs_command_that_reports_speaks_json(tmp_path: Path) -> None:
    import json

    repo = tmp_path / "repo"
    (tmp_path / "h.txt").write_text("hello world")
    v1 = "bafkreifzjut3te2nhyekklss27nh3k72ysco7y32koao5eei66wof36n5e"

    def as_json(*args: str) -> object:
        done = _run(repo, *args, "--json", cwd=tmp_path)
        assert done.returncode == 0, done.stderr
        return json.loads(done.stdout)

    assert as_json("add", "--cid-version=1", "h.txt") == {"cid": v1, "name": "h.txt", "pinned": True}
    assert as_json("stat", v1) == {"cid": v1, "size": 11}
    assert as_json("pin", "ls") == [{"cid": v1, "type": "recursive"}]
    assert as_json("car", "export", v1, "-o", "h.car") == {"cid": v1, "path": "h.car"}
    assert as_json("get", v1, "-o", "copy.txt") == {"cid": v1, "path": "copy.txt"}
    assert as_json("pin", "rm", v1) == {"cid": v1, "pinned": False}
    assert as_json("gc") == {"removed": [v1]}
    assert as_json("car", "import", "h.car") == {"roots": [v1]}
    assert as_json("pin", "add", v1) == {"cid": v1, "pinned": True}


def test_only_hash_stores_nothing(tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    (tmp_path / "h.txt").write_text("hello world")
    out = _run(repo, "add", "-n", "-Q", "--profile=unixfs-v1-2025", "h.txt", cwd=tmp_path)
    assert out.stdout.strip() == "bafkreifzjut3te2nhyekklss27nh3k72ysco7y32koao5eei66wof36n5e"
    assert store_snapshot(FileBlockStore(repo)) == ([], "")


def test_bad_input_is_one_clear_line_and_changes_nothing(tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    (tmp_path / "h.txt").write_text("hello world")
    (tmp_path / "bad.car").write_bytes(b"\x05\xa1\x61")
    (tmp_path / "dir").mkdir()
    (tmp_path / "dir" / "ok.txt").write_text("y")
    os.mkfifo(tmp_path / "dir" / "pipe")  # neither file nor directory: refused before any block is written
    cases = {
        ("add", "--chunker=rabin", "h.txt"): "--chunker=rabin is not supported",
        ("add", "--cid-version=7", "h.txt"): "--cid-version=7 is not a CID version",
        ("add", "--profile=nope", "h.txt"): "--profile=nope is not an import profile",
        ("add", "--chunker=size", "h.txt"): "--chunker=size is not supported",
        ("add", "missing.txt"): "missing.txt does not exist",
        ("cat", "Qmnotacid"): "'Qmnotacid' is not a CID",
        ("cat", "bafkreihdwdcefgh4dqkjv67uzcmw7ojee6xedzdetojuzjevtenxquvyku"): "is not in the store",
        ("car", "import", "bad.car"): "CAR truncated in the header",
        ("add", "dir"): "is a directory",
        ("add", "-r", "dir"): "pipe is not a file, directory or symlink",
        ("add", "h.txt/inside"): "cannot read h.txt/inside",
    }
    for args, message in cases.items():
        done = _run(repo, *args, cwd=tmp_path)
        first_line = done.stderr.splitlines()[0]
        assert done.returncode != 0, args
        assert message in first_line, (args, done.stderr)
        assert store_snapshot(FileBlockStore(repo)) == ([], ""), args
