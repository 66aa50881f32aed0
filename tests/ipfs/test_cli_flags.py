"""Kubo's boolean flags through the real `twinledger ipfs` entry point: bare, and as --flag=true|false.

Kubo's parser (go-ipfs-cmds) takes a bare boolean as true, never the next word as its value, and reads
``--flag=VALUE`` / ``-f=VALUE`` with Go's strconv.ParseBool. Expected CIDs that are not Kubo vectors come from
the library, whose CIDs tests/ipfs/test_vectors.py checks against Kubo's.
"""

from __future__ import annotations

import io
import os
import subprocess
import sys
from pathlib import Path

import pytest
from ipfs_helpers import store_snapshot

from twinledger.ipfs import FileBlockStore, ImportOptions, compute_cid

HELLO_V0 = "Qmf412jQZiuVUtdgnB36FXFX7xg5V6KEbSJ4dpQuhkLyfD"
HELLO_RAW = "bafkreifzjut3te2nhyekklss27nh3k72ysco7y32koao5eei66wof36n5e"
# CIDv1 of the dag-pb block behind HELLO_V0: "hello world" with a dag-pb leaf, as Kubo gives for
# `ipfs config profile apply unixfs-v0-2015` + `ipfs add --cid-version=1`.
HELLO_V1_DAG_PB = "bafybeihykld7uyxzogax6vgyvag42y7464eywpf55gxi5qpoisibh3c5wa"
TRICKLE_FLAGS = ["--chunker=size-16", "--max-file-links=3"]


def _run(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    # No COLUMNS: an error must stay on one line at the default 80 columns too.
    env = {k: v for k, v in os.environ.items() if k != "COLUMNS"} | {
        "TWINLEDGER_IPFS_PATH": str(tmp_path / "repo"),
        "TWINLEDGER_IPFS_BACKEND": "embedded",
    }
    code = "from twinledger.cli.main import main; main()"
    return subprocess.run(
        [sys.executable, "-c", code, "ipfs", *args], capture_output=True, text=True, env=env, cwd=tmp_path
    )


@pytest.fixture
def inputs(tmp_path: Path) -> Path:
    (tmp_path / "h.txt").write_text("hello world")
    (tmp_path / "long.txt").write_text("twinledger " * 40)
    (tmp_path / "dir").mkdir()
    (tmp_path / "dir" / "a.txt").write_text("a")
    (tmp_path / "dir" / ".secret").write_text("s")
    return tmp_path


def _store(tmp_path: Path) -> FileBlockStore:
    return FileBlockStore(tmp_path / "repo")


def _cid(source: Path, flags: list[str]) -> str:
    return str(compute_cid(source, ImportOptions.from_kubo_flags(flags)).cid)


def _added(done: subprocess.CompletedProcess[str]) -> str:
    assert done.returncode == 0, done.stderr
    return done.stdout.split()[1] if done.stdout.startswith("added ") else done.stdout.strip()


@pytest.mark.parametrize("form", ["--raw-leaves", "--raw-leaves=true"])
def test_raw_leaves_true_does_not_swallow_the_path(inputs: Path, form: str) -> None:
    assert _added(_run(inputs, "add", form, "h.txt")) == HELLO_RAW


@pytest.mark.parametrize("form", ["--raw-leaves=false", "--no-raw-leaves"])
def test_raw_leaves_false_keeps_dag_pb_leaves_with_cid_v1(inputs: Path, form: str) -> None:
    assert _added(_run(inputs, "add", "--cid-version=1", form, "h.txt")) == HELLO_V1_DAG_PB


@pytest.mark.parametrize("form", ["-Q", "-Q=true"])
def test_quieter_prints_only_the_cid(inputs: Path, form: str) -> None:
    done = _run(inputs, "add", form, "h.txt")
    assert done.stdout == f"{HELLO_V0}\n", done.stderr


@pytest.mark.parametrize("form", ["--quieter=false"])
def test_quieter_false_prints_the_added_line(inputs: Path, form: str) -> None:
    assert _run(inputs, "add", form, "h.txt").stdout == f"added {HELLO_V0} h.txt\n"


@pytest.mark.parametrize("form", ["--only-hash", "-n=true"])
def test_only_hash_stores_nothing(inputs: Path, form: str) -> None:
    assert _added(_run(inputs, "add", form, "h.txt")) == HELLO_V0
    assert store_snapshot(_store(inputs)) == ([], "")


def test_only_hash_false_stores(inputs: Path) -> None:
    assert _added(_run(inputs, "add", "--only-hash=false", "h.txt")) == HELLO_V0
    assert [str(pin) for pin in _store(inputs).pins()] == [HELLO_V0]


@pytest.mark.parametrize("form", ["-t", "--trickle=true"])
def test_trickle_true_uses_the_trickle_layout(inputs: Path, form: str) -> None:
    trickle = _cid(inputs / "long.txt", [*TRICKLE_FLAGS, "--trickle"])
    assert trickle != _cid(inputs / "long.txt", TRICKLE_FLAGS)  # the input is big enough to tell them apart
    assert _added(_run(inputs, "add", "-n", *TRICKLE_FLAGS, form, "long.txt")) == trickle


@pytest.mark.parametrize("form", ["--trickle=false"])
def test_trickle_false_is_balanced(inputs: Path, form: str) -> None:
    balanced = _cid(inputs / "long.txt", TRICKLE_FLAGS)
    assert _added(_run(inputs, "add", "-n", *TRICKLE_FLAGS, form, "long.txt")) == balanced


@pytest.mark.parametrize("form", ["-r", "--recursive=true"])
def test_recursive_adds_a_directory(inputs: Path, form: str) -> None:
    assert _added(_run(inputs, "add", "-n", form, "dir")) == _cid(inputs / "dir", [])


def test_recursive_false_refuses_a_directory(inputs: Path) -> None:
    done = _run(inputs, "add", "--recursive=false", "dir")
    assert done.returncode == 2 and "dir is a directory" in done.stderr.splitlines()[0]


@pytest.mark.parametrize("form", ["-H", "--hidden=true"])
def test_hidden_includes_dot_files(inputs: Path, form: str) -> None:
    with_hidden = _cid(inputs / "dir", ["--hidden"])
    assert with_hidden != _cid(inputs / "dir", [])
    assert _added(_run(inputs, "add", "-n", "-r", form, "dir")) == with_hidden


def test_hidden_false_skips_dot_files(inputs: Path) -> None:
    assert _added(_run(inputs, "add", "-n", "-r", "--hidden=false", "dir")) == _cid(inputs / "dir", [])


@pytest.mark.parametrize("form", ["--pin", "--pin=true"])
def test_pin_true_pins(inputs: Path, form: str) -> None:
    assert _added(_run(inputs, "add", form, "h.txt")) == HELLO_V0
    assert [str(pin) for pin in _store(inputs).pins()] == [HELLO_V0]


@pytest.mark.parametrize("form", ["--pin=false", "--no-pin"])
def test_pin_false_stores_without_pinning(inputs: Path, form: str) -> None:
    assert _added(_run(inputs, "add", form, "h.txt")) == HELLO_V0
    store = _store(inputs)
    assert store.pins() == [] and store.has(compute_cid(b"hello world").cid)


def test_combined_short_flags_and_end_of_options(inputs: Path) -> None:
    assert _run(inputs, "add", "-nQ", "--raw-leaves", "--", "h.txt").stdout == f"{HELLO_RAW}\n"


@pytest.mark.parametrize(
    ("form", "expected_roots", "expected_pins"),
    [("--pin-roots", 1, 1), ("--pin-roots=false", 1, 0), ("--no-pin-roots", 1, 0)],
)
def test_car_import_pin_roots(inputs: Path, form: str, expected_roots: int, expected_pins: int) -> None:
    source = FileBlockStore(inputs / "source")
    root = source.add_stream(io.BytesIO(b"hello world"), ImportOptions())
    with (inputs / "h.car").open("wb") as out:
        source.export_car(root.cid, out)
    done = _run(inputs, "car", "import", form, "h.car")
    assert done.stdout.count("imported root") == expected_roots, done.stderr
    assert len(_store(inputs).pins()) == expected_pins


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--raw-leaves=maybe", "h.txt"), "--raw-leaves=maybe is not a boolean"),
        (("--pin=yes", "h.txt"), "--pin=yes is not a boolean"),  # Go's ParseBool has no yes
        (("--chunker=size-2096897", "h.txt"), "chunk size 2096897 is over Kubo's limit of 2096896 bytes"),
    ],
)
def test_bad_flag_value_is_one_line_exit_2_and_writes_nothing(
    inputs: Path, args: tuple[str, ...], message: str
) -> None:
    done = _run(inputs, "add", *args)
    assert done.returncode == 2
    assert message in done.stderr.splitlines()[0], done.stderr
    assert not (inputs / "repo").exists() or store_snapshot(_store(inputs)) == ([], "")
