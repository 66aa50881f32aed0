"""The CLI starts without its heavy libraries: `--help` of every command and `wallet list` import none of them.

Every command module is imported to build `twinledger --help`, so a module-level import of web3 (or anything
that pulls it in) would make every invocation pay for it. The check is on what gets imported, not on time.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

from twinledger.wallet import KDF_N_ENV, WalletStore

# Third-party libraries that cost tens to hundreds of milliseconds to import, and the SDK packages that pull them
# in. None of them is needed to show help or to list wallets. (pydantic is not listed: typer itself imports it to
# convert the parameter values of any command it runs.)
HEAVY = (
    "web3",
    "eth_account",
    "eth_keyfile",
    "eth_utils",
    "py_ecc",
    "didkit",
    "nacl",
    "numpy",
    "httpx",
    "multiformats",
    "cryptography",
    "fastapi",
    "uvicorn",
    "twinledger.chain.client",
    "twinledger.client",
    "twinledger.identity",
    "twinledger.ipfs",
    "twinledger.federated",
    "twinledger.verify",
    "twinledger_node.app",
)

# Runs in a fresh interpreter: through the real entry point (`twinledger.cli.main._run`) renders `--help` of the
# root and of every group and command (when given no argv lists), or runs the argv lists given; reports per step the
# output, the exit code, the command's long options and which HEAVY modules were imported by then.
PROBE = textwrap.dedent(
    """
    import contextlib, io, json, sys

    import typer

    from twinledger.cli import main

    heavy, argvs = json.loads(sys.argv[1]), json.loads(sys.argv[2])
    steps = []

    def run(argv, options=()):
        sys.argv = ["twinledger", *argv]
        out = io.StringIO()
        with contextlib.redirect_stdout(out):
            code = main._run()
        loaded = sorted(m for m in heavy if m in sys.modules)
        steps.append({"argv": argv, "code": code, "output": out.getvalue(), "heavy": loaded, "options": options})

    def walk(command, path):
        yield path, command
        for name, sub in sorted(getattr(command, "commands", {}).items()):
            yield from walk(sub, [*path, name])

    if argvs is None:
        for path, command in walk(typer.main.get_command(main.app), []):
            options = [o for p in command.params if p.param_type_name == "option" for o in p.opts if o[:2] == "--"]
            run([*path, "--help"], options)
    for argv in argvs or ():
        run(argv)
    sys.__stdout__.write(json.dumps(steps))
    """
)


def probe(home: Path, argvs: list[list[str]] | None) -> list[dict[str, Any]]:
    env = {**os.environ, "TWINLEDGER_HOME": str(home), "COLUMNS": "200"}
    done = subprocess.run(
        [sys.executable, "-c", PROBE, json.dumps(HEAVY), json.dumps(argvs)],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return list(json.loads(done.stdout))


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv(KDF_N_ENV, "1024")
    WalletStore(tmp_path).create("alice", "a long passphrase")
    return tmp_path


def test_help_of_every_command_imports_no_heavy_library(home: Path):
    helped = {" ".join(["twinledger", *step["argv"]]): step for step in probe(home, None)}
    # the walk reached the nested groups and the node's group
    for command in ("wallet list", "consent receipt", "ipfs pin add", "ipfs car export", "node up", "fl verify"):
        assert f"twinledger {command} --help" in helped
    for shown, step in helped.items():
        assert step["code"] == 0, (shown, step["output"])
        assert step["heavy"] == [], f"`{shown}` imported {step['heavy']}"
        # typer reads the options from the signature at runtime: the help still shows every one of them
        for option in step["options"]:
            assert option in step["output"], f"`{shown}` lacks {option}"
    root = helped["twinledger --help"]["output"]
    for group, step in helped.items():
        if group.count(" ") == 2:  # `twinledger GROUP --help`: the group is listed at the root with its help
            summary = step["output"].strip().splitlines()[2].strip()  # Usage line, blank line, the help
            assert summary and summary in root, (group, summary)


def test_wallet_list_reads_files_only(home: Path):
    table, listed = probe(home, [["wallet", "list"], ["wallet", "list", "--json"]])
    info = WalletStore(home).info("alice")
    for step in (table, listed):
        assert step["code"] == 0, step["output"]
        assert step["heavy"] == [], f"`twinledger {' '.join(step['argv'])}` imported {step['heavy']}"
    assert info.address in table["output"] and info.did in table["output"]
    wallets = json.loads(listed["output"])
    assert [(w["name"], w["address"], w["did"]) for w in wallets] == [("alice", info.address, info.did)]
